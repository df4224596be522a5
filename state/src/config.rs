use crate::StateError;

/// Largest accepted [`StateConfig::resident_trie_depth`]: depth 7 keeps up to 16^6 branches
/// decoded (gigabytes), already more memory than any machine should spend on it.
pub const MAX_RESIDENT_TRIE_DEPTH: usize = 7;

/// Largest effective [`StateConfig::small_storage_max_slots`] (larger values are taken as
/// this): every commit reads up to this many slots of each account whose storage it changes.
pub const MAX_SMALL_STORAGE_SLOTS: u32 = 256;

/// Largest accepted [`StateConfig::top_write_interval`]: beyond it the top's writes are a
/// negligible share of what commits write.
pub const MAX_TOP_WRITE_INTERVAL: u64 = 4096;

/// Tuning and retention of a [`StateDb`](crate::StateDb).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// How many blocks can be reverted, and how many past states stay readable: the states of
    /// blocks `latest - history_blocks ..= latest`. Older changesets are pruned as blocks are
    /// committed. `u64::MAX` keeps everything.
    pub history_blocks: u64,
    /// Entries of the in-memory account cache.
    pub account_cache_entries: usize,
    /// Entries of the in-memory storage-slot cache.
    pub storage_cache_entries: usize,
    /// Entries of the in-memory contract-code cache.
    pub code_cache_entries: usize,
    /// Account-trie nodes whose path is shorter than this many nibbles stay decoded in memory
    /// between commits, so that commits do not reload the top of the trie every block. Bounded
    /// whatever the state size: at most 1 + 16 + ... + 16^(depth-1) nodes (69,905 branches,
    /// about 50 MiB, for depth 5). 0 keeps nothing; at most [`MAX_RESIDENT_TRIE_DEPTH`].
    pub resident_trie_depth: usize,
    /// The resident top of the account trie is written to the database every this many
    /// commits instead of with every commit (1: every commit). Nearly every commit rewrites
    /// the whole top (its branches cover every account), so at 10,000 accounts per block it
    /// is half the bytes a commit writes and compacts. Meanwhile the unwritten nodes stay in
    /// memory, and a clean close writes them. After a crash, opening the database rebuilds
    /// the account trie from the flat accounts (which every commit writes), checked against
    /// the latest root: a full pass over the accounts, seconds per million. At most
    /// [`MAX_TOP_WRITE_INTERVAL`].
    pub top_write_interval: u64,
    /// Storage of at most this many slots keeps no storage-trie nodes in the database: when
    /// it changes, its root is recomputed from its flat slots (read in one prefix scan, which
    /// also yields the old values). Most contracts hold a few slots, and for them the scan
    /// costs less than loading, rewriting and later compacting the trie's nodes. Larger
    /// storage is updated incrementally through its stored nodes, after a scan of its first
    /// slots; values above 256 are taken as 256. Fixed when an empty database is opened
    /// (later opens use the stored value); databases that got blocks from builds before this
    /// setting existed keep every storage trie (0).
    pub small_storage_max_slots: u32,
    /// Bytes of RocksDB's LRU block cache, shared by all column families.
    pub block_cache_bytes: usize,
    /// Bytes of each column family's memtable before it is flushed to disk. Larger memtables
    /// flush less often but make every insert slower (a deeper skip list, more cache misses):
    /// 64 MiB is a compromise between huge commits (10,000 accounts, which favour larger ones)
    /// and ordinary blocks (a few hundred transfers, which favour 8-32 MiB).
    pub write_buffer_bytes: usize,
    /// Accounts the existence filter is sized for at open (it grows when exceeded).
    pub filter_expected_accounts: usize,
    /// Whether every commit waits for the write-ahead log to reach the disk (fsync). Without
    /// it a commit survives a process crash but not a power loss.
    pub sync_writes: bool,
    /// RocksDB background threads (flushes and compactions).
    pub background_jobs: i32,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            history_blocks: 128,
            account_cache_entries: 1 << 20,
            storage_cache_entries: 1 << 21,
            code_cache_entries: 8192,
            resident_trie_depth: 5,
            top_write_interval: 64,
            small_storage_max_slots: 16,
            block_cache_bytes: 512 << 20,
            write_buffer_bytes: 64 << 20,
            filter_expected_accounts: 1 << 20,
            sync_writes: false,
            background_jobs: 2,
        }
    }
}

impl StateConfig {
    /// Checks the settings [`StateDb::open`](crate::StateDb::open) cannot work with: a resident
    /// depth above [`MAX_RESIDENT_TRIE_DEPTH`], a top-write interval outside
    /// 1..=[`MAX_TOP_WRITE_INTERVAL`], an empty memtable or no background thread.
    pub fn validate(&self) -> Result<(), StateError> {
        let invalid = |message: String| Err(StateError::InvalidConfig(message));
        if self.resident_trie_depth > MAX_RESIDENT_TRIE_DEPTH {
            return invalid(format!(
                "resident_trie_depth {} is above {MAX_RESIDENT_TRIE_DEPTH}",
                self.resident_trie_depth
            ));
        }
        if !(1..=MAX_TOP_WRITE_INTERVAL).contains(&self.top_write_interval) {
            return invalid(format!(
                "top_write_interval {} is outside 1..={MAX_TOP_WRITE_INTERVAL}",
                self.top_write_interval
            ));
        }
        if self.write_buffer_bytes == 0 {
            return invalid("write_buffer_bytes is 0".to_string());
        }
        if self.background_jobs < 1 {
            return invalid(format!(
                "background_jobs {} is below 1",
                self.background_jobs
            ));
        }
        Ok(())
    }

    /// A small configuration for tests: small caches and buffers, default retention.
    pub fn for_tests() -> Self {
        Self {
            account_cache_entries: 4096,
            storage_cache_entries: 4096,
            code_cache_entries: 256,
            resident_trie_depth: 2,
            top_write_interval: 3,
            small_storage_max_slots: 4,
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            filter_expected_accounts: 4096,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateDb;

    #[test]
    fn out_of_range_settings_open_nothing() {
        StateConfig::default().validate().unwrap();
        StateConfig::for_tests().validate().unwrap();
        let edges = StateConfig {
            resident_trie_depth: MAX_RESIDENT_TRIE_DEPTH,
            top_write_interval: MAX_TOP_WRITE_INTERVAL,
            ..StateConfig::for_tests()
        };
        edges.validate().unwrap();
        type Change = fn(&mut StateConfig);
        let invalid: [(Change, &str); 5] = [
            (
                |c| c.resident_trie_depth = MAX_RESIDENT_TRIE_DEPTH + 1,
                "resident_trie_depth",
            ),
            (|c| c.top_write_interval = 0, "top_write_interval"),
            (
                |c| c.top_write_interval = MAX_TOP_WRITE_INTERVAL + 1,
                "top_write_interval",
            ),
            (|c| c.write_buffer_bytes = 0, "write_buffer_bytes"),
            (|c| c.background_jobs = 0, "background_jobs"),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (index, (change, key)) in invalid.into_iter().enumerate() {
            let mut config = StateConfig::for_tests();
            change(&mut config);
            let path = dir.path().join(index.to_string());
            match StateDb::open(&path, config) {
                Err(StateError::InvalidConfig(message)) => {
                    assert!(message.contains(key), "{message:?} does not name {key}")
                }
                other => panic!("{key}: {:?}", other.map(|_| ())),
            }
            assert!(!path.exists(), "{key}: a database was created");
        }
    }
}
