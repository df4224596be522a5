use crate::TxnIndex;

/// Errors of block execution.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The committed state could not be read (I/O error, corruption).
    #[error("state read failed: {0}")]
    State(String),
    /// revm failed in a way that is not the transaction's fault.
    #[error("EVM failure in transaction {txn_idx}: {message}")]
    Evm {
        /// The transaction.
        txn_idx: TxnIndex,
        /// revm's message.
        message: String,
    },
    /// A transaction type this chain does not execute.
    #[error("transaction type {tx_type} is not supported (only legacy, EIP-2930 and EIP-1559)")]
    UnsupportedTxType {
        /// The EIP-2718 type byte.
        tx_type: u8,
    },
    /// A thread count of zero.
    #[error("the number of execution threads must be at least 1")]
    ZeroThreads,
}
