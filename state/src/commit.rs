//! Committing blocks and reverting them: turning account changes into flat-state writes, trie
//! updates (storage tries in parallel, then the account trie), changesets and pruning, all in
//! one `WriteBatch`.

use crate::StateError;
use crate::codec::{StoredAccount, decode_value, encode_value, storage_key};
use crate::columns::StateColumn;
use crate::db::{
    CfNodes, ChainWrite, Head, Inner, META_FIRST_CHANGESET, META_LATEST, META_TOP_PENDING,
    META_VERSION, NodeChanges, ResidentTrie, SCHEMA_VERSION, StateDb, latest_record, root_key,
    stage_node_changes, stage_nodes, trie_key,
};
use crate::history::{Changeset, Header, KeyFilter, add_entry, chunk_entries, header_db_key};
use crate::trie::{
    EMPTY_ROOT_HASH, IncrementalTrie, NibbleUpdate, Node, TrieChanges, account_rlp, build_root,
    prune_along, sort_dedup, storage_value_rlp, unpack,
};
use alloy_primitives::{Address, B256, U256, keccak256};
use chain_primitives::{Account, StateDiff};
use rayon::prelude::*;
use rocksdb::{ReadOptions, WriteBatch};
use std::collections::BTreeMap;
use std::time::Instant;

/// A raw database entry.
type KeyValue = (Vec<u8>, Vec<u8>);

/// A trie node change: the node's database key and the node, `None` deleting.
pub(crate) type NodeOp = (Vec<u8>, Option<Vec<u8>>);

/// Turns trie changes into node operations sorted by key (RocksDB inserts keys into a
/// memtable faster in order).
fn node_ops(owner: Option<&Address>, changes: TrieChanges, out: &mut Vec<NodeOp>) {
    let start = out.len();
    out.extend(
        changes
            .deletes
            .into_iter()
            .map(|path| (trie_key(owner, &path), None)),
    );
    out.extend(
        changes
            .writes
            .into_iter()
            .map(|(path, node)| (trie_key(owner, &path), Some(node))),
    );
    // Stable: a wipe's deletion pushed before stays before the write of the same key.
    out[start..].sort_by(|a, b| a.0.cmp(&b.0));
}

fn stage_node_ops(batch: &mut WriteBatch, cf: &rocksdb::ColumnFamily, ops: &[NodeOp]) {
    stage_nodes(batch, cf, ops.iter().map(|(key, node)| (key, node)));
}

/// One account's trie results, computed in parallel.
struct TrieWork {
    /// The new storage root and the storage trie's node operations, if the trie changed.
    storage: Option<(B256, Vec<NodeOp>)>,
    /// The account's key in the account trie.
    hashed_key: Vec<u8>,
}

/// What to do to one account.
#[derive(Clone, Debug)]
pub(crate) struct AccountChange {
    pub(crate) address: Address,
    /// The account afterwards; `None` deletes it with its storage.
    pub(crate) info: Option<Account>,
    /// Whether the storage before is void (slots then apply to an empty storage).
    pub(crate) clear_storage: bool,
    /// Slots written, sorted by slot; zero deletes.
    pub(crate) slots: Vec<(U256, U256)>,
}

/// What [`Inner::plan`] stages in a `WriteBatch` while the account trie is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Staging {
    /// Nothing: only the root is wanted.
    Nothing,
    /// The flat-state and storage-trie writes.
    Flat,
    /// Those and the plan's changeset, as block `number`'s.
    FlatAndChangeset(u64),
}

/// Everything a commit writes, computed before anything is written.
#[derive(Default)]
pub(crate) struct CommitPlan {
    /// The flat-state and storage-trie writes (and the changeset), staged while the account
    /// trie was computed (when staging was asked for).
    pub(crate) batch: Option<WriteBatch>,
    /// The filter of the staged changeset's keys.
    pub(crate) changeset_filter: Option<KeyFilter>,
    /// The new state root.
    pub(crate) root: B256,
    /// New records of changed accounts (`None`: deleted).
    pub(crate) accounts: Vec<(Address, Option<StoredAccount>)>,
    /// New values of changed slots (zero: deleted).
    pub(crate) storage: Vec<(Address, U256, U256)>,
    /// Accounts that did not exist before (for the existence filter).
    pub(crate) created: Vec<Address>,
    /// Storage-trie node changes, sorted by key; a wiped trie's deletions precede writes of
    /// the same key.
    pub(crate) storage_trie_ops: Vec<NodeOp>,
    /// Account-trie node changes, sorted by key.
    pub(crate) account_trie_ops: Vec<NodeOp>,
    /// What becomes of the account trie's top once the batch is written (`Written` from the
    /// plan on when the commit writes the whole top: the plan staged the pending nodes).
    pub(crate) top: TopWrite,
    /// The account trie's root node after the plan, clean, to keep in memory.
    pub(crate) account_trie_root: Node,
    /// The account-trie updates applied (sorted), to prune the kept nodes along their paths.
    pub(crate) account_updates: Vec<NibbleUpdate>,
    /// The values before, of everything that changed.
    pub(crate) changeset: Changeset,
    /// How long the plan's phases took.
    pub(crate) timings: PlanTimings,
}

/// How a commit's batch treats the account trie's top (see
/// [`StateConfig::top_write_interval`](crate::StateConfig::top_write_interval)).
#[derive(Default)]
pub(crate) enum TopWrite {
    /// Not staged (a plan that is not committed).
    #[default]
    NotStaged,
    /// The batch writes the whole top, the pending nodes included.
    Written,
    /// The batch leaves these top-node changes to memory.
    Pending(Vec<NodeOp>),
}

/// Wall time of a plan's phases, for the commit's debug log (where a commit's time goes).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlanTimings {
    /// Reading the old account records and slot values.
    pub(crate) reads: std::time::Duration,
    /// Updating and hashing the storage tries.
    pub(crate) storage_tries: std::time::Duration,
    /// Updating and hashing the account trie (staging the flat writes meanwhile).
    pub(crate) account_trie: std::time::Duration,
}

impl CommitPlan {
    /// A generous estimate of the bytes a batch holding this plan takes: RocksDB's record
    /// overhead is a few bytes per entry, account-trie branches about 560 bytes each.
    fn estimated_batch_bytes(&self) -> usize {
        let trie_bytes: usize = self
            .storage_trie_ops
            .iter()
            .map(|(key, node)| key.len() + node.as_ref().map_or(0, Vec::len) + 8)
            .sum();
        let changeset = self.changeset.accounts.len() * 120 + self.changeset.storage.len() * 90;
        trie_bytes
            + changeset
            + self.accounts.len() * (120 + 600)
            + self.storage.len() * 96
            + (1 << 16)
    }
}

/// Changes to the in-memory changeset filters that go with a write.
#[derive(Default)]
struct HistoryUpdate {
    /// The new block's changeset filter.
    added: Option<(u64, KeyFilter)>,
    /// Blocks whose changesets are deleted (pruned or reverted).
    removed: Vec<u64>,
}

/// One account's work within a plan.
struct Work {
    address: Address,
    old: Option<StoredAccount>,
    info: Option<Account>,
    /// The storage before is void (cleared, or the account is deleted).
    cleared: bool,
    /// Slots whose value changes: (slot, old, new).
    slot_changes: Vec<(U256, U256, U256)>,
    /// Slots the storage trie must receive: all non-zero slots when the trie is rebuilt from
    /// empty, else the changed ones.
    trie_slots: Vec<(U256, U256)>,
    /// Database keys of the stored storage-trie nodes to delete (the trie is wiped).
    wiped_trie_keys: Vec<Vec<u8>>,
    /// The whole storage before (non-zero slots, sorted), when it was read in one scan: the
    /// storage may be small, so that its root is recomputed from its slots.
    before: Option<Vec<(U256, U256)>>,
}

impl Work {
    fn old_storage_root(&self) -> B256 {
        self.old.map_or(EMPTY_ROOT_HASH, |a| a.storage_root)
    }
}

/// The start of one account's flat storage, read to tell whether it is small.
struct StorageScan {
    /// The account's work.
    index: usize,
    /// How many slots were asked for: fewer means the storage was read whole.
    limit: usize,
    /// The slots read, in slot order.
    slots: Vec<(U256, U256)>,
}

/// The first `limit` stored slots of `address`'s storage, in slot order, read with `iter` (a
/// flat-storage iterator bounded to the sought prefix).
fn slots_under(
    iter: &mut rocksdb::DBRawIterator<'_>,
    address: &Address,
    limit: usize,
) -> Result<Vec<(U256, U256)>, StateError> {
    iter.seek(address.as_slice());
    let mut slots = Vec::new();
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        if slots.len() == limit || !key.starts_with(address.as_slice()) {
            break;
        }
        if key.len() != 52 {
            return Err(StateError::corruption("storage key is not 52 bytes"));
        }
        let value = decode_value(value)?;
        if value.is_zero() {
            return Err(StateError::corruption("zero value stored in flat storage"));
        }
        slots.push((U256::from_be_slice(&key[20..]), value));
        iter.next();
    }
    iter.status()?;
    Ok(slots)
}

/// The non-zero slots of `before` (sorted, non-zero) after `changes` (sorted: slot, old, new).
fn apply_changes(before: &[(U256, U256)], changes: &[(U256, U256, U256)]) -> Vec<(U256, U256)> {
    let mut after = Vec::with_capacity(before.len() + changes.len());
    let mut old = before.iter().peekable();
    for &(slot, _, new) in changes {
        while let Some(&&entry) = old.peek() {
            if entry.0 >= slot {
                break;
            }
            after.push(entry);
            old.next();
        }
        if old.peek().is_some_and(|entry| entry.0 == slot) {
            old.next();
        }
        if !new.is_zero() {
            after.push((slot, new));
        }
    }
    after.extend(old);
    after
}

/// How many non-zero slots `before` has after `changes` (whose old values are `before`'s).
fn after_count(before: &[(U256, U256)], changes: &[(U256, U256, U256)]) -> usize {
    changes.iter().fold(before.len(), |count, (_, old, new)| {
        match (old.is_zero(), new.is_zero()) {
            (true, false) => count + 1,
            (false, true) => count - 1,
            _ => count,
        }
    })
}

/// The storage trie of `slots` (any order; zeros skipped) built in one pass; its nodes are
/// returned as writes unless the storage is small (at most `small_bound` slots).
fn build_storage(slots: &[(U256, U256)], small_bound: usize) -> (B256, TrieChanges) {
    let mut leaves: Vec<(B256, Vec<u8>)> = slots
        .iter()
        .filter(|(_, value)| !value.is_zero())
        .map(|(slot, value)| {
            (
                keccak256(slot.to_be_bytes::<32>()),
                storage_value_rlp(*value),
            )
        })
        .collect();
    leaves.sort_unstable_by_key(|leaf| leaf.0);
    storage_trie(&leaves, small_bound)
}

/// The storage trie of `leaves` (hashed slot, value RLP; sorted, distinct) built in one pass;
/// its nodes are returned as writes unless the storage is small (at most `small_bound` slots):
/// small storage keeps no nodes, its root is recomputed from its slots when it changes.
pub(crate) fn storage_trie(leaves: &[(B256, Vec<u8>)], small_bound: usize) -> (B256, TrieChanges) {
    if leaves.len() <= small_bound {
        return (build_root(leaves, None), TrieChanges::default());
    }
    let writes = parking_lot::Mutex::new(Vec::with_capacity(leaves.len() + 2));
    let sink = |path: &[u8], node: &[u8]| writes.lock().push((path.to_vec(), node.to_vec()));
    let root = build_root(leaves, Some(&sink));
    (
        root,
        TrieChanges {
            writes: writes.into_inner(),
            deletes: Vec::new(),
        },
    )
}

pub(crate) fn changes_of(diff: &StateDiff) -> Vec<AccountChange> {
    diff.accounts
        .iter()
        .map(|(address, update)| AccountChange {
            address: *address,
            info: update.info,
            clear_storage: update.storage_cleared,
            slots: update
                .storage
                .iter()
                .map(|(slot, value)| (*slot, *value))
                .collect(),
        })
        .collect()
}

impl Inner {
    /// Old records of `addresses` (sorted), from the filter, the cache, then one batched read.
    /// Does not fill the cache: the commit is about to change these entries.
    fn accounts_before(
        &self,
        addresses: &[Address],
    ) -> Result<Vec<Option<StoredAccount>>, StateError> {
        let mut result = vec![None; addresses.len()];
        let mut missing = Vec::new();
        {
            let filter = self.filter.read();
            for (i, address) in addresses.iter().enumerate() {
                if !filter.may_contain(address) {
                    continue;
                }
                match self.account_cache.peek(address) {
                    Some(cached) => result[i] = cached,
                    None => missing.push(i),
                }
            }
        }
        let keys: Vec<&[u8]> = missing.iter().map(|&i| addresses[i].as_slice()).collect();
        let values = self
            .db
            .batched_multi_get_cf(self.cf(StateColumn::Accounts), keys, true);
        for (i, value) in missing.into_iter().zip(values) {
            if let Some(bytes) = value? {
                result[i] = Some(StoredAccount::decode(&bytes)?);
            }
        }
        Ok(result)
    }

    /// All stored entries of `cf` under the 20-byte prefix `address`.
    fn entries_under(
        &self,
        column: StateColumn,
        address: &Address,
    ) -> Result<Vec<KeyValue>, StateError> {
        let mut options = ReadOptions::default();
        options.set_prefix_same_as_start(true);
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(column), options);
        iter.seek(address.as_slice());
        let mut entries = Vec::new();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if !key.starts_with(address.as_slice()) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
            iter.next();
        }
        iter.status()?;
        Ok(entries)
    }

    /// Takes the in-memory top of the account trie if it belongs to `root`.
    pub(crate) fn take_resident(&self, root: B256) -> Option<Node> {
        self.resident
            .lock()
            .take()
            .filter(|resident| resident.root == root)
            .map(|r| r.node)
    }

    /// Computes the plan for applying `changes` (sorted by address, one per address) on top
    /// of the state whose root is `parent_root`; `resident` is that state's account trie top
    /// from memory, if known. What `staging` asks for is put in `plan.batch` meanwhile (the
    /// account-trie writes are left to [`Inner::stage_account_trie`]).
    pub(crate) fn plan(
        &self,
        changes: Vec<AccountChange>,
        parent_root: B256,
        resident: Option<Node>,
        staging: Staging,
        write_top: bool,
    ) -> Result<CommitPlan, StateError> {
        if self.pending_top.lock().interrupted {
            return Err(StateError::Interrupted);
        }
        let started = Instant::now();
        let mut timings = PlanTimings::default();
        let addresses: Vec<Address> = changes.iter().map(|c| c.address).collect();
        debug_assert!(
            addresses.windows(2).all(|w| w[0] < w[1]),
            "changes not sorted"
        );
        let olds = self.accounts_before(&addresses)?;

        let mut plan = CommitPlan::default();
        let mut works: Vec<Work> = Vec::with_capacity(changes.len());
        // Slots whose old value must be read: (work index, slot index, key).
        let mut lookups: Vec<(usize, usize, [u8; 52])> = Vec::new();
        // Works whose storage is read whole first (it may be small).
        let mut scans: Vec<usize> = Vec::new();
        let small_bound = self.small_storage_max_slots;
        // Old values of a work's slots: from `scanned`, a run of its stored slots from the
        // first (a slot up to its last one and absent from it is zero), else from the cache,
        // else queued for the batched read.
        let old_values_of =
            |work: &mut Work,
             index: usize,
             scanned: &[(U256, U256)],
             lookups: &mut Vec<(usize, usize, [u8; 52])>| {
                let scanned_to = scanned.last().map(|(slot, _)| *slot);
                for (position, change) in work.slot_changes.iter_mut().enumerate() {
                    if scanned_to.is_some_and(|last| change.0 <= last) {
                        change.1 = scanned
                            .binary_search_by_key(&change.0, |(slot, _)| *slot)
                            .map_or(U256::ZERO, |i| scanned[i].1);
                        continue;
                    }
                    match self.storage_cache.peek(&(work.address, change.0)) {
                        Some(value) => change.1 = value,
                        None => {
                            lookups.push((index, position, storage_key(&work.address, &change.0)))
                        }
                    }
                }
            };
        for (change, old) in changes.into_iter().zip(olds) {
            let cleared = change.clear_storage || change.info.is_none();
            let old_root = old.map_or(EMPTY_ROOT_HASH, |a| a.storage_root);
            let mut work = Work {
                address: change.address,
                old,
                info: change.info,
                cleared,
                slot_changes: Vec::new(),
                trie_slots: Vec::new(),
                wiped_trie_keys: Vec::new(),
                before: None,
            };
            let new_slots = if change.info.is_some() {
                change.slots
            } else {
                Vec::new()
            };
            if cleared {
                let mut before: BTreeMap<U256, U256> = BTreeMap::new();
                if old_root != EMPTY_ROOT_HASH {
                    for (key, value) in self.entries_under(StateColumn::Storage, &change.address)? {
                        before.insert(U256::from_be_slice(&key[20..]), decode_value(&value)?);
                    }
                    work.wiped_trie_keys = self
                        .entries_under(StateColumn::StorageTrie, &change.address)?
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect();
                }
                for (slot, new) in new_slots {
                    let old = before.remove(&slot).unwrap_or_default();
                    if old != new {
                        work.slot_changes.push((slot, old, new));
                    }
                    if !new.is_zero() {
                        work.trie_slots.push((slot, new));
                    }
                }
                // What the block did not rewrite is gone.
                work.slot_changes.extend(
                    before
                        .into_iter()
                        .map(|(slot, old)| (slot, old, U256::ZERO)),
                );
                work.slot_changes.sort_unstable_by_key(|(slot, _, _)| *slot);
            } else {
                // The old values are zero for now; they are filled in below.
                work.slot_changes = new_slots
                    .into_iter()
                    .map(|(slot, new)| (slot, U256::ZERO, new))
                    .collect();
                if old_root != EMPTY_ROOT_HASH && !work.slot_changes.is_empty() {
                    if small_bound > 0 {
                        scans.push(works.len());
                    } else {
                        old_values_of(&mut work, works.len(), &[], &mut lookups);
                    }
                }
            }
            works.push(work);
        }

        // Storage that may be small is read whole, up to the bound plus the slots this block
        // may delete (so that storage shrinking to the bound is seen whole). One iterator per
        // chunk of the (sorted) accounts, seeking forward: creating an iterator pins and sets
        // up every memtable and file of the column family.
        let scanned: Vec<Vec<StorageScan>> = scans
            .par_chunks(256)
            .map(|chunk| {
                let mut options = ReadOptions::default();
                options.set_prefix_same_as_start(true);
                let mut iter = self
                    .db
                    .raw_iterator_cf_opt(self.cf(StateColumn::Storage), options);
                chunk
                    .iter()
                    .map(|&index| {
                        let work = &works[index];
                        let deletes = work.slot_changes.iter().filter(|c| c.2.is_zero()).count();
                        let limit = small_bound + 1 + deletes;
                        Ok(StorageScan {
                            index,
                            limit,
                            slots: slots_under(&mut iter, &work.address, limit)?,
                        })
                    })
                    .collect()
            })
            .collect::<Result<_, StateError>>()?;
        for StorageScan {
            index,
            limit,
            slots,
        } in scanned.into_iter().flatten()
        {
            let work = &mut works[index];
            if slots.len() >= limit {
                // Large: its nodes are updated; the scan answers what it covers.
                old_values_of(work, index, &slots, &mut lookups);
                continue;
            }
            if slots.is_empty() {
                return Err(StateError::corruption(format!(
                    "account {} has a storage root but no storage",
                    work.address
                )));
            }
            // Read whole: a slot absent from it is zero.
            for change in &mut work.slot_changes {
                if let Ok(i) = slots.binary_search_by_key(&change.0, |(slot, _)| *slot) {
                    change.1 = slots[i].1;
                }
            }
            work.before = Some(slots);
        }

        // Old values of slots not in the cache: one batched, sorted read.
        if !lookups.is_empty() {
            let keys: Vec<&[u8; 52]> = lookups.iter().map(|(_, _, key)| key).collect();
            let values = self
                .db
                .batched_multi_get_cf(self.cf(StateColumn::Storage), keys, true);
            for ((work, position, _), value) in lookups.iter().zip(values) {
                if let Some(bytes) = value? {
                    works[*work].slot_changes[*position].1 = decode_value(&bytes)?;
                }
            }
        }
        for work in works.iter_mut().filter(|w| !w.cleared) {
            work.slot_changes.retain(|(_, old, new)| old != new);
            work.trie_slots = work
                .slot_changes
                .iter()
                .map(|(slot, _, new)| (*slot, *new))
                .collect();
        }

        timings.reads = started.elapsed();
        let started = Instant::now();
        // Storage tries and account keys, in parallel across accounts.
        let storage_cf = self.cf(StateColumn::StorageTrie);
        let trie_results: Vec<Result<TrieWork, StateError>> = works
            .par_iter_mut()
            .map(|work| {
                let hashed_key = unpack(keccak256(work.address).as_slice());
                let mut ops: Vec<NodeOp> = std::mem::take(&mut work.wiped_trie_keys)
                    .into_iter()
                    .map(|key| (key, None))
                    .collect();
                if work.info.is_none() || (!work.cleared && work.trie_slots.is_empty()) {
                    let storage = (!ops.is_empty()).then_some((EMPTY_ROOT_HASH, ops));
                    return Ok(TrieWork {
                        storage,
                        hashed_key,
                    });
                }
                let start = if work.cleared {
                    EMPTY_ROOT_HASH
                } else {
                    work.old_storage_root()
                };
                let before = work.before.take();
                let (root, changes) = if start == EMPTY_ROOT_HASH {
                    // A new storage trie: built in one pass, its nodes stored if not small.
                    build_storage(&work.trie_slots, small_bound)
                } else if let Some(before) = before.filter(|before| {
                    // Small before or after: rebuilt here. Large both times: updated through
                    // its stored nodes below.
                    before.len() <= small_bound
                        || after_count(before, &work.slot_changes) <= small_bound
                }) {
                    // Small before or after: rebuilt from its whole slots, and nodes stored
                    // before are deleted or written now.
                    let after = apply_changes(&before, &work.slot_changes);
                    if before.len() > small_bound {
                        ops.extend(
                            self.entries_under(StateColumn::StorageTrie, &work.address)?
                                .into_iter()
                                .map(|(key, _)| (key, None)),
                        );
                    }
                    build_storage(&after, small_bound)
                } else {
                    // Not cleared: the trie's slots are exactly the changed ones.
                    let mut updates: Vec<NibbleUpdate> = work
                        .slot_changes
                        .iter()
                        .map(|(slot, old, new)| NibbleUpdate {
                            key: unpack(keccak256(slot.to_be_bytes::<32>()).as_slice()),
                            value: (!new.is_zero()).then(|| storage_value_rlp(*new)),
                            old_value: (!old.is_zero()).then(|| storage_value_rlp(*old)),
                        })
                        .collect();
                    sort_dedup(&mut updates);
                    let source = CfNodes {
                        db: &self.db,
                        cf: storage_cf,
                        owner: Some(work.address),
                        newer: None,
                    };
                    let mut trie = IncrementalTrie::open(&source, start);
                    trie.apply(&updates)?;
                    trie.commit()
                };
                node_ops(Some(&work.address), changes, &mut ops);
                Ok(TrieWork {
                    storage: Some((root, ops)),
                    hashed_key,
                })
            })
            .collect();

        timings.storage_tries = started.elapsed();
        // Account records, the account trie's updates, flat writes and the changeset.
        let mut account_updates: Vec<NibbleUpdate> = Vec::new();
        for (work, result) in works.into_iter().zip(trie_results) {
            let TrieWork {
                storage,
                hashed_key,
            } = result?;
            let new_root = match storage {
                Some((root, ops)) => {
                    plan.storage_trie_ops.extend(ops);
                    root
                }
                None if work.cleared => EMPTY_ROOT_HASH,
                None => work.old_storage_root(),
            };
            let new = work.info.map(|info| StoredAccount {
                info,
                storage_root: new_root,
            });
            for (slot, old, new) in work.slot_changes {
                plan.changeset.storage.push((work.address, slot, old));
                plan.storage.push((work.address, slot, new));
            }
            if new == work.old {
                continue;
            }
            if work.old.is_none() {
                plan.created.push(work.address);
            }
            plan.changeset.accounts.push((work.address, work.old));
            plan.accounts.push((work.address, new));
            account_updates.push(NibbleUpdate {
                key: hashed_key,
                value: new.map(|account| account_rlp(&account.info, account.storage_root)),
                old_value: work
                    .old
                    .map(|account| account_rlp(&account.info, account.storage_root)),
            });
        }
        account_updates.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        // The top nodes not written yet are newer than the column family's: read them first.
        let pending_top = self.pending_top.lock();
        let source = CfNodes {
            db: &self.db,
            cf: self.cf(StateColumn::AccountTrie),
            owner: None,
            newer: Some((&pending_top.nodes, self.config.resident_trie_depth)),
        };
        let mut trie = match resident {
            Some(node) => IncrementalTrie::from_node(&source, node),
            None => IncrementalTrie::open(&source, parent_root),
        };
        // The account trie and the batch of everything else are independent: build both at
        // once.
        // A commit that writes the account trie's top stages the pending nodes with the rest,
        // before the plan's own writes of the same keys (which come later and win).
        let pending_nodes =
            (write_top && staging != Staging::Nothing).then_some(&pending_top.nodes);
        let estimated_bytes = plan.estimated_batch_bytes()
            + pending_nodes.map_or(0, |nodes| {
                nodes
                    .iter()
                    .map(|(key, node)| key.len() + node.as_ref().map_or(0, Vec::len) + 8)
                    .sum()
            });
        let (accounts, storage, storage_trie_ops, changeset) = (
            &plan.accounts,
            &plan.storage,
            &plan.storage_trie_ops,
            &plan.changeset,
        );
        let started = Instant::now();
        let (computed, staged) = rayon::join(
            || -> Result<_, StateError> {
                trie.apply(&account_updates)?;
                Ok(trie.commit_keeping_nodes())
            },
            || {
                if staging == Staging::Nothing {
                    return None;
                }
                // Reserved up front: growing a batch of megabytes copies it each time.
                let mut batch = WriteBatch::with_capacity_bytes(estimated_bytes);
                if let Some(nodes) = pending_nodes {
                    stage_node_changes(&mut batch, self.cf(StateColumn::AccountTrie), nodes);
                }
                self.stage_flat(&mut batch, accounts, storage, storage_trie_ops);
                let filter = match staging {
                    Staging::FlatAndChangeset(number) => {
                        Some(self.stage_changeset(&mut batch, number, changeset))
                    }
                    _ => None,
                };
                Some((batch, filter))
            },
        );
        let (root, changes, node) = computed?;
        timings.account_trie = started.elapsed();
        plan.timings = timings;
        if let Some((batch, filter)) = staged {
            plan.batch = Some(batch);
            plan.changeset_filter = filter;
        }
        plan.root = root;
        if pending_nodes.is_some() {
            plan.top = TopWrite::Written;
        }
        plan.account_trie_root = node;
        plan.account_updates = account_updates;
        node_ops(None, changes, &mut plan.account_trie_ops);
        Ok(plan)
    }

    /// Adds the plan's flat-state and storage-trie writes to `batch`.
    fn stage_flat(
        &self,
        batch: &mut WriteBatch,
        accounts: &[(Address, Option<StoredAccount>)],
        storage: &[(Address, U256, U256)],
        storage_trie_ops: &[NodeOp],
    ) {
        let accounts_cf = self.cf(StateColumn::Accounts);
        for (address, account) in accounts {
            match account {
                Some(account) => batch.put_cf(accounts_cf, address, account.encode()),
                None => batch.delete_cf(accounts_cf, address),
            }
        }
        let storage_cf = self.cf(StateColumn::Storage);
        for (address, slot, value) in storage {
            let key = storage_key(address, slot);
            if value.is_zero() {
                batch.delete_cf(storage_cf, key);
            } else {
                batch.put_cf(storage_cf, key, encode_value(*value));
            }
        }
        stage_node_ops(batch, self.cf(StateColumn::StorageTrie), storage_trie_ops);
    }

    /// Whether the next commit must write the account trie's whole top: every
    /// `top_write_interval` commits, always without a resident top.
    pub(crate) fn top_write_due(&self) -> bool {
        self.config.resident_trie_depth == 0
            || self.pending_top.lock().commits + 1 >= self.config.top_write_interval
    }

    /// Adds the plan's account-trie writes to `batch`. A plan that writes the top (its
    /// pending nodes are already in the batch) adds all of them and clears the mark; the
    /// others add the nodes below the resident depth, mark the top as pending, and keep its
    /// changes for memory (merged into `pending_top` once the batch is written).
    pub(crate) fn stage_account_trie(
        &self,
        batch: &mut WriteBatch,
        plan: &mut CommitPlan,
        number: u64,
    ) {
        let cf = self.cf(StateColumn::AccountTrie);
        let meta = self.cf(StateColumn::Meta);
        if let TopWrite::Written = plan.top {
            stage_node_ops(batch, cf, &plan.account_trie_ops);
            batch.delete_cf(meta, META_TOP_PENDING);
            return;
        }
        let depth = self.config.resident_trie_depth;
        // A key ends with its path's length in nibbles.
        let (top, below): (Vec<NodeOp>, Vec<NodeOp>) = std::mem::take(&mut plan.account_trie_ops)
            .into_iter()
            .partition(|(key, _)| key.last().is_some_and(|&len| usize::from(len) < depth));
        stage_node_ops(batch, cf, &below);
        if self.pending_top.lock().commits == 0 {
            // The first commit whose top is not written marks it (and the layout that has
            // such marks).
            batch.put_cf(meta, META_TOP_PENDING, number.to_be_bytes());
            batch.put_cf(meta, META_VERSION, SCHEMA_VERSION.to_be_bytes());
        }
        plan.account_trie_ops = below;
        plan.top = TopWrite::Pending(top);
    }

    /// Adds block `number`'s changeset to `batch`; returns the filter of its keys.
    fn stage_changeset(
        &self,
        batch: &mut WriteBatch,
        number: u64,
        changeset: &Changeset,
    ) -> KeyFilter {
        let cf = self.cf(StateColumn::Changesets);
        let (entries, filter) = changeset.encode(number);
        for (key, value) in entries {
            batch.put_cf(cf, key, value);
        }
        filter
    }

    /// The header of block `number`'s stored changeset, if any.
    pub(crate) fn changeset_header(&self, number: u64) -> Result<Option<Header>, StateError> {
        let cf = self.cf(StateColumn::Changesets);
        match self.db.get_pinned_cf(cf, header_db_key(number))? {
            Some(bytes) => Ok(Some(Header::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The whole stored changeset of block `number` with its header, if any.
    pub(crate) fn changeset(&self, number: u64) -> Result<Option<(Header, Changeset)>, StateError> {
        let Some(header) = self.changeset_header(number)? else {
            return Ok(None);
        };
        let cf = self.cf(StateColumn::Changesets);
        let mut changeset = Changeset::default();
        for index in 0..header.first_keys.len() as u16 {
            let chunk = self
                .db
                .get_pinned_cf(cf, Header::chunk_db_key(number, index))?
                .ok_or_else(|| {
                    StateError::corruption(format!(
                        "changeset chunk {index} of block {number} missing"
                    ))
                })?;
            for entry in chunk_entries(&chunk) {
                let (key, value) = entry?;
                add_entry(&mut changeset, key, value)?;
            }
        }
        Ok(Some((header, changeset)))
    }

    /// Adds the deletion of block `number`'s stored changeset to `batch`.
    fn stage_changeset_removal(&self, batch: &mut WriteBatch, number: u64, header: &Header) {
        let cf = self.cf(StateColumn::Changesets);
        for key in header.db_keys(number) {
            batch.delete_cf(cf, key);
        }
    }

    fn stage_chain_writes(&self, batch: &mut WriteBatch, chain_writes: &[ChainWrite]) {
        for (column, key, value) in chain_writes {
            let cf = self.chain_cf(*column);
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
    }

    /// Writes a commit's batch.
    fn write_commit(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        // Relaxed: a test sets it before calling `commit_block`, whose hand-off of the write
        // to a rayon thread orders the two.
        #[cfg(test)]
        if self
            .fail_next_write
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // Options RocksDB refuses before it applies anything: a real failed write.
            let mut refused = rocksdb::WriteOptions::default();
            refused.set_sync(true);
            refused.disable_wal(true);
            return self.db.write_opt(batch, &refused);
        }
        self.db.write_opt(batch, &self.write_options)
    }

    /// Writes `batch` and makes its effects visible: caches, existence filter, head.
    fn publish(
        &self,
        batch: WriteBatch,
        mut plan: CommitPlan,
        head: Head,
        history: HistoryUpdate,
    ) -> Result<(), StateError> {
        // Growing the filter reads every address: do it before taking the lock. The commit
        // lock is held, so the flat accounts do not change meanwhile.
        let needed = self.filter.read().inserted() + plan.created.len();
        let replacement = if needed > self.filter.read().capacity() {
            let rebuilt = self.build_filter(needed * 2)?;
            for address in &plan.created {
                rebuilt.insert(address);
            }
            Some(rebuilt)
        } else {
            None
        };
        // The top of the new account trie stays in memory for the next commit; what lies
        // deeper is unloaded.
        let mut node = std::mem::take(&mut plan.account_trie_root);
        let account_updates = std::mem::take(&mut plan.account_updates);
        let mut unloaded = Vec::new();
        // Cleared below once the pending top matches what the batch wrote: a panic in between
        // leaves it set (see `PendingTop::interrupted`).
        self.pending_top.lock().interrupted = true;
        {
            let _published = self.publish_lock.write();
            // The caches are updated and the kept trie pruned while RocksDB applies the batch
            // (one thread does that): readers that miss the caches wait for the publish lock
            // anyway, and if the write fails the caches are cleared, so no value that was not
            // committed stays visible.
            let (written, ()) = rayon::join(
                || self.write_commit(batch),
                || {
                    rayon::join(
                        || {
                            plan.accounts.par_iter().for_each(|(address, account)| {
                                self.account_cache.insert(*address, *account);
                            });
                            plan.storage.par_iter().for_each(|(address, slot, value)| {
                                self.storage_cache.insert((*address, *slot), *value);
                            });
                        },
                        || {
                            prune_along(
                                &mut node,
                                0,
                                self.config.resident_trie_depth,
                                &account_updates,
                                &mut unloaded,
                            )
                        },
                    );
                },
            );
            if let Err(error) = written {
                self.account_cache.clear();
                self.storage_cache.clear();
                // Not written: the pending top still matches the database.
                self.pending_top.lock().interrupted = false;
                return Err(error.into());
            }
            match replacement {
                Some(rebuilt) => *self.filter.write() = rebuilt,
                None => {
                    let filter = self.filter.read();
                    for address in &plan.created {
                        filter.insert(address);
                    }
                }
            }
            {
                let mut filters = self.history_filters.write();
                for block in history.removed {
                    filters.remove(&block);
                }
                if let Some((block, filter)) = history.added {
                    filters.insert(block, filter);
                }
            }
            *self.head.write() = head;
        }
        // The commit lock is held: no other commit takes the resident trie meanwhile, and no
        // plan reads the pending top.
        if let Some((_, root)) = head.latest {
            *self.resident.lock() = Some(ResidentTrie { root, node });
        }
        let mut written_top = NodeChanges::default();
        match std::mem::take(&mut plan.top) {
            TopWrite::NotStaged => {}
            TopWrite::Written => {
                let mut pending = self.pending_top.lock();
                written_top = std::mem::take(&mut pending.nodes);
                pending.commits = 0;
            }
            TopWrite::Pending(nodes) => {
                let mut pending = self.pending_top.lock();
                pending.nodes.extend(nodes);
                pending.commits += 1;
            }
        }
        self.pending_top.lock().interrupted = false;
        // Freeing tens of thousands of nodes and buffers takes milliseconds the commit need
        // not wait for.
        rayon::spawn(move || drop((plan, unloaded, account_updates, written_top)));
        Ok(())
    }
}

impl StateDb {
    /// Commits block `number`'s state diff and the node's chain writes atomically (one
    /// `WriteBatch`): flat state, trie nodes, the block's changeset, pruning of changesets
    /// that fell out of the retained history, and the new head. Returns the new state root.
    ///
    /// `number` must be the latest committed block plus one (0 for an empty database).
    pub fn commit_block(
        &self,
        number: u64,
        diff: &StateDiff,
        chain_writes: &[ChainWrite],
    ) -> Result<B256, StateError> {
        let inner = &*self.inner;
        let _commit = inner.commit_lock.lock();
        let started = Instant::now();
        let head = *inner.head.read();
        let expected = head.latest.map_or(0, |(latest, _)| latest + 1);
        if number != expected {
            return Err(StateError::NonConsecutiveBlock {
                expected,
                got: number,
            });
        }
        let parent_root = head.latest.map_or(EMPTY_ROOT_HASH, |(_, root)| root);
        // History: keep changesets of blocks `keep_from..=number`, so that the states of
        // blocks `keep_from - 1..=number` stay readable. Block 0 has none: nothing is below it.
        let history = inner.config.history_blocks;
        let keep_from = (number + 1).saturating_sub(history).max(1);
        let staging = if number > 0 && keep_from <= number {
            Staging::FlatAndChangeset(number)
        } else {
            Staging::Flat
        };
        let resident = inner.take_resident(parent_root);
        let write_top = inner.top_write_due();
        let mut plan = inner.plan(changes_of(diff), parent_root, resident, staging, write_top)?;
        let planned = Instant::now();

        let mut batch = plan.batch.take().unwrap_or_default();
        inner.stage_account_trie(&mut batch, &mut plan, number);
        let code = inner.cf(StateColumn::Code);
        for (hash, bytecode) in &diff.codes {
            batch.put_cf(code, hash, bytecode);
        }

        let mut history_update = HistoryUpdate {
            added: plan.changeset_filter.take().map(|filter| (number, filter)),
            removed: Vec::new(),
        };
        let first_changeset = head.first_changeset.max(keep_from);
        let meta = inner.cf(StateColumn::Meta);
        for pruned in head.first_changeset..first_changeset {
            if pruned < number
                && let Some(header) = inner.changeset_header(pruned)?
            {
                inner.stage_changeset_removal(&mut batch, pruned, &header);
            }
            history_update.removed.push(pruned);
            batch.delete_cf(meta, root_key(pruned - 1));
        }

        batch.put_cf(meta, root_key(number), plan.root);
        batch.put_cf(meta, META_LATEST, latest_record(number, plan.root));
        batch.put_cf(meta, META_FIRST_CHANGESET, first_changeset.to_be_bytes());
        if number == 0 {
            batch.put_cf(meta, META_VERSION, SCHEMA_VERSION.to_be_bytes());
        }
        inner.stage_chain_writes(&mut batch, chain_writes);

        let new_head = Head {
            latest: Some((number, plan.root)),
            first_changeset,
        };
        let (root, accounts, slots) = (plan.root, plan.accounts.len(), plan.storage.len());
        let (entries, bytes) = (batch.len(), batch.size_in_bytes());
        let timings = plan.timings;
        let staged = planned.elapsed();
        inner.publish(batch, plan, new_head, history_update)?;
        let us = |d: std::time::Duration| d.as_micros() as u64;
        tracing::debug!(
            number,
            %root,
            accounts,
            slots,
            entries,
            bytes,
            reads_us = us(timings.reads),
            storage_tries_us = us(timings.storage_tries),
            account_trie_us = us(timings.account_trie),
            staging_us = us(staged),
            // The write, with the cache updates that run beside it.
            write_us = us(planned.elapsed() - staged),
            total_us = us(started.elapsed()),
            "committed block state"
        );
        Ok(root)
    }

    /// Commits the genesis state as block 0 of an empty database.
    pub fn genesis(
        &self,
        alloc: &StateDiff,
        chain_writes: &[ChainWrite],
    ) -> Result<B256, StateError> {
        if self.latest().is_some() {
            return Err(StateError::NotEmpty);
        }
        self.commit_block(0, alloc, chain_writes)
    }

    /// The state root the latest state would have after applying `diff`, without writing
    /// anything (for checking an imported block's root before committing it).
    pub fn state_root_after(&self, diff: &StateDiff) -> Result<B256, StateError> {
        let inner = &*self.inner;
        let _commit = inner.commit_lock.lock();
        let parent_root = inner
            .head
            .read()
            .latest
            .map_or(EMPTY_ROOT_HASH, |(_, root)| root);
        // Without the resident nodes: they must stay as they are for the next commit.
        Ok(inner
            .plan(changes_of(diff), parent_root, None, Staging::Nothing, false)?
            .root)
    }

    /// Reverts the state to what it was after block `number` (a reorg), undoing every later
    /// block atomically. `number` must be retained (see [`StateDb::oldest_readable`]).
    pub fn revert_to(&self, number: u64) -> Result<(), StateError> {
        self.revert_to_with(number, &[])
    }

    /// [`StateDb::revert_to`], writing the node's chain-data changes in the same batch.
    pub fn revert_to_with(
        &self,
        number: u64,
        chain_writes: &[ChainWrite],
    ) -> Result<(), StateError> {
        let inner = &*self.inner;
        let _commit = inner.commit_lock.lock();
        let head = *inner.head.read();
        head.check_readable(number)?;
        let (latest, latest_root) = head
            .latest
            .expect("check_readable fails on an empty database");
        if number == latest && chain_writes.is_empty() {
            return Ok(());
        }
        let meta = inner.cf(StateColumn::Meta);
        let target_root = match inner.db.get_pinned_cf(meta, root_key(number))? {
            Some(bytes) if bytes.len() == 32 => B256::from_slice(&bytes),
            _ => {
                return Err(StateError::corruption(format!(
                    "root of retained block {number} missing"
                )));
            }
        };

        // The values before block `number + 1`: walking back from the latest block, older
        // changesets overwrite newer ones.
        let mut accounts: BTreeMap<Address, Option<StoredAccount>> = BTreeMap::new();
        let mut slots: BTreeMap<Address, BTreeMap<U256, U256>> = BTreeMap::new();
        let mut history_update = HistoryUpdate::default();
        let mut removed = Vec::new();
        for block in (number + 1..=latest).rev() {
            let (header, changeset) = inner.changeset(block)?.ok_or_else(|| {
                StateError::corruption(format!("changeset of retained block {block} missing"))
            })?;
            removed.push((block, header));
            history_update.removed.push(block);
            for (address, old) in changeset.accounts {
                accounts.insert(address, old);
            }
            for (address, slot, old) in changeset.storage {
                slots.entry(address).or_default().insert(slot, old);
            }
        }
        let mut addresses: Vec<Address> = accounts.keys().chain(slots.keys()).copied().collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut changes = Vec::with_capacity(addresses.len());
        for address in addresses {
            let info = match accounts.get(&address) {
                Some(old) => old.map(|account| account.info),
                None => inner.db_account(&address)?.map(|account| account.info),
            };
            let slots = slots
                .remove(&address)
                .unwrap_or_default()
                .into_iter()
                .collect();
            changes.push(AccountChange {
                address,
                info,
                clear_storage: false,
                slots,
            });
        }
        let resident = inner.take_resident(latest_root);
        // Reverts are rare: they write the whole top, pending nodes included.
        let mut plan = inner.plan(changes, latest_root, resident, Staging::Flat, true)?;
        if plan.root != target_root {
            return Err(StateError::RevertRootMismatch {
                number,
                expected: target_root,
                computed: plan.root,
            });
        }
        let mut batch = plan.batch.take().unwrap_or_default();
        inner.stage_account_trie(&mut batch, &mut plan, number);
        for (block, header) in &removed {
            inner.stage_changeset_removal(&mut batch, *block, header);
            batch.delete_cf(meta, root_key(*block));
        }
        batch.put_cf(meta, META_LATEST, latest_record(number, target_root));
        inner.stage_chain_writes(&mut batch, chain_writes);
        let new_head = Head {
            latest: Some((number, target_root)),
            first_changeset: head.first_changeset,
        };
        inner.publish(batch, plan, new_head, history_update)?;
        tracing::info!(from = latest, to = number, root = %target_root, "reverted state");
        Ok(())
    }
}
