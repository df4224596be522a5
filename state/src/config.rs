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
    /// about 50 MiB, for depth 5). 0 keeps nothing.
    pub resident_trie_depth: usize,
    /// The resident top of the account trie is written to the database every this many
    /// commits instead of with every commit (1: every commit). Nearly every commit rewrites
    /// the whole top (its branches cover every account), so at 10,000 accounts per block it
    /// is half the bytes a commit writes and compacts. Meanwhile the unwritten nodes stay in
    /// memory, and a clean close writes them. After a crash, opening the database rebuilds
    /// the account trie from the flat accounts (which every commit writes), checked against
    /// the latest root: a full pass over the accounts, seconds per million.
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
