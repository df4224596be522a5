use crate::{PooledTx, TxPool};
use alloy_primitives::{Address, map::AddressHashSet};
use std::{cmp::Ordering, collections::BinaryHeap, sync::Arc};

/// A sender's next executable transaction, ranked for the block builder.
#[derive(Debug)]
struct Candidate {
    tip: u128,
    seq: u64,
    tx: Arc<PooledTx>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    /// Higher tip first; on equal tips the earlier arrival (lower sequence number) first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.tip
            .cmp(&other.tip)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// The block builder's view of the pool: executable transactions, best effective tip first
/// across senders and in nonce order within each sender.
///
/// A max-heap holds one candidate per sender, its lowest-nonce unserved pending transaction;
/// serving it pushes the sender's next one (read from the pool under a short read lock). So
/// creating the iterator costs O(senders) and each step O(log senders), and transactions that
/// arrive while a block is being built can still join it.
///
/// A sender whose next transaction's fee cap is below the base fee drops out: its later
/// nonces cannot run before that one.
#[derive(Debug)]
pub struct BestTransactions<'pool> {
    pool: &'pool TxPool,
    base_fee: u64,
    heap: BinaryHeap<Candidate>,
    invalid: AddressHashSet,
}

impl<'pool> BestTransactions<'pool> {
    pub(crate) fn new(pool: &'pool TxPool, base_fee: u64) -> Self {
        let inner = pool.inner.read();
        let heap = inner
            .senders
            .values()
            .filter(|txs| txs.pending_len > 0)
            .filter_map(|txs| txs.txs.get(&txs.state_nonce))
            .filter_map(|entry| {
                let tip = entry.tx.effective_tip(base_fee)?;
                Some(Candidate {
                    tip,
                    seq: entry.seq,
                    tx: entry.tx.clone(),
                })
            })
            .collect();
        drop(inner);
        Self {
            pool,
            base_fee,
            heap,
            invalid: AddressHashSet::default(),
        }
    }

    /// Skips every further transaction of `sender`: one of its transactions failed or did not
    /// fit in the block, and the later ones depend on it by nonce.
    pub fn mark_invalid(&mut self, sender: &Address) {
        self.invalid.insert(*sender);
    }

    /// The pending transaction of `sender` that follows `nonce`, if any.
    fn successor(&self, sender: &Address, nonce: u64) -> Option<Candidate> {
        let next = nonce.checked_add(1)?;
        let inner = self.pool.inner.read();
        let txs = inner.senders.get(sender)?;
        if next < txs.state_nonce || next >= txs.pending_end() {
            return None;
        }
        let entry = txs.txs.get(&next)?;
        let tip = entry.tx.effective_tip(self.base_fee)?;
        Some(Candidate {
            tip,
            seq: entry.seq,
            tx: entry.tx.clone(),
        })
    }
}

impl Iterator for BestTransactions<'_> {
    type Item = Arc<PooledTx>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let candidate = self.heap.pop()?;
            let sender = candidate.tx.sender();
            if self.invalid.contains(&sender) {
                continue;
            }
            if let Some(next) = self.successor(&sender, candidate.tx.nonce()) {
                self.heap.push(next);
            }
            return Some(candidate.tx);
        }
    }
}
