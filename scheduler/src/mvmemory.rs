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
use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasher, Hash},
    sync::Arc,
};

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

#[derive(Debug)]
enum Cell<V> {
    Written { incarnation: Incarnation, value: V },
    Estimate,
}

type Versions<V> = BTreeMap<TxnIndex, Cell<V>>;
type Shard<K, V> = HashMap<K, Versions<V>, foldhash::fast::FixedState>;

const SHARD_SEED: u64 = 0x6d76_6d65_6d6f_7279;

/// The recorded reads of one incarnation.
pub type ReadSet<K> = Vec<(K, ReadOrigin)>;

/// Multi-version memory for one block, keyed by location `K`.
#[derive(Debug)]
pub struct MvMemory<K, V> {
    shards: Box<[CachePadded<RwLock<Shard<K, V>>>]>,
    shard_hasher: foldhash::fast::FixedState,
    shard_mask: usize,
    /// Locations the latest incarnation of each transaction wrote.
    last_written_locations: Box<[CachePadded<Mutex<Arc<[K]>>>]>,
    /// Reads of the latest incarnation of each transaction. An `Arc` so that a validator can
    /// take it and release the lock while it checks.
    last_read_set: Box<[CachePadded<Mutex<Arc<ReadSet<K>>>>]>,
}

impl<K: Eq + Hash + Clone, V: MvValue> MvMemory<K, V> {
    /// Memory for a block of `num_txns` transactions.
    pub fn new(num_txns: usize) -> Self {
        // Enough shards that two workers rarely meet on one lock, few enough to stay in cache.
        let shard_count = if cfg!(loom) { 2 } else { 256 };
        Self {
            shards: (0..shard_count).map(|_| CachePadded::new(RwLock::new(Shard::default()))).collect(),
            shard_hasher: foldhash::fast::FixedState::with_seed(SHARD_SEED),
            shard_mask: shard_count - 1,
            last_written_locations: (0..num_txns)
                .map(|_| CachePadded::new(Mutex::new(Arc::from(Vec::new()))))
                .collect(),
            last_read_set: (0..num_txns)
                .map(|_| CachePadded::new(Mutex::new(Arc::new(Vec::new()))))
                .collect(),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<Shard<K, V>> {
        &self.shards[self.shard_hasher.hash_one(key) as usize & self.shard_mask]
    }

    /// Reads `key` as transaction `txn_idx` sees it. `Err(blocking)` if the nearest relevant
    /// write is an ESTIMATE of transaction `blocking`, whose next incarnation must run first.
    pub fn read(&self, key: &K, txn_idx: TxnIndex) -> Result<(MvRead<V>, ReadOrigin), TxnIndex> {
        let shard = self.shard(key).read();
        let Some(versions) = shard.get(key) else {
            return Ok((MvRead::Storage, ReadOrigin::Storage));
        };
        let mut below = versions.range(..txn_idx).rev();
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
                            MvRead::Deltas { deltas, base: Some(value.clone()) },
                            ReadOrigin::Chain { versions: versions.into(), from_storage: false },
                        ));
                    }
                    deltas.push(value.clone());
                }
            }
        }
        Ok((
            MvRead::Deltas { deltas, base: None },
            ReadOrigin::Chain { versions: versions.into(), from_storage: true },
        ))
    }

    /// Whether a read of `key` by `txn_idx` now would come from `origin` (without cloning).
    fn read_matches(&self, key: &K, txn_idx: TxnIndex, origin: &ReadOrigin) -> bool {
        let shard = self.shard(key).read();
        let mut below = shard.get(key).into_iter().flat_map(|v| v.range(..txn_idx).rev());
        match origin {
            ReadOrigin::Storage => below.next().is_none(),
            ReadOrigin::Version(version) => match below.next() {
                Some((&idx, Cell::Written { incarnation, value })) => {
                    !value.is_delta() && Version::new(idx, *incarnation) == *version
                }
                _ => false,
            },
            ReadOrigin::Chain { versions, from_storage } => {
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
        let Version { txn_idx, incarnation } = version;
        let new_locations: Arc<[K]> = write_set.iter().map(|(k, _)| k.clone()).collect();
        for (key, value) in write_set {
            let mut shard = self.shard(&key).write();
            shard.entry(key).or_default().insert(txn_idx, Cell::Written { incarnation, value });
        }
        let previous = {
            let mut locations = self.last_written_locations[txn_idx].lock();
            std::mem::replace(&mut *locations, new_locations.clone())
        };
        for stale in previous.iter().filter(|k| !new_locations.contains(k)) {
            let mut shard = self.shard(stale).write();
            if let Some(versions) = shard.get_mut(stale) {
                versions.remove(&txn_idx);
            }
        }
        *self.last_read_set[txn_idx].lock() = Arc::new(read_set);
        new_locations.iter().any(|k| !previous.contains(k))
    }

    /// Turns the writes of the latest incarnation of `txn_idx` into ESTIMATE markers, after it
    /// was aborted: readers then wait for its next incarnation instead of reading stale data.
    pub fn convert_writes_to_estimates(&self, txn_idx: TxnIndex) {
        let locations = self.last_written_locations[txn_idx].lock().clone();
        for key in locations.iter() {
            let mut shard = self.shard(key).write();
            if let Some(cell) = shard.get_mut(key).and_then(|v| v.get_mut(&txn_idx)) {
                *cell = Cell::Estimate;
            }
        }
    }

    /// Whether every read of the latest incarnation of `txn_idx` would still return the same
    /// version (`validate_read_set` in the paper).
    pub fn validate_read_set(&self, txn_idx: TxnIndex) -> bool {
        let read_set = self.last_read_set[txn_idx].lock().clone();
        read_set.iter().all(|(key, origin)| self.read_matches(key, txn_idx, origin))
    }

    /// Visits every written location with its final writes, top-down, through the first full
    /// value: the block's net effect on that location. Call after the block is done.
    ///
    /// Fails with the index of a transaction whose write is still an ESTIMATE, which cannot
    /// happen after a completed run and means an invariant broke.
    pub fn for_each_final(
        &self,
        mut visit: impl FnMut(&K, &mut dyn Iterator<Item = (TxnIndex, &V)>),
    ) -> Result<(), TxnIndex> {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for (key, versions) in shard.iter() {
                if let Some((&idx, _)) = versions.iter().find(|(_, c)| matches!(c, Cell::Estimate)) {
                    return Err(idx);
                }
                let mut top_down = versions.iter().rev().filter_map(|(idx, cell)| match cell {
                    Cell::Written { value, .. } => Some((*idx, value)),
                    Cell::Estimate => None,
                });
                visit(key, &mut top_down);
            }
        }
        Ok(())
    }

    /// The locations the latest incarnation of `txn_idx` wrote.
    pub fn written_locations(&self, txn_idx: TxnIndex) -> Arc<[K]> {
        self.last_written_locations[txn_idx].lock().clone()
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
        assert_eq!(mv.read(&7, 1).unwrap(), (MvRead::Storage, ReadOrigin::Storage));
        assert_eq!(
            mv.read(&7, 3).unwrap(),
            (MvRead::Value(Val::Full(10)), ReadOrigin::Version(Version::new(1, 0)))
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
        assert_eq!(read, MvRead::Deltas { deltas: vec![Val::Add(2), Val::Add(1)], base: None });
        assert!(matches!(origin, ReadOrigin::Chain { from_storage: true, .. }));
        mv.record(Version::new(3, 0), vec![(1, origin.clone())], vec![]);
        assert!(mv.validate_read_set(3));
        // A full write below the chain invalidates the reader.
        mv.record(Version::new(1, 0), vec![], vec![(1, Val::Full(100))]);
        assert!(!mv.validate_read_set(3));
        assert_eq!(
            mv.read(&1, 4).unwrap().0,
            MvRead::Deltas { deltas: vec![Val::Add(2)], base: Some(Val::Full(100)) }
        );
        let mut finals = Vec::new();
        mv.for_each_final(|k, it| finals.push((*k, it.map(|(i, v)| (i, v.clone())).collect::<Vec<_>>())))
            .unwrap();
        assert_eq!(
            finals,
            vec![(1, vec![(2, Val::Add(2)), (1, Val::Full(100)), (0, Val::Add(1))])]
        );
    }

    #[test]
    fn validation_detects_new_and_changed_writes() {
        let mv = MvMemory::<u8, Val>::new(3);
        mv.record(Version::new(2, 0), vec![(5, ReadOrigin::Storage)], vec![]);
        assert!(mv.validate_read_set(2));
        mv.record(Version::new(0, 0), vec![], vec![(5, Val::Full(1))]);
        assert!(!mv.validate_read_set(2));
        mv.record(Version::new(2, 1), vec![(5, ReadOrigin::Version(Version::new(0, 0)))], vec![]);
        assert!(mv.validate_read_set(2));
        mv.record(Version::new(0, 1), vec![], vec![(5, Val::Full(1))]);
        assert!(!mv.validate_read_set(2), "same value, new incarnation: still a new version");
    }
}
