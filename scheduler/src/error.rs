use crate::types::TxnIndex;

/// Why a parallel run ended without a result. The caller falls back to sequential execution,
/// which gives the reference result (or the same error, for a failing state read).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError<E> {
    /// A task returned a fatal error.
    #[error("transaction {txn_idx} failed: {error:?}")]
    Task {
        /// The transaction.
        txn_idx: TxnIndex,
        /// The task's error.
        error: E,
    },
    /// A task panicked; the panic was caught so that the node survives.
    #[error("transaction {txn_idx} panicked: {message}")]
    Panic {
        /// The transaction.
        txn_idx: TxnIndex,
        /// The panic message.
        message: String,
    },
    /// A task reported a dependency on itself or a higher transaction.
    #[error("transaction {txn_idx} reported a dependency on {blocking}, which is not below it")]
    InvalidDependency {
        /// The transaction.
        txn_idx: TxnIndex,
        /// The reported blocking transaction.
        blocking: TxnIndex,
    },
    /// The run finished without an output for a transaction (an invariant broke).
    #[error("transaction {txn_idx} has no output after the run")]
    MissingOutput {
        /// The transaction.
        txn_idx: TxnIndex,
    },
    /// The block is too contended for parallel execution to pay off: the run stopped early.
    #[error("too contended: {wasted} of {executions} executions wasted")]
    Contended {
        /// Executions that hit a dependency or were aborted.
        wasted: usize,
        /// Executions started when the run stopped.
        executions: usize,
    },
    /// A location still holds an ESTIMATE after the run (an invariant broke).
    #[error("transaction {txn_idx} left an ESTIMATE behind after the run")]
    EstimateLeft {
        /// The transaction.
        txn_idx: TxnIndex,
    },
}
