use crate::{
    BestTransactions, PoolConfig, PoolError, PooledTx,
    sender::{PoolEntry, SenderTxs},
    validation::{self, Unrecovered},
};
use alloy_primitives::{
    Address, Bytes, TxHash, U256,
    map::{AddressHashMap, B256HashMap},
};
use chain_primitives::{Account, StateReader};
use parking_lot::RwLock;
use rayon::prelude::*;
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};
use tokio::sync::broadcast;

/// Counts of pooled transactions, as `txpool_status` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Executable transactions: contiguous nonces from each sender's account nonce.
    pub pending: usize,
    /// Transactions waiting for a nonce gap to fill, for balance, or for a per-account slot.
    pub queued: usize,
}

/// Transactions by sender and nonce, split like [`PoolStatus`], as `txpool_content` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolContent {
    /// Executable transactions.
    pub pending: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
    /// Waiting transactions.
    pub queued: BTreeMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
}

/// What a block (or a reorg's re-injection) changed in the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUpdate {
    /// Transactions dropped: nonce already used, or cost above the sender's balance.
    pub removed: usize,
    /// Transactions that became pending for the first time.
    pub promoted: usize,
    /// Transactions evicted to bring the pool back within its limits.
    pub evicted: usize,
}

/// How much a transaction pays at the current base fee, for eviction: those whose fee cap is
/// below the base fee rank lowest (by fee cap), the others by effective tip; ties evict the
/// newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EvictionKey {
    price: PriceRank,
    newest_first: Reverse<u64>,
}

/// `(fee cap covers the base fee, effective tip if so else fee cap)`; orders by what a block
/// producer would earn.
type PriceRank = (bool, u128);

fn price_rank(tx: &PooledTx, base_fee: u64) -> PriceRank {
    match tx.effective_tip(base_fee) {
        Some(tip) => (true, tip),
        None => (false, tx.max_fee_per_gas()),
    }
}

fn eviction_key(entry: &PoolEntry, base_fee: u64) -> EvictionKey {
    EvictionKey {
        price: price_rank(&entry.tx, base_fee),
        newest_first: Reverse(entry.seq),
    }
}

/// Which of a sender's sets a transaction joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Pending,
    Queued,
}

/// A sender's set sizes before a change, to adjust the pool's totals after it.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    pending: usize,
    queued: usize,
}

/// Everything behind the pool's lock.
#[derive(Debug, Default)]
pub(crate) struct PoolInner {
    base_fee: u64,
    by_hash: B256HashMap<Arc<PooledTx>>,
    pub(crate) senders: AddressHashMap<SenderTxs>,
    pending_total: usize,
    queued_total: usize,
    /// Each sender's pending tail and queued tail, cheapest first: the eviction candidates.
    /// Only tails are evicted, so eviction never opens a nonce gap in a pending run.
    pending_tails: BTreeSet<(EvictionKey, Address)>,
    queued_tails: BTreeSet<(EvictionKey, Address)>,
    /// Keys under which each sender is in the two sets above.
    tail_keys: AddressHashMap<(Option<EvictionKey>, Option<EvictionKey>)>,
    next_seq: u64,
}

impl PoolInner {
    fn counts(&self, sender: &Address) -> Counts {
        self.senders
            .get(sender)
            .map(|s| Counts {
                pending: s.pending_len,
                queued: s.queued_len(),
            })
            .unwrap_or_default()
    }

    /// After a change to `sender`'s transactions: adjusts the totals, re-files its tails for
    /// eviction, and forgets it if it has nothing left.
    fn sync_sender(&mut self, sender: Address, before: Counts) {
        let after = self.counts(&sender);
        self.pending_total = self.pending_total - before.pending + after.pending;
        self.queued_total = self.queued_total - before.queued + after.queued;
        if let Some((pending_key, queued_key)) = self.tail_keys.remove(&sender) {
            if let Some(key) = pending_key {
                self.pending_tails.remove(&(key, sender));
            }
            if let Some(key) = queued_key {
                self.queued_tails.remove(&(key, sender));
            }
        }
        let Some(txs) = self.senders.get(&sender) else {
            return;
        };
        if txs.txs.is_empty() {
            self.senders.remove(&sender);
            return;
        }
        let pending_key = txs
            .pending_tail()
            .map(|entry| eviction_key(entry, self.base_fee));
        let queued_key = txs
            .queued_tail()
            .map(|entry| eviction_key(entry, self.base_fee));
        if let Some(key) = pending_key {
            self.pending_tails.insert((key, sender));
        }
        if let Some(key) = queued_key {
            self.queued_tails.insert((key, sender));
        }
        self.tail_keys.insert(sender, (pending_key, queued_key));
    }

    /// Re-files every sender's tails: eviction prices depend on the base fee.
    fn rebuild_tails(&mut self) {
        self.pending_tails.clear();
        self.queued_tails.clear();
        self.tail_keys.clear();
        for (sender, txs) in &self.senders {
            let pending_key = txs
                .pending_tail()
                .map(|entry| eviction_key(entry, self.base_fee));
            let queued_key = txs
                .queued_tail()
                .map(|entry| eviction_key(entry, self.base_fee));
            if let Some(key) = pending_key {
                self.pending_tails.insert((key, *sender));
            }
            if let Some(key) = queued_key {
                self.queued_tails.insert((key, *sender));
            }
            self.tail_keys.insert(*sender, (pending_key, queued_key));
        }
    }

    fn set_base_fee(&mut self, base_fee: u64) {
        if base_fee != self.base_fee {
            self.base_fee = base_fee;
            self.rebuild_tails();
        }
    }

    /// Applies a fresh account state to `sender`'s transactions.
    fn refresh_sender(
        &mut self,
        sender: Address,
        account: Account,
        config: &PoolConfig,
        promoted: &mut Vec<TxHash>,
    ) -> usize {
        let before = self.counts(&sender);
        let Some(txs) = self.senders.get_mut(&sender) else {
            return 0;
        };
        let mut removed = Vec::new();
        txs.needs_refresh = false;
        txs.refresh(
            account.nonce,
            account.balance,
            config.account_slots,
            &mut removed,
            promoted,
        );
        for tx in &removed {
            self.by_hash.remove(&tx.hash());
        }
        self.sync_sender(sender, before);
        removed.len()
    }

    /// The cheapest tail of `class` among senders other than `except`.
    fn cheapest_other_tail(&self, class: Class, except: &Address) -> Option<EvictionKey> {
        let tails = match class {
            Class::Pending => &self.pending_tails,
            Class::Queued => &self.queued_tails,
        };
        // A sender has at most one tail per set, so at most one entry is skipped.
        tails
            .iter()
            .find(|(_, sender)| sender != except)
            .map(|(key, _)| *key)
    }

    /// Validates `tx` against the sender's account and the pool, and pools it.
    fn admit(
        &mut self,
        tx: PooledTx,
        account: Option<Account>,
        config: &PoolConfig,
        promoted: &mut Vec<TxHash>,
        evicted: &mut usize,
    ) -> Result<TxHash, PoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let sender = tx.sender();
        let account = account.unwrap_or_default();
        if account.has_code() {
            return Err(PoolError::SenderNotEoa { sender });
        }
        if tx.max_fee_per_gas() < u128::from(self.base_fee) {
            return Err(PoolError::FeeCapBelowBaseFee {
                sender,
                max_fee: tx.max_fee_per_gas(),
                base_fee: self.base_fee,
            });
        }
        // The reader the caller passes is the latest state: take it, unless it is older than
        // what a block update already showed us (nonces only grow outside reorgs).
        if let Some(txs) = self.senders.get(&sender) {
            let newer = account.nonce > txs.state_nonce
                || (account.nonce == txs.state_nonce && account.balance != txs.balance);
            if newer || txs.needs_refresh {
                self.refresh_sender(sender, account, config, promoted);
                // The refresh may have demoted transactions into a full queue.
                *evicted += self.enforce_limits(config);
            }
        }
        let fresh = SenderTxs::new(account.nonce, account.balance);
        let txs = self.senders.get(&sender).unwrap_or(&fresh);
        let nonce = tx.nonce();
        if nonce < txs.state_nonce {
            return Err(PoolError::NonceTooLow {
                tx_nonce: nonce,
                state_nonce: txs.state_nonce,
            });
        }
        let replacing = txs.txs.get(&nonce);
        if let Some(old) = replacing
            && !outbids(&tx, &old.tx, config.price_bump_percent)
        {
            return Err(PoolError::ReplacementUnderpriced {
                bump_percent: config.price_bump_percent,
            });
        }
        let cost = tx.cost();
        let queued_cost = txs.cost_ahead(nonce).ok_or(PoolError::CostOverflow)?;
        let need = queued_cost
            .checked_add(cost)
            .ok_or(PoolError::CostOverflow)?;
        if need > txs.balance {
            return Err(PoolError::InsufficientFunds {
                balance: txs.balance,
                queued_cost,
                tx_cost: cost,
            });
        }
        if replacing.is_none() {
            let class = if txs.would_be_pending(nonce, cost, config.account_slots) {
                Class::Pending
            } else {
                Class::Queued
            };
            if class == Class::Queued && txs.queued_len() >= config.account_queue {
                return Err(PoolError::AccountLimitExceeded {
                    pooled: txs.txs.len(),
                });
            }
            self.make_room(class, &sender, &tx, config)?;
        }

        let before = self.counts(&sender);
        let entry = PoolEntry {
            tx: Arc::new(tx),
            seq: self.next_seq,
            announced: false,
        };
        self.next_seq += 1;
        self.by_hash.insert(hash, entry.tx.clone());
        let txs = self.senders.entry(sender).or_insert(fresh);
        if let Some(old) = txs.insert(entry, config.account_slots, promoted) {
            self.by_hash.remove(&old.tx.hash());
        }
        self.sync_sender(sender, before);
        *evicted += self.enforce_limits(config);
        // `make_room` guarantees a cheaper victim than this transaction; this only guards the
        // promise that an accepted transaction is pooled.
        if self.by_hash.contains_key(&hash) {
            Ok(hash)
        } else {
            Err(PoolError::Underpriced)
        }
    }

    /// Keeps of `promoted` the hashes still pooled: eviction in the same operation may have
    /// taken some, and subscribers must not hear of those.
    fn still_pooled(&self, mut promoted: Vec<TxHash>) -> Vec<TxHash> {
        promoted.retain(|hash| self.by_hash.contains_key(hash));
        promoted
    }

    /// Refuses `tx` if it would push `class` over the pool's limit without outbidding the
    /// cheapest transaction of another sender that eviction would then remove.
    fn make_room(
        &self,
        class: Class,
        sender: &Address,
        tx: &PooledTx,
        config: &PoolConfig,
    ) -> Result<(), PoolError> {
        let full = match class {
            Class::Pending => self.pending_total >= config.global_slots,
            Class::Queued => self.queued_total >= config.global_queue,
        };
        if !full {
            return Ok(());
        }
        let Some(cheapest) = self.cheapest_other_tail(class, sender) else {
            return Err(PoolError::PoolFull);
        };
        if price_rank(tx, self.base_fee) > cheapest.price {
            Ok(())
        } else {
            Err(PoolError::Underpriced)
        }
    }

    /// Evicts the cheapest tails until both sets are within their limits, queued first.
    fn enforce_limits(&mut self, config: &PoolConfig) -> usize {
        let mut evicted = 0;
        for class in [Class::Queued, Class::Pending] {
            loop {
                let (total, limit, tails) = match class {
                    Class::Pending => {
                        (self.pending_total, config.global_slots, &self.pending_tails)
                    }
                    Class::Queued => (self.queued_total, config.global_queue, &self.queued_tails),
                };
                if total <= limit {
                    break;
                }
                let Some(&(_, sender)) = tails.first() else {
                    break;
                };
                let Some(txs) = self.senders.get(&sender) else {
                    break;
                };
                let nonce = match class {
                    Class::Pending => txs.pending_end() - 1,
                    Class::Queued => *txs
                        .txs
                        .last_key_value()
                        .map(|(nonce, _)| nonce)
                        .unwrap_or(&0),
                };
                if let Some(tx) = self.remove_at(sender, nonce) {
                    tracing::debug!(hash = %tx.hash(), %sender, nonce, ?class, "evicted from full pool");
                    evicted += 1;
                }
            }
        }
        evicted
    }

    /// Removes `sender`'s transaction at `nonce`.
    fn remove_at(&mut self, sender: Address, nonce: u64) -> Option<Arc<PooledTx>> {
        let before = self.counts(&sender);
        let entry = self.senders.get_mut(&sender)?.remove(nonce)?;
        self.by_hash.remove(&entry.tx.hash());
        self.sync_sender(sender, before);
        Some(entry.tx)
    }

    /// Puts back a transaction that left the pool in a block the chain abandoned.
    fn reinject(
        &mut self,
        tx: Arc<PooledTx>,
        config: &PoolConfig,
        promoted: &mut Vec<TxHash>,
    ) -> bool {
        if self.by_hash.contains_key(&tx.hash()) {
            return false;
        }
        let sender = tx.sender();
        let nonce = tx.nonce();
        let before = self.counts(&sender);
        // Without a state to read, assume the abandoned block's transactions are the next ones
        // the account sends and that it can pay for them; the next block update reads the
        // account and corrects both.
        let txs = self
            .senders
            .entry(sender)
            .or_insert_with(|| SenderTxs::new(nonce, U256::MAX));
        txs.needs_refresh = true;
        if txs.txs.contains_key(&nonce) {
            // The sender re-sent this nonce since: the pooled one is the newer intent.
            return false;
        }
        if nonce < txs.state_nonce {
            let mut removed = Vec::new();
            let balance = txs.balance;
            txs.refresh(nonce, balance, config.account_slots, &mut removed, promoted);
            debug_assert!(removed.is_empty(), "moving the nonce back drops nothing");
        }
        let entry = PoolEntry {
            tx,
            seq: self.next_seq,
            announced: false,
        };
        self.next_seq += 1;
        self.by_hash.insert(entry.tx.hash(), entry.tx.clone());
        txs.insert(entry, config.account_slots, promoted);
        self.sync_sender(sender, before);
        true
    }
}

/// Whether `new` may replace `old` (same sender and nonce): both its fee cap and its tip must
/// reach the old ones raised by `bump_percent`, and exceed them (geth's rule; the strict
/// part matters for zero fees, which any percentage leaves at zero).
fn outbids(new: &PooledTx, old: &PooledTx, bump_percent: u32) -> bool {
    let threshold = |old_fee: u128| {
        U256::from(old_fee) * U256::from(100 + u64::from(bump_percent)) / U256::from(100)
    };
    let (new_cap, new_tip) = (new.max_fee_per_gas(), new.max_priority_fee_per_gas());
    let (old_cap, old_tip) = (old.max_fee_per_gas(), old.max_priority_fee_per_gas());
    new_cap > old_cap
        && new_tip > old_tip
        && U256::from(new_cap) >= threshold(old_cap)
        && U256::from(new_tip) >= threshold(old_tip)
}

/// The transaction pool: validates incoming transactions, keeps them per sender as pending
/// (executable) or queued, and serves the block builder and RPC.
///
/// Every method takes `&self`; the state sits behind one `parking_lot` read-write lock that is
/// never held during signature recovery or state reads. Share it as `Arc<TxPool>`.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    pub(crate) inner: RwLock<PoolInner>,
    pending_hashes: broadcast::Sender<TxHash>,
}

impl TxPool {
    /// An empty pool with base fee 0; the node sets the head's with [`TxPool::set_base_fee`].
    pub fn new(config: PoolConfig) -> Self {
        let (pending_hashes, _) = broadcast::channel(config.notification_capacity.max(1));
        Self {
            config,
            inner: RwLock::new(PoolInner::default()),
            pending_hashes,
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The base fee the pool checks fee caps against and ranks transactions by.
    pub fn base_fee(&self) -> u64 {
        self.inner.read().base_fee
    }

    /// Sets the base fee (that of the next block). Pooled transactions whose fee cap falls
    /// below it stay, like geth's: the block builder skips them until the base fee comes back
    /// down. New ones below it are refused.
    pub fn set_base_fee(&self, base_fee: u64) {
        self.inner.write().set_base_fee(base_fee);
    }

    /// Validates a raw EIP-2718 transaction (as `eth_sendRawTransaction` receives it) against
    /// the chain rules and `state` (the latest committed state), and pools it.
    ///
    /// Checks, each with its own [`PoolError`]: size, type (legacy, EIP-2930 and EIP-1559 only),
    /// decoding, chain id, init-code size, gas limit against the per-transaction cap and the
    /// block gas limit, tip not above fee cap, nonce bound, intrinsic gas and calldata floor,
    /// minimum tip, signature, fee cap against the base fee, sender not a contract, nonce not
    /// below the account's, balance covering this and the sender's earlier pooled
    /// transactions, replacement bump, per-account and pool limits.
    pub fn add_raw<R: StateReader>(&self, raw: Bytes, state: &R) -> Result<TxHash, PoolError> {
        let unrecovered = validation::decode_unrecovered(raw, &self.config)?;
        // Gossip brings the same transaction many times: skip the costly recovery for those.
        if self.contains(&unrecovered.hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let tx = unrecovered.recover()?;
        let account = read_account(state, &tx.sender())?;
        let mut promoted = Vec::new();
        let mut evicted = 0;
        let result = {
            let mut inner = self.inner.write();
            let result = inner.admit(tx, account, &self.config, &mut promoted, &mut evicted);
            promoted = inner.still_pooled(promoted);
            result
        };
        self.announce(promoted);
        result
    }

    /// [`TxPool::add_raw`] for many transactions: decoding and signature recovery run in
    /// parallel on the rayon pool, then all are pooled in the given order under one lock, so
    /// the results equal those of calling `add_raw` on each in turn.
    pub fn add_raw_batch<R: StateReader>(
        &self,
        raws: Vec<Bytes>,
        state: &R,
    ) -> Vec<Result<TxHash, PoolError>> {
        let decoded: Vec<Result<Unrecovered, PoolError>> = raws
            .into_par_iter()
            .map(|raw| validation::decode_unrecovered(raw, &self.config))
            .collect();
        let decoded: Vec<Result<Unrecovered, PoolError>> = {
            let inner = self.inner.read();
            decoded
                .into_iter()
                .map(|result| match result {
                    Ok(tx) if inner.by_hash.contains_key(&tx.hash) => Err(PoolError::AlreadyKnown),
                    other => other,
                })
                .collect()
        };
        let recovered: Vec<Result<(PooledTx, Option<Account>), PoolError>> = decoded
            .into_par_iter()
            .map(|result| {
                let tx = result?.recover()?;
                let account = read_account(state, &tx.sender())?;
                Ok((tx, account))
            })
            .collect();
        let mut promoted = Vec::new();
        let mut evicted = 0;
        let results = {
            let mut inner = self.inner.write();
            let results = recovered
                .into_iter()
                .map(|result| {
                    let (tx, account) = result?;
                    inner.admit(tx, account, &self.config, &mut promoted, &mut evicted)
                })
                .collect();
            promoted = inner.still_pooled(promoted);
            results
        };
        self.announce(promoted);
        results
    }

    /// Brings the pool up to a new head: reads the accounts in `changed` (at least the senders
    /// of the block's transactions; the accounts of the block's whole state diff are fine too)
    /// from `state`, drops transactions whose nonce is now used or whose cost alone exceeds
    /// the new balance, promotes what became executable, and sets the base fee of the next
    /// block. Senders of re-injected transactions are read as well.
    ///
    /// Transactions whose fee cap is below the new base fee stay pooled (geth does the same);
    /// [`TxPool::best_transactions`] skips them.
    pub fn on_new_block<R: StateReader>(
        &self,
        changed: &[Address],
        state: &R,
        base_fee: u64,
    ) -> PoolUpdate {
        let mut targets: Vec<Address> = {
            let inner = self.inner.read();
            changed
                .iter()
                .filter(|sender| inner.senders.contains_key(*sender))
                .copied()
                .chain(
                    inner
                        .senders
                        .iter()
                        .filter(|(_, txs)| txs.needs_refresh)
                        .map(|(sender, _)| *sender),
                )
                .collect()
        };
        targets.sort_unstable();
        targets.dedup();
        // Read outside the lock: admissions continue meanwhile.
        let accounts: Vec<(Address, Result<Option<Account>, PoolError>)> = targets
            .into_par_iter()
            .map(|sender| (sender, read_account(state, &sender)))
            .collect();

        let mut update = PoolUpdate::default();
        let mut promoted = Vec::new();
        {
            let mut inner = self.inner.write();
            inner.set_base_fee(base_fee);
            for (sender, account) in accounts {
                match account {
                    Ok(account) => {
                        update.removed += inner.refresh_sender(
                            sender,
                            account.unwrap_or_default(),
                            &self.config,
                            &mut promoted,
                        );
                    }
                    Err(err) => {
                        tracing::warn!(%sender, %err, "pool cannot refresh sender; keeps its transactions");
                    }
                }
            }
            update.evicted = inner.enforce_limits(&self.config);
            promoted = inner.still_pooled(promoted);
        }
        update.promoted = promoted.len();
        self.announce(promoted);
        update
    }

    /// Returns to the pool the transactions of blocks a reorg abandoned. Those already pooled,
    /// or whose sender has since pooled another transaction with the same nonce, are skipped.
    ///
    /// The pool cannot read their senders' accounts here; it assumes the returned transactions
    /// are executable and re-reads those accounts at the next [`TxPool::on_new_block`], which
    /// the node calls for the new head right after.
    pub fn reinject(&self, txs: Vec<Arc<PooledTx>>) -> PoolUpdate {
        let mut txs = txs;
        // Lowest nonce first per sender, so that the guessed account nonce is the lowest one.
        txs.sort_by_key(|tx| (tx.sender(), tx.nonce()));
        let mut update = PoolUpdate::default();
        let mut promoted = Vec::new();
        {
            let mut inner = self.inner.write();
            for tx in txs {
                inner.reinject(tx, &self.config, &mut promoted);
            }
            update.evicted = inner.enforce_limits(&self.config);
            promoted = inner.still_pooled(promoted);
        }
        update.promoted = promoted.len();
        self.announce(promoted);
        update
    }

    /// Removes one transaction; those of its sender with higher nonces become queued (and the
    /// cheapest queued ones are evicted if that overfills the queue).
    pub fn remove(&self, hash: &TxHash) -> Option<Arc<PooledTx>> {
        let mut inner = self.inner.write();
        let tx = inner.by_hash.get(hash)?.clone();
        let removed = inner.remove_at(tx.sender(), tx.nonce());
        // The demoted transactions may overfill the queue.
        inner.enforce_limits(&self.config);
        removed
    }

    /// The block builder's iterator over executable transactions under `base_fee`: highest
    /// effective tip first across senders (earlier arrival first on ties), each sender's in
    /// nonce order. Senders whose next transaction's fee cap is below `base_fee` are skipped.
    /// Call [`BestTransactions::mark_invalid`] to drop the rest of a sender whose transaction
    /// failed or did not fit.
    pub fn best_transactions(&self, base_fee: u64) -> BestTransactions<'_> {
        BestTransactions::new(self, base_fee)
    }

    /// The pooled transaction with this hash.
    pub fn get(&self, hash: &TxHash) -> Option<Arc<PooledTx>> {
        self.inner.read().by_hash.get(hash).cloned()
    }

    /// Whether the pool holds this transaction.
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.inner.read().by_hash.contains_key(hash)
    }

    /// The nonce `address`'s next transaction should use counting its pending transactions
    /// (`eth_getTransactionCount(address, "pending")`); `None` if the pool holds nothing from
    /// it, in which case the account nonce is the answer.
    pub fn pending_nonce(&self, address: &Address) -> Option<u64> {
        self.inner
            .read()
            .senders
            .get(address)
            .map(SenderTxs::pending_end)
    }

    /// Numbers of pending and queued transactions.
    pub fn status(&self) -> PoolStatus {
        let inner = self.inner.read();
        PoolStatus {
            pending: inner.pending_total,
            queued: inner.queued_total,
        }
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.inner.read().by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pooled transaction, by sender and nonce, pending and queued apart.
    pub fn content(&self) -> PoolContent {
        let inner = self.inner.read();
        let mut content = PoolContent::default();
        for (sender, txs) in &inner.senders {
            let pending_end = txs.pending_end();
            for (nonce, entry) in &txs.txs {
                let set = if *nonce < pending_end {
                    &mut content.pending
                } else {
                    &mut content.queued
                };
                set.entry(*sender)
                    .or_default()
                    .insert(*nonce, entry.tx.clone());
            }
        }
        content
    }

    /// A receiver of the hashes of transactions as they become pending (on admission or
    /// promotion), each at most once while pooled. The channel is bounded
    /// ([`PoolConfig::notification_capacity`]); a slow receiver sees `Lagged` and skips ahead.
    pub fn subscribe(&self) -> broadcast::Receiver<TxHash> {
        self.pending_hashes.subscribe()
    }

    fn announce(&self, hashes: Vec<TxHash>) {
        for hash in hashes {
            // No receiver is not an error: nobody is listening.
            let _ = self.pending_hashes.send(hash);
        }
    }

    /// Checks the pool's internal invariants: every sender's pending run is gap-free from its
    /// account nonce, affordable, within the slot limit and as long as it can be; totals,
    /// hash index and eviction index agree with the per-sender sets; the pool is within its
    /// limits. For tests; returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let inner = self.inner.read();
        let config = &self.config;
        let (mut pending, mut queued, mut all) = (0, 0, 0);
        for (sender, txs) in &inner.senders {
            if txs.txs.is_empty() {
                return Err(format!("{sender}: empty sender kept"));
            }
            let mut cost = U256::ZERO;
            for (i, (nonce, entry)) in txs.txs.iter().enumerate() {
                if entry.tx.sender() != *sender || entry.tx.nonce() != *nonce {
                    return Err(format!("{sender}: entry at {nonce} misfiled"));
                }
                if *nonce < txs.state_nonce {
                    return Err(format!(
                        "{sender}: nonce {nonce} below state {}",
                        txs.state_nonce
                    ));
                }
                if inner.by_hash.get(&entry.tx.hash()) != Some(&entry.tx) {
                    return Err(format!("{sender}: nonce {nonce} missing from hash index"));
                }
                if i < txs.pending_len {
                    if *nonce != txs.state_nonce + i as u64 {
                        return Err(format!("{sender}: gap in pending run at {nonce}"));
                    }
                    cost += entry.tx.cost();
                }
            }
            if cost != txs.pending_cost {
                return Err(format!(
                    "{sender}: pending cost {} != {cost}",
                    txs.pending_cost
                ));
            }
            if cost > txs.balance {
                return Err(format!("{sender}: pending run unaffordable"));
            }
            if txs.pending_len > config.account_slots {
                return Err(format!(
                    "{sender}: {} pending over the slot limit",
                    txs.pending_len
                ));
            }
            let mut probe = txs.clone();
            probe.extend_pending(config.account_slots, &mut Vec::new());
            if probe.pending_len != txs.pending_len {
                return Err(format!("{sender}: pending run not maximal"));
            }
            let pending_key = txs
                .pending_tail()
                .map(|entry| eviction_key(entry, inner.base_fee));
            let queued_key = txs
                .queued_tail()
                .map(|entry| eviction_key(entry, inner.base_fee));
            if inner.tail_keys.get(sender) != Some(&(pending_key, queued_key))
                || pending_key.is_some_and(|key| !inner.pending_tails.contains(&(key, *sender)))
                || queued_key.is_some_and(|key| !inner.queued_tails.contains(&(key, *sender)))
            {
                return Err(format!("{sender}: eviction index out of date"));
            }
            pending += txs.pending_len;
            queued += txs.queued_len();
            all += txs.txs.len();
        }
        if (pending, queued) != (inner.pending_total, inner.queued_total) {
            return Err(format!(
                "totals {}/{} != counted {pending}/{queued}",
                inner.pending_total, inner.queued_total
            ));
        }
        if all != inner.by_hash.len() {
            return Err(format!("hash index holds {} != {all}", inner.by_hash.len()));
        }
        if inner.pending_tails.len() + inner.queued_tails.len()
            != inner
                .tail_keys
                .values()
                .map(|(p, q)| usize::from(p.is_some()) + usize::from(q.is_some()))
                .sum::<usize>()
        {
            return Err("eviction index holds stale entries".to_owned());
        }
        if pending > config.global_slots || queued > config.global_queue {
            return Err(format!(
                "over the limits: {pending} pending, {queued} queued"
            ));
        }
        Ok(())
    }
}

fn read_account<R: StateReader>(
    state: &R,
    address: &Address,
) -> Result<Option<Account>, PoolError> {
    state
        .account(address)
        .map_err(|err| PoolError::StateRead(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{Signed, TxEip1559, TxEnvelope};
    use alloy_primitives::{B256, Signature};

    fn pooled(max_fee: u128, tip: u128) -> PooledTx {
        let tx = TxEip1559 {
            chain_id: 1,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            gas_limit: 21_000,
            ..TxEip1559::default()
        };
        // The signature is never checked on this path.
        let signature = Signature::new(U256::from(1), U256::from(1), false);
        let envelope = TxEnvelope::from(Signed::new_unchecked(tx, signature, B256::ZERO));
        PooledTx::from_recovered(envelope, Address::ZERO).unwrap()
    }

    #[test]
    fn replacement_threshold_uses_integer_percentages_like_geth() {
        let old = pooled(101, 101);
        // 101 × 110 / 100 = 111 (rounded down, as geth computes it).
        assert!(outbids(&pooled(111, 111), &old, 10));
        assert!(!outbids(&pooled(110, 111), &old, 10));
        assert!(!outbids(&pooled(111, 110), &old, 10));
        // A zero bump still requires paying more.
        assert!(!outbids(&pooled(101, 101), &old, 0));
        assert!(outbids(&pooled(102, 102), &old, 0));
        // No overflow near the top of the range.
        let top = pooled(u128::MAX - 1, u128::MAX - 1);
        assert!(!outbids(&pooled(u128::MAX, u128::MAX), &top, 10));
    }

    #[test]
    fn eviction_rank_puts_transactions_below_the_base_fee_last() {
        let base_fee = 10;
        let below = price_rank(&pooled(9, 9), base_fee);
        let zero_tip = price_rank(&pooled(10, 0), base_fee);
        let capped = price_rank(&pooled(12, 5), base_fee);
        let tipped = price_rank(&pooled(100, 3), base_fee);
        assert!(below < zero_tip && zero_tip < capped && tipped > capped);
        assert_eq!(capped, (true, 2));
        assert_eq!(tipped, (true, 3));
    }

    #[test]
    fn pool_is_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<TxPool>();
        shareable::<PooledTx>();
        shareable::<BestTransactions<'static>>();
    }
}
