//! The multi-version memory (Algorithm 2 of the paper): for every location, the value each
//! transaction's latest incarnation wrote there, or an ESTIMATE marker where an aborted
//! incarnation wrote and its successor has not run yet.
//!
//! A read by transaction `j` sees the write of the highest transaction below `j`. Values can be
//! *deltas* ([`MvValue::is_delta`]): commutative updates such as "add 5 wei". A delta does not
//! hide the write below it; a read walks down through deltas to the first full value (or to the
//! committed state) and records every version it passed, so that validation notices a change to
//! any of them. Deltas let independent transactions that only add to one location (fee
//! payments to the block's beneficiary, deposits to one account) commute instead of conflict.

use crate::{
    sync::{Mutex, RwLock},
    types::{Incarnation, TxnIndex, Version},
};
use crossbeam_utils::CachePadded;
use std::hash::{BuildHasher, Hash};

/// A value stored in the multi-version memory.
pub trait MvValue: Clone + Send + Sync {
    /// Whether this value is a delta that applies on top of the value below it rather than
    /// replacing it. Reads walk through deltas; see the module docs.
    fn is_delta(&self) -> bool {
        false
    }
}

/// Where a recorded read took its value from; validation compares it with a fresh read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOrigin {
    /// No lower transaction wrote the location: the committed state.
    Storage,
    /// The write of this version (a full value).
    Version(Version),
    /// A chain of deltas (top-down), ending on a full value if `from_storage` is false, or on
    /// the committed state if it is true.
    Chain {
        /// The versions passed, top-down; the last one is the full value unless `from_storage`.
        versions: Box<[Version]>,
        /// Whether the bottom of the chain is the committed state.
        from_storage: bool,
    },
}

/// What a read found below the reading transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MvRead<V> {
    /// Nothing: read the committed state.
    Storage,
    /// A full value.
    Value(V),
    /// Deltas, top-down, to apply to `base` (or to the committed state if `base` is `None`).
    Deltas {
        /// The deltas, highest transaction first.
        deltas: Vec<V>,
        /// The full value below them, if a lower transaction wrote one.
        base: Option<V>,
    },
}

impl<V> MvRead<V> {
    /// This read with the transaction that wrote each value, taken from its recorded origin.
    fn indexed(self, origin: &ReadOrigin) -> IndexedRead<V> {
        match (self, origin) {
            (MvRead::Value(value), ReadOrigin::Version(version)) => IndexedRead {
                deltas: Vec::new(),
                base: Some((version.txn_idx, value)),
            },
            (MvRead::Deltas { deltas, base }, ReadOrigin::Chain { versions, .. }) => {
                let mut writers = versions.iter().map(|version| version.txn_idx);
                let deltas = deltas
                    .into_iter()
                    .zip(writers.by_ref())
                    .map(|(value, txn_idx)| (txn_idx, value))
                    .collect();
                IndexedRead {
                    deltas,
                    base: base.and_then(|value| writers.next().map(|txn_idx| (txn_idx, value))),
                }
            }
            // The committed state (`read_hashed` builds no other combination).
            _ => IndexedRead {
                deltas: Vec::new(),
                base: None,
            },
        }
    }
}

/// A read with the writer of every value it is made of, for callers that combine several
/// locations and must know which transactions each one's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedRead<V> {
    /// The deltas passed, highest transaction first, each with the transaction that wrote it.
    pub deltas: Vec<(TxnIndex, V)>,
    /// The full value below them and the transaction that wrote it; `None`: the committed
    /// state.
    pub base: Option<(TxnIndex, V)>,
}

#[derive(Debug)]
enum Cell<V> {
    Written { incarnation: Incarnation, value: V },
    Estimate,
}

/// The writes to one location, sorted by transaction. Most locations have one writer, so
/// that case is stored inline; more writers spill into a sorted vector, where inserts land at
/// the end because workers write in roughly ascending order.
#[derive(Debug)]
enum Versions<V> {
    One([(TxnIndex, Cell<V>); 1]),
    Many(Vec<(TxnIndex, Cell<V>)>),
}

impl<V> Versions<V> {
    fn new(txn_idx: TxnIndex, cell: Cell<V>) -> Self {
        Versions::One([(txn_idx, cell)])
    }

    fn as_slice(&self) -> &[(TxnIndex, Cell<V>)] {
        match self {
            Versions::One(one) => one,
            Versions::Many(many) => many,
        }
    }

    /// Entries of transactions below `txn_idx`, highest first.
    fn below(&self, txn_idx: TxnIndex) -> impl Iterator<Item = (&TxnIndex, &Cell<V>)> {
        let entries = self.as_slice();
        // Readers are usually above every writer: skip the search then.
        let end = match entries.last() {
            Some((last, _)) if *last < txn_idx => entries.len(),
            _ => entries.partition_point(|(idx, _)| *idx < txn_idx),
        };
        entries[..end].iter().rev().map(|(idx, cell)| (idx, cell))
    }

    fn insert(&mut self, txn_idx: TxnIndex, cell: Cell<V>) {
        let entries = self.as_slice();
        let search = match entries.last() {
            // Writers come in roughly ascending order: appending needs no search.
            Some((last, _)) if *last < txn_idx => Err(entries.len()),
            _ => entries.binary_search_by_key(&txn_idx, |(idx, _)| *idx),
        };
        let pos = match search {
            Ok(pos) => {
                match self {
                    Versions::One(one) => one[pos].1 = cell,
                    Versions::Many(many) => many[pos].1 = cell,
                }
                return;
            }
            Err(pos) => pos,
        };
        if let Versions::One(_) = self {
            let Versions::One([only]) = std::mem::replace(self, Versions::Many(Vec::new())) else {
                unreachable!("matched One above")
            };
            *self = Versions::Many(vec![only]);
        }
        if let Versions::Many(many) = self {
            many.insert(pos, (txn_idx, cell));
        }
    }

    fn get_mut(&mut self, txn_idx: &TxnIndex) -> Option<&mut Cell<V>> {
        let pos = self
            .as_slice()
            .binary_search_by_key(txn_idx, |(idx, _)| *idx)
            .ok()?;
        Some(match self {
            Versions::One(one) => &mut one[pos].1,
            Versions::Many(many) => &mut many[pos].1,
        })
    }

    fn remove(&mut self, txn_idx: &TxnIndex) {
        let Ok(pos) = self
            .as_slice()
            .binary_search_by_key(txn_idx, |(idx, _)| *idx)
        else {
            return;
        };
        match self {
            Versions::One(_) => *self = Versions::Many(Vec::new()),
            Versions::Many(many) => {
                many.remove(pos);
            }
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = (&TxnIndex, &Cell<V>)> {
        self.as_slice().iter().map(|(idx, cell)| (idx, cell))
    }
}

/// Calls `visit` with the final writes to one location, top-down, or fails with the writer of
/// an ESTIMATE left there.
fn visit_final<V>(
    versions: &Versions<V>,
    visit: impl FnOnce(&mut dyn Iterator<Item = (TxnIndex, &V)>),
) -> Result<(), TxnIndex> {
    if let Some((&idx, _)) = versions.iter().find(|(_, c)| matches!(c, Cell::Estimate)) {
        return Err(idx);
    }
    let mut top_down = versions.iter().rev().filter_map(|(idx, cell)| match cell {
        Cell::Written { value, .. } => Some((*idx, value)),
        Cell::Estimate => None,
    });
    visit(&mut top_down);
    Ok(())
}

/// One shard: locations with their precomputed hash, in a table probed by that hash so that a
/// location is hashed once per access, not once for the shard and again for the table.
#[derive(Debug)]
struct Shard<K, V> {
    table: hashbrown::HashTable<(u64, K, Versions<V>)>,
}

impl<K: Eq, V> Shard<K, V> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            table: hashbrown::HashTable::with_capacity(capacity),
        }
    }

    fn get(&self, hash: u64, key: &K) -> Option<&Versions<V>> {
        self.table
            .find(hash, |(h, k, _)| *h == hash && k == key)
            .map(|(_, _, v)| v)
    }

    fn get_mut(&mut self, hash: u64, key: &K) -> Option<&mut Versions<V>> {
        self.table
            .find_mut(hash, |(h, k, _)| *h == hash && k == key)
            .map(|(_, _, v)| v)
    }

    fn insert(&mut self, hash: u64, key: K, txn_idx: TxnIndex, cell: Cell<V>) {
        match self
            .table
            .find_mut(hash, |(h, k, _)| *h == hash && *k == key)
        {
            Some((_, _, versions)) => versions.insert(txn_idx, cell),
            None => {
                self.table.insert_unique(
                    hash,
                    (hash, key, Versions::new(txn_idx, cell)),
                    |(h, _, _)| *h,
                );
            }
        }
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &Versions<V>)> {
        self.table.iter().map(|(_, k, v)| (k, v))
    }
}

const SHARD_SEED: u64 = 0x6d76_6d65_6d6f_7279;

/// One recorded read: the location (with its hash, computed once) and where the value came
/// from.
#[derive(Clone, Debug)]
pub struct ReadEntry<K> {
    hash: u64,
    key: K,
    origin: ReadOrigin,
}

/// The recorded reads of one incarnation.
pub type ReadSet<K> = Vec<ReadEntry<K>>;

/// The shards of the memory, each behind its own lock, on its own cache line.
type Shards<K, V> = Box<[CachePadded<RwLock<Shard<K, V>>>]>;

/// The locations one incarnation wrote, with their hashes.
type WrittenLocations<K> = Vec<(u64, K)>;

/// Number of key groups. A location's group picks the sixteenth of the shards it lives in,
/// so that the final state of some groups can be visited and released without touching the
/// others (see [`MvMemory::with_key_groups`]).
pub const KEY_GROUPS: usize = 16;

/// Where the shard index sits in a location's hash: bits that hashbrown uses for neither the
/// bucket (low bits) nor the control byte (top seven bits) of tables this size.
const SHARD_SHIFT: u32 = 32;
const SHARD_BITS: u64 = 0xff;
/// Bits of the hash that pick the group of a location that names none.
const GROUP_SHIFT: u32 = 40;

/// Multi-version memory for one block, keyed by location `K`.
#[derive(Debug)]
pub struct MvMemory<K, V> {
    shards: Shards<K, V>,
    hasher: foldhash::fast::FixedState,
    /// Shards per key group (a power of two).
    shards_per_group: usize,
    /// The group a location belongs to, if it names one.
    key_group: fn(&K) -> Option<u8>,
    /// Locations (with hashes) the latest incarnation of each transaction wrote. Not
    /// cache-padded, for the reason given on the scheduler's per-transaction arrays.
    last_written_locations: Box<[Mutex<WrittenLocations<K>>]>,
    /// Reads of the latest incarnation of each transaction. A validator holds the lock while it
    /// checks; `record` replaces the set only after it released every shard lock, so the two
    /// never wait on each other in a cycle.
    last_read_set: Box<[Mutex<ReadSet<K>>]>,
}

impl<K: Eq + Hash + Clone, V: MvValue> MvMemory<K, V> {
    /// Memory for a block of `num_txns` transactions, locations spread over the groups by
    /// their hash.
    pub fn new(num_txns: usize) -> Self {
        Self::with_key_groups(num_txns, |_| None)
    }

    /// Memory for a block of `num_txns` transactions where `key_group` puts locations into
    /// groups (`0..KEY_GROUPS`; larger values wrap; `None`: by hash). A caller that folds the
    /// final state on several threads gives each thread whole groups
    /// ([`MvMemory::group_shards`]); grouping locations that belong together (an account
    /// and its storage) lets each thread see all of them.
    pub fn with_key_groups(num_txns: usize, key_group: fn(&K) -> Option<u8>) -> Self {
        // Enough shards that two workers rarely meet on one lock, few enough to stay in cache.
        let shard_count = if cfg!(loom) { KEY_GROUPS } else { 256 };
        // A plain transfer writes two new locations (sender, recipient; fees go to a few shared
        // lanes): room for that up front spares the shards most of their rehashing, and no more
        // keeps the tables dense, so that writes land in fewer cache lines and pages.
        let per_shard = (num_txns * 2).div_ceil(shard_count);
        Self {
            shards: (0..shard_count)
                .map(|_| CachePadded::new(RwLock::new(Shard::with_capacity(per_shard))))
                .collect(),
            hasher: foldhash::fast::FixedState::with_seed(SHARD_SEED),
            shards_per_group: shard_count / KEY_GROUPS,
            key_group,
            last_written_locations: (0..num_txns).map(|_| Mutex::new(Vec::new())).collect(),
            last_read_set: (0..num_txns).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// The hash a location is filed under, with its shard in bits 32..40.
    pub fn hash_key(&self, key: &K) -> u64 {
        let hash = self.hasher.hash_one(key);
        let group = match (self.key_group)(key) {
            Some(group) => usize::from(group) % KEY_GROUPS,
            None => (hash >> GROUP_SHIFT) as usize % KEY_GROUPS,
        };
        let within = (hash >> SHARD_SHIFT) as usize & (self.shards_per_group - 1);
        let shard = (group * self.shards_per_group + within) as u64;
        (hash & !(SHARD_BITS << SHARD_SHIFT)) | (shard << SHARD_SHIFT)
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        &self.shards[((hash >> SHARD_SHIFT) & SHARD_BITS) as usize]
    }

    /// Reads `key` as transaction `txn_idx` sees it. `Err(blocking)` if the nearest relevant
    /// write is an ESTIMATE of transaction `blocking`, whose next incarnation must run first.
    pub fn read(&self, key: &K, txn_idx: TxnIndex) -> Result<(MvRead<V>, ReadOrigin), TxnIndex> {
        self.read_hashed(self.hash_key(key), key, txn_idx)
    }

    fn read_hashed(
        &self,
        hash: u64,
        key: &K,
        txn_idx: TxnIndex,
    ) -> Result<(MvRead<V>, ReadOrigin), TxnIndex> {
        let shard = self.shard(hash).read();
        let Some(versions) = shard.get(hash, key) else {
            return Ok((MvRead::Storage, ReadOrigin::Storage));
        };
        let mut below = versions.below(txn_idx);
        let Some((&idx, cell)) = below.next() else {
            return Ok((MvRead::Storage, ReadOrigin::Storage));
        };
        let (incarnation, value) = match cell {
            Cell::Estimate => return Err(idx),
            Cell::Written { incarnation, value } => (*incarnation, value),
        };
        if !value.is_delta() {
            return Ok((
                MvRead::Value(value.clone()),
                ReadOrigin::Version(Version::new(idx, incarnation)),
            ));
        }
        let mut versions = vec![Version::new(idx, incarnation)];
        let mut deltas = vec![value.clone()];
        for (&idx, cell) in below {
            match cell {
                Cell::Estimate => return Err(idx),
                Cell::Written { incarnation, value } => {
                    versions.push(Version::new(idx, *incarnation));
                    if !value.is_delta() {
                        return Ok((
                            MvRead::Deltas {
                                deltas,
                                base: Some(value.clone()),
                            },
                            ReadOrigin::Chain {
                                versions: versions.into(),
                                from_storage: false,
                            },
                        ));
                    }
                    deltas.push(value.clone());
                }
            }
        }
        Ok((
            MvRead::Deltas { deltas, base: None },
            ReadOrigin::Chain {
                versions: versions.into(),
                from_storage: true,
            },
        ))
    }

    /// Reads `key` for `txn_idx` and returns the value and the entry to record in its read set.
    pub(crate) fn read_for(
        &self,
        key: &K,
        txn_idx: TxnIndex,
    ) -> Result<(MvRead<V>, ReadEntry<K>), TxnIndex> {
        let hash = self.hash_key(key);
        let (value, origin) = self.read_hashed(hash, key, txn_idx)?;
        Ok((
            value,
            ReadEntry {
                hash,
                key: key.clone(),
                origin,
            },
        ))
    }

    /// [`MvMemory::read_for`] with the writer of every value read.
    pub(crate) fn read_indexed_for(
        &self,
        key: &K,
        txn_idx: TxnIndex,
    ) -> Result<(IndexedRead<V>, ReadEntry<K>), TxnIndex> {
        let (value, entry) = self.read_for(key, txn_idx)?;
        Ok((value.indexed(&entry.origin), entry))
    }

    /// A read-set entry for a read whose origin the caller knows.
    pub(crate) fn read_entry(&self, key: K, origin: ReadOrigin) -> ReadEntry<K> {
        ReadEntry {
            hash: self.hash_key(&key),
            key,
            origin,
        }
    }

    /// Whether a read of `key` by `txn_idx` now would come from `origin` (without cloning).
    fn read_matches(&self, entry: &ReadEntry<K>, txn_idx: TxnIndex) -> bool {
        let shard = self.shard(entry.hash).read();
        let mut below = shard
            .get(entry.hash, &entry.key)
            .into_iter()
            .flat_map(|v| v.below(txn_idx));
        match &entry.origin {
            ReadOrigin::Storage => below.next().is_none(),
            ReadOrigin::Version(version) => match below.next() {
                Some((&idx, Cell::Written { incarnation, value })) => {
                    !value.is_delta() && Version::new(idx, *incarnation) == *version
                }
                _ => false,
            },
            ReadOrigin::Chain {
                versions,
                from_storage,
            } => {
                for (position, expected) in versions.iter().enumerate() {
                    let Some((&idx, Cell::Written { incarnation, value })) = below.next() else {
                        return false;
                    };
                    if Version::new(idx, *incarnation) != *expected {
                        return false;
                    }
                    let is_last = position + 1 == versions.len();
                    // Every entry but the bottom one must be a delta; the bottom one is a full
                    // value unless the chain ends on the committed state.
                    if value.is_delta() != (!is_last || *from_storage) {
                        return false;
                    }
                }
                !*from_storage || below.next().is_none()
            }
        }
    }

    /// Stores the reads and writes of one incarnation (`record` in the paper). Returns whether
    /// it wrote a location that the previous incarnation of the transaction did not.
    pub fn record(&self, version: Version, read_set: ReadSet<K>, write_set: Vec<(K, V)>) -> bool {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        let mut new_locations = Vec::with_capacity(write_set.len());
        for (key, value) in write_set {
            let hash = self.hash_key(&key);
            new_locations.push((hash, key.clone()));
            self.shard(hash).write().insert(
                hash,
                key,
                txn_idx,
                Cell::Written { incarnation, value },
            );
        }
        let contains = |list: &[(u64, K)], (hash, key): &(u64, K)| {
            list.iter().any(|(h, k)| h == hash && k == key)
        };
        let previous = std::mem::replace(
            &mut *self.last_written_locations[txn_idx].lock(),
            new_locations,
        );
        let written = self.last_written_locations[txn_idx].lock();
        for stale in previous.iter().filter(|entry| !contains(&written, entry)) {
            if let Some(versions) = self.shard(stale.0).write().get_mut(stale.0, &stale.1) {
                versions.remove(&txn_idx);
            }
        }
        let wrote_new_location = written.iter().any(|entry| !contains(&previous, entry));
        drop(written);
        *self.last_read_set[txn_idx].lock() = read_set;
        wrote_new_location
    }

    /// Marks `keys` as written by `txn_idx` before it ran, with ESTIMATE markers (see
    /// `TransactionTask::predicted_writes`). Its first `record` replaces or removes them.
    pub fn seed_estimates(&self, txn_idx: TxnIndex, keys: Vec<K>) {
        let mut locations = Vec::with_capacity(keys.len());
        for key in keys {
            let hash = self.hash_key(&key);
            self.shard(hash)
                .write()
                .insert(hash, key.clone(), txn_idx, Cell::Estimate);
            locations.push((hash, key));
        }
        *self.last_written_locations[txn_idx].lock() = locations;
    }

    /// Turns the writes of the latest incarnation of `txn_idx` into ESTIMATE markers, after it
    /// was aborted: readers then wait for its next incarnation instead of reading stale data.
    pub fn convert_writes_to_estimates(&self, txn_idx: TxnIndex) {
        let locations = self.last_written_locations[txn_idx].lock();
        for (hash, key) in locations.iter() {
            let mut shard = self.shard(*hash).write();
            if let Some(cell) = shard.get_mut(*hash, key).and_then(|v| v.get_mut(&txn_idx)) {
                *cell = Cell::Estimate;
            }
        }
    }

    /// Whether every read of the latest incarnation of `txn_idx` would still return the same
    /// version (`validate_read_set` in the paper).
    pub fn validate_read_set(&self, txn_idx: TxnIndex) -> bool {
        let read_set = self.last_read_set[txn_idx].lock();
        read_set
            .iter()
            .all(|entry| self.read_matches(entry, txn_idx))
    }

    /// Number of shards the locations are spread over; [`MvMemory::for_each_final_in`] takes
    /// ranges of them so that callers can fold the final state on several threads.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shards that hold the locations of key groups `groups` (a range within
    /// `0..KEY_GROUPS`).
    pub fn group_shards(&self, groups: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let end = groups.end.min(KEY_GROUPS);
        groups.start.min(end) * self.shards_per_group..end * self.shards_per_group
    }

    /// Frees the locations of `shards` and their versions, once the final state was read:
    /// threads that folded their part release it in parallel instead of leaving one thread to
    /// drop the whole memory. Reads of those locations afterwards find nothing.
    pub fn release_shards(&self, shards: std::ops::Range<usize>) {
        for shard in &self.shards[shards] {
            let table = std::mem::replace(&mut shard.write().table, hashbrown::HashTable::new());
            drop(table);
        }
    }

    /// Frees the recorded reads and written locations of transactions `txns`, once the run is
    /// over (see [`MvMemory::release_shards`]).
    pub fn release_transactions(&self, txns: std::ops::Range<TxnIndex>) {
        let end = txns.end.min(self.last_read_set.len());
        for txn_idx in txns.start.min(end)..end {
            drop(std::mem::take(&mut *self.last_read_set[txn_idx].lock()));
            drop(std::mem::take(
                &mut *self.last_written_locations[txn_idx].lock(),
            ));
        }
    }

    /// Visits every written location with its final writes, top-down, through the first full
    /// value: the block's net effect on that location. Call after the block is done.
    ///
    /// Fails with the index of a transaction whose write is still an ESTIMATE, which cannot
    /// happen after a completed run and means an invariant broke.
    pub fn for_each_final(
        &self,
        visit: impl FnMut(&K, &mut dyn Iterator<Item = (TxnIndex, &V)>),
    ) -> Result<(), TxnIndex> {
        self.for_each_final_in(0..self.shards.len(), visit)
    }

    /// [`MvMemory::for_each_final`] restricted to the locations of the given shards.
    pub fn for_each_final_in(
        &self,
        shards: std::ops::Range<usize>,
        mut visit: impl FnMut(&K, &mut dyn Iterator<Item = (TxnIndex, &V)>),
    ) -> Result<(), TxnIndex> {
        for shard in &self.shards[shards] {
            let shard = shard.read();
            for (key, versions) in shard.iter() {
                visit_final(versions, |top_down| visit(key, top_down))?;
            }
        }
        Ok(())
    }

    /// [`MvMemory::for_each_final`] for the one location `key`; `Ok(false)` (and no visit) if
    /// nothing wrote it.
    pub fn for_final_of(
        &self,
        key: &K,
        visit: impl FnOnce(&mut dyn Iterator<Item = (TxnIndex, &V)>),
    ) -> Result<bool, TxnIndex> {
        let hash = self.hash_key(key);
        let shard = self.shard(hash).read();
        match shard.get(hash, key) {
            Some(versions) => visit_final(versions, visit).map(|()| true),
            None => Ok(false),
        }
    }

    /// Number of distinct locations written (for sizing the caller's maps).
    pub fn locations(&self) -> usize {
        self.locations_in(0..self.shards.len())
    }

    /// Number of distinct locations written in `shards`.
    pub fn locations_in(&self, shards: std::ops::Range<usize>) -> usize {
        self.shards[shards].iter().map(|s| s.read().len()).sum()
    }

    /// The locations the latest incarnation of `txn_idx` wrote.
    pub fn written_locations(&self, txn_idx: TxnIndex) -> Vec<K> {
        self.last_written_locations[txn_idx]
            .lock()
            .iter()
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Val {
        Full(u64),
        Add(u64),
    }
    impl MvValue for Val {
        fn is_delta(&self) -> bool {
            matches!(self, Val::Add(_))
        }
    }

    #[test]
    fn read_sees_highest_lower_write() {
        let mv = MvMemory::<u8, Val>::new(4);
        assert!(!mv.record(Version::new(0, 0), vec![], vec![]));
        assert!(mv.record(Version::new(1, 0), vec![], vec![(7, Val::Full(10))]));
        assert_eq!(
            mv.read(&7, 1).unwrap(),
            (MvRead::Storage, ReadOrigin::Storage)
        );
        assert_eq!(
            mv.read(&7, 3).unwrap(),
            (
                MvRead::Value(Val::Full(10)),
                ReadOrigin::Version(Version::new(1, 0))
            )
        );
        mv.convert_writes_to_estimates(1);
        assert_eq!(mv.read(&7, 3), Err(1));
        // Incarnation 1 writes elsewhere: the stale entry disappears.
        assert!(mv.record(Version::new(1, 1), vec![], vec![(8, Val::Full(1))]));
        assert_eq!(mv.read(&7, 3).unwrap().0, MvRead::Storage);
        assert!(!mv.record(Version::new(1, 2), vec![], vec![(8, Val::Full(2))]));
    }

    #[test]
    fn deltas_chain_to_full_value_or_storage() {
        let mv = MvMemory::<u8, Val>::new(5);
        mv.record(Version::new(0, 0), vec![], vec![(1, Val::Add(1))]);
        mv.record(Version::new(2, 0), vec![], vec![(1, Val::Add(2))]);
        let (read, origin) = mv.read(&1, 4).unwrap();
        assert_eq!(
            read,
            MvRead::Deltas {
                deltas: vec![Val::Add(2), Val::Add(1)],
                base: None
            }
        );
        assert!(matches!(
            origin,
            ReadOrigin::Chain {
                from_storage: true,
                ..
            }
        ));
        mv.record(Version::new(3, 0), vec![mv.read_entry(1, origin)], vec![]);
        assert!(mv.validate_read_set(3));
        // A full write below the chain invalidates the reader.
        mv.record(Version::new(1, 0), vec![], vec![(1, Val::Full(100))]);
        assert!(!mv.validate_read_set(3));
        assert_eq!(
            mv.read(&1, 4).unwrap().0,
            MvRead::Deltas {
                deltas: vec![Val::Add(2)],
                base: Some(Val::Full(100))
            }
        );
        let mut finals = Vec::new();
        mv.for_each_final(|k, it| {
            finals.push((*k, it.map(|(i, v)| (i, v.clone())).collect::<Vec<_>>()))
        })
        .unwrap();
        assert_eq!(
            finals,
            vec![(
                1,
                vec![(2, Val::Add(2)), (1, Val::Full(100)), (0, Val::Add(1))]
            )]
        );
    }

    #[test]
    fn key_groups_keep_their_locations_in_their_shards() {
        let mv = MvMemory::<u8, Val>::with_key_groups(4, |key| Some(key / 16));
        let writes = (0..=255u8).map(|key| (key, Val::Full(1))).collect();
        mv.record(Version::new(0, 0), vec![], writes);
        for group in 0..KEY_GROUPS {
            let mut keys = Vec::new();
            mv.for_each_final_in(mv.group_shards(group..group + 1), |key, _| keys.push(*key))
                .unwrap();
            keys.sort_unstable();
            let expected: Vec<u8> = (0..=255u8)
                .filter(|k| usize::from(k / 16) == group)
                .collect();
            assert_eq!(keys, expected, "group {group}");
        }
        assert_eq!(mv.group_shards(0..KEY_GROUPS), 0..mv.shard_count());
        let mut seen = Vec::new();
        assert_eq!(
            mv.for_final_of(&7, |top_down| seen
                .extend(top_down.map(|(i, v)| (i, v.clone())))),
            Ok(true)
        );
        assert_eq!(seen, vec![(0, Val::Full(1))]);
        mv.release_shards(mv.group_shards(0..8));
        mv.release_transactions(0..4);
        assert_eq!(mv.read(&3, 1).unwrap().0, MvRead::Storage);
        assert_eq!(mv.read(&200, 1).unwrap().0, MvRead::Value(Val::Full(1)));
        assert_eq!(mv.locations(), 128);
    }

    #[test]
    fn indexed_reads_name_each_writer() {
        let mv = MvMemory::<u8, Val>::new(6);
        mv.record(Version::new(1, 0), vec![], vec![(1, Val::Add(1))]);
        mv.record(Version::new(2, 0), vec![], vec![(1, Val::Full(7))]);
        mv.record(Version::new(4, 0), vec![], vec![(1, Val::Add(3))]);
        let indexed = |txn_idx| mv.read_indexed_for(&1, txn_idx).unwrap().0;
        assert_eq!(
            indexed(5),
            IndexedRead {
                deltas: vec![(4, Val::Add(3))],
                base: Some((2, Val::Full(7)))
            }
        );
        assert_eq!(
            indexed(3),
            IndexedRead {
                deltas: vec![],
                base: Some((2, Val::Full(7)))
            }
        );
        assert_eq!(
            indexed(2),
            IndexedRead {
                deltas: vec![(1, Val::Add(1))],
                base: None
            }
        );
        assert_eq!(
            indexed(1),
            IndexedRead {
                deltas: vec![],
                base: None
            }
        );
    }

    #[test]
    fn validation_detects_new_and_changed_writes() {
        let mv = MvMemory::<u8, Val>::new(3);
        mv.record(
            Version::new(2, 0),
            vec![mv.read_entry(5, ReadOrigin::Storage)],
            vec![],
        );
        assert!(mv.validate_read_set(2));
        mv.record(Version::new(0, 0), vec![], vec![(5, Val::Full(1))]);
        assert!(!mv.validate_read_set(2));
        mv.record(
            Version::new(2, 1),
            vec![mv.read_entry(5, ReadOrigin::Version(Version::new(0, 0)))],
            vec![],
        );
        assert!(mv.validate_read_set(2));
        mv.record(Version::new(0, 1), vec![], vec![(5, Val::Full(1))]);
        assert!(
            !mv.validate_read_set(2),
            "same value, new incarnation: still a new version"
        );
    }
}
