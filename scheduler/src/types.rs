/// Position of a transaction in the block: the preset order Block-STM preserves.
pub type TxnIndex = usize;

/// How many times a transaction has been re-executed: incarnation `i + 1` starts after
/// incarnation `i` was aborted.
pub type Incarnation = u32;

/// One execution of one transaction: the pair that versions every write in the multi-version
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// The transaction.
    pub txn_idx: TxnIndex,
    /// Its incarnation.
    pub incarnation: Incarnation,
}

impl Version {
    /// The version of incarnation `incarnation` of transaction `txn_idx`.
    pub const fn new(txn_idx: TxnIndex, incarnation: Incarnation) -> Self {
        Self {
            txn_idx,
            incarnation,
        }
    }
}

/// A task handed to a worker by the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Run this incarnation of the transaction.
    Execution(Version),
    /// Check that this incarnation's reads are still what it would read now.
    Validation(Version),
}
