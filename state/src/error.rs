use alloy_primitives::B256;

/// Everything that can go wrong in the state crate.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A [`StateConfig`](crate::StateConfig) setting is out of range (see
    /// [`StateConfig::validate`](crate::StateConfig::validate)).
    #[error("invalid state configuration: {0}")]
    InvalidConfig(String),

    /// RocksDB reported an error (I/O, options, a corrupted SST file, ...).
    #[error("rocksdb: {0}")]
    Rocksdb(#[from] rocksdb::Error),

    /// An I/O error outside RocksDB, e.g. reading or writing a snapshot stream.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),

    /// Stored data does not decode or does not agree with itself (a missing trie node, a root
    /// that does not match the stored nodes, a malformed record).
    #[error("corrupt state database: {0}")]
    Corruption(String),

    /// `commit_block` was given a block that does not follow the latest committed one.
    #[error("block {got} does not follow the latest committed block (expected {expected})")]
    NonConsecutiveBlock {
        /// The number that would follow the latest committed block.
        expected: u64,
        /// The number that was given.
        got: u64,
    },

    /// The block is above the latest committed block, or no block has been committed yet.
    #[error("block {number} is unknown (latest committed: {latest:?})")]
    UnknownBlock {
        /// The requested block.
        number: u64,
        /// The latest committed block, `None` for an empty database.
        latest: Option<u64>,
    },

    /// The state of the block was pruned: only the last `history_blocks` states are kept.
    #[error("state of block {number} was pruned (oldest retained state: block {oldest})")]
    PrunedBlock {
        /// The requested block.
        number: u64,
        /// The oldest block whose state is still readable.
        oldest: u64,
    },

    /// A snapshot's accounts and storage hash to a different root than its header claims.
    #[error("snapshot root mismatch: header says {expected}, the data hashes to {computed}")]
    SnapshotRootMismatch {
        /// The root in the snapshot header.
        expected: B256,
        /// The root computed from the snapshot's accounts and storage.
        computed: B256,
    },

    /// A snapshot stream is not in the expected format (bad magic, version, truncated,
    /// out-of-order records, code that does not match its hash, ...).
    #[error("bad snapshot: {0}")]
    BadSnapshot(String),

    /// An import was attempted into a database that already holds state.
    #[error("the target database is not empty")]
    NotEmpty,

    /// A commit was interrupted by a panic while it was being published, so the in-memory
    /// state may disagree with the database; reopening the database recovers.
    #[error("a commit was interrupted while it was published: reopen the state database")]
    Interrupted,

    /// Reverting the state did not reproduce the root recorded for the target block.
    #[error("revert to block {number} produced root {computed}, expected {expected}")]
    RevertRootMismatch {
        /// The block reverted to.
        number: u64,
        /// The root recorded for that block.
        expected: B256,
        /// The root after the revert.
        computed: B256,
    },
}

impl StateError {
    /// Shorthand for a [`StateError::Corruption`].
    pub(crate) fn corruption(message: impl Into<String>) -> Self {
        Self::Corruption(message.into())
    }
}
