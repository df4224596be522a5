//! The transactions of one sender, ordered by nonce, split into an executable prefix and the
//! rest.

use crate::PooledTx;
use alloy_primitives::{TxHash, U256};
use std::{collections::BTreeMap, sync::Arc};

/// One pooled transaction with the pool's bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct PoolEntry {
    pub(crate) tx: Arc<PooledTx>,
    /// Arrival order: breaks ties between equal tips (earlier first) and equal eviction
    /// prices (newer evicted first).
    pub(crate) seq: u64,
    /// Whether subscribers were told this transaction became pending (at most once).
    pub(crate) announced: bool,
}

/// The pooled transactions of one sender and what the pool knows of its account.
///
/// `txs` holds every pooled transaction by nonce. The first `pending_len` of them carry the
/// nonces `state_nonce, state_nonce + 1, ...` without gap and are pending (executable): the
/// longest such run whose cumulative cost the balance covers, capped at the per-account slot
/// limit. Everything after is queued.
#[derive(Clone, Debug)]
pub(crate) struct SenderTxs {
    /// The account's next nonce in the latest state the pool saw.
    pub(crate) state_nonce: u64,
    /// The account's balance in that state.
    pub(crate) balance: U256,
    pub(crate) txs: BTreeMap<u64, PoolEntry>,
    pub(crate) pending_len: usize,
    /// Sum of the costs of the pending transactions; never above `balance`.
    pub(crate) pending_cost: U256,
    /// The account state is a guess (transactions re-injected after a reorg): read it again at
    /// the next block.
    pub(crate) needs_refresh: bool,
}

impl SenderTxs {
    pub(crate) fn new(state_nonce: u64, balance: U256) -> Self {
        Self {
            state_nonce,
            balance,
            txs: BTreeMap::new(),
            pending_len: 0,
            pending_cost: U256::ZERO,
            needs_refresh: false,
        }
    }

    /// The first nonce after the pending run.
    pub(crate) fn pending_end(&self) -> u64 {
        self.state_nonce.saturating_add(self.pending_len as u64)
    }

    pub(crate) fn queued_len(&self) -> usize {
        self.txs.len() - self.pending_len
    }

    /// The last pending transaction, the one eviction may take from the pending set without
    /// opening a gap.
    pub(crate) fn pending_tail(&self) -> Option<&PoolEntry> {
        if self.pending_len == 0 {
            return None;
        }
        self.txs.get(&(self.pending_end() - 1))
    }

    /// The highest-nonce transaction if it is queued.
    pub(crate) fn queued_tail(&self) -> Option<&PoolEntry> {
        if self.queued_len() == 0 {
            return None;
        }
        self.txs.last_key_value().map(|(_, entry)| entry)
    }

    /// Total cost of the pooled transactions with nonces below `nonce` (they run before it);
    /// `None` if the sum overflows.
    pub(crate) fn cost_ahead(&self, nonce: u64) -> Option<U256> {
        let (from, mut sum) = if nonce >= self.pending_end() {
            (self.pending_end(), self.pending_cost)
        } else {
            (self.state_nonce, U256::ZERO)
        };
        if nonce <= from {
            return Some(sum);
        }
        for entry in self.txs.range(from..nonce).map(|(_, entry)| entry) {
            sum = sum.checked_add(entry.tx.cost())?;
        }
        Some(sum)
    }

    /// Whether a new transaction (not a replacement) with `nonce` and `cost` would extend the
    /// pending run.
    pub(crate) fn would_be_pending(&self, nonce: u64, cost: U256, account_slots: usize) -> bool {
        nonce == self.pending_end()
            && self.pending_len < account_slots
            && self
                .pending_cost
                .checked_add(cost)
                .is_some_and(|total| total <= self.balance)
    }

    /// Grows the pending run while the next nonce is pooled, affordable and within the slot
    /// limit; records in `promoted` the hashes not announced before.
    pub(crate) fn extend_pending(&mut self, account_slots: usize, promoted: &mut Vec<TxHash>) {
        while self.pending_len < account_slots {
            let Some(next) = self.state_nonce.checked_add(self.pending_len as u64) else {
                break;
            };
            let Some(entry) = self.txs.get_mut(&next) else {
                break;
            };
            let Some(total) = self.pending_cost.checked_add(entry.tx.cost()) else {
                break;
            };
            if total > self.balance {
                break;
            }
            self.pending_cost = total;
            self.pending_len += 1;
            if !entry.announced {
                entry.announced = true;
                promoted.push(entry.tx.hash());
            }
        }
    }

    /// Shrinks the pending run to its first `len` transactions; the rest become queued.
    fn truncate_pending(&mut self, len: usize) {
        if len >= self.pending_len {
            return;
        }
        let from = self.state_nonce + len as u64;
        for (_, entry) in self.txs.range(from..self.pending_end()) {
            self.pending_cost -= entry.tx.cost();
        }
        self.pending_len = len;
    }

    /// Adds or replaces the transaction at `entry`'s nonce (which must not be below
    /// `state_nonce`) and re-derives the pending run. Returns the replaced entry.
    pub(crate) fn insert(
        &mut self,
        entry: PoolEntry,
        account_slots: usize,
        promoted: &mut Vec<TxHash>,
    ) -> Option<PoolEntry> {
        let nonce = entry.tx.nonce();
        debug_assert!(nonce >= self.state_nonce);
        if nonce < self.pending_end() {
            // A replacement inside the run: its cost may differ, so the run is re-derived from
            // this nonce on.
            self.truncate_pending((nonce - self.state_nonce) as usize);
        }
        let replaced = self.txs.insert(nonce, entry);
        self.extend_pending(account_slots, promoted);
        replaced
    }

    /// Removes the transaction at `nonce`; the pending transactions after it become queued (a
    /// gap now precedes them).
    pub(crate) fn remove(&mut self, nonce: u64) -> Option<PoolEntry> {
        if nonce >= self.state_nonce && nonce < self.pending_end() {
            self.truncate_pending((nonce - self.state_nonce) as usize);
        }
        self.txs.remove(&nonce)
    }

    /// Takes a new account state: drops transactions whose nonce is used, drops transactions
    /// the balance cannot pay even alone, and re-derives the pending run. Dropped transactions
    /// go to `removed`, newly pending hashes to `promoted`.
    pub(crate) fn refresh(
        &mut self,
        nonce: u64,
        balance: U256,
        account_slots: usize,
        removed: &mut Vec<Arc<PooledTx>>,
        promoted: &mut Vec<TxHash>,
    ) {
        if nonce != self.state_nonce {
            let old_end = self.pending_end();
            let kept = self.txs.split_off(&nonce);
            let used = std::mem::replace(&mut self.txs, kept);
            if nonce > self.state_nonce && nonce <= old_end {
                // The block took a prefix of the pending run: the rest of the run stands.
                for entry in used.values() {
                    self.pending_cost -= entry.tx.cost();
                }
                self.pending_len -= used.len();
            } else {
                // The nonce jumped past the run, or went back (reorg): derive the run anew.
                self.pending_len = 0;
                self.pending_cost = U256::ZERO;
            }
            removed.extend(used.into_values().map(|entry| entry.tx));
            self.state_nonce = nonce;
        }
        self.balance = balance;
        if self.pending_cost > balance {
            self.pending_len = 0;
            self.pending_cost = U256::ZERO;
        }
        // The pending run is affordable as a whole, hence each of its transactions; only those
        // after it can cost more than the balance on their own.
        let unaffordable: Vec<u64> = self
            .txs
            .range(self.pending_end()..)
            .filter(|(_, entry)| entry.tx.cost() > balance)
            .map(|(nonce, _)| *nonce)
            .collect();
        for nonce in unaffordable {
            if let Some(entry) = self.txs.remove(&nonce) {
                removed.push(entry.tx);
            }
        }
        self.extend_pending(account_slots, promoted);
    }
}
