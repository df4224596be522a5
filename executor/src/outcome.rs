use alloy_primitives::{Address, Bloom, Bytes, Log, U256};
use chain_primitives::StateDiff;
use revm::context::result::InvalidTransaction;
use serde::{Deserialize, Serialize};

/// How an included transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxStatus {
    /// Ran to completion (STOP, RETURN, SELFDESTRUCT).
    Success,
    /// Executed REVERT: state changes undone, gas used charged, logs dropped.
    Revert,
    /// Halted exceptionally (out of gas, invalid opcode, ...): all gas charged.
    Halt,
}

/// The receipt of an included transaction, with the execution details RPC needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    /// EIP-2718 type byte.
    pub tx_type: u8,
    /// How it ended.
    pub status: TxStatus,
    /// Gas this transaction used (after refunds).
    pub gas_used: u64,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Logs emitted (empty unless it succeeded).
    pub logs: Vec<Log>,
    /// Bloom filter of `logs`.
    pub logs_bloom: Bloom,
    /// Address of the created contract, for a successful creation.
    pub contract_address: Option<Address>,
    /// Return data, or revert data for a revert.
    pub output: Bytes,
    /// Price per gas the sender paid.
    pub effective_gas_price: u128,
    /// Priority fee paid to the beneficiary (gas used times the tip per gas).
    pub beneficiary_fee: U256,
}

impl TxReceipt {
    /// Whether the transaction succeeded (the receipt's EIP-658 status 1).
    pub fn success(&self) -> bool {
        self.status == TxStatus::Success
    }
}

/// What became of one transaction of the block.
// Nearly every outcome of a block is a receipt: boxing it would cost an allocation per
// transaction to save space on the rare skipped ones.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOutcome {
    /// Executed and included, with its receipt.
    Included(TxReceipt),
    /// Not includable (bad nonce, insufficient funds, gas above the block's remaining gas...):
    /// changes nothing, uses no gas. A block builder drops it; a block importer rejects the
    /// block.
    Skipped(SkipReason),
}

impl TxOutcome {
    /// The receipt, if included.
    pub fn receipt(&self) -> Option<&TxReceipt> {
        match self {
            TxOutcome::Included(receipt) => Some(receipt),
            TxOutcome::Skipped(_) => None,
        }
    }

    /// The receipt, if included, to amend.
    pub fn receipt_mut(&mut self) -> Option<&mut TxReceipt> {
        match self {
            TxOutcome::Included(receipt) => Some(receipt),
            TxOutcome::Skipped(_) => None,
        }
    }
}

/// Why a transaction was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SkipReason {
    /// revm rejected it before execution (nonce, balance, intrinsic gas, fee cap, ...).
    #[error("invalid transaction: {0}")]
    Invalid(String),
    /// Its gas limit exceeds the gas left in the block.
    #[error("gas limit {gas_limit} exceeds the {remaining} gas left in the block")]
    BlockGasExhausted {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// Gas left in the block before it.
        remaining: u64,
    },
}

impl From<&InvalidTransaction> for SkipReason {
    fn from(error: &InvalidTransaction) -> Self {
        SkipReason::Invalid(error.to_string())
    }
}

/// The result of executing a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutput {
    /// One outcome per input transaction, in block order.
    pub outcomes: Vec<TxOutcome>,
    /// Gas used by the included transactions.
    pub gas_used: u64,
    /// Union of the receipts' blooms.
    pub logs_bloom: Bloom,
    /// The block's effect on the state, fees included.
    pub diff: StateDiff,
}

impl BlockOutput {
    /// The receipts of the included transactions, in order.
    pub fn receipts(&self) -> impl Iterator<Item = &TxReceipt> {
        self.outcomes.iter().filter_map(TxOutcome::receipt)
    }

    /// Number of included transactions.
    pub fn included(&self) -> usize {
        self.receipts().count()
    }
}

/// Bloom filter of a list of logs.
pub fn logs_bloom<'a>(logs: impl IntoIterator<Item = &'a Log>) -> Bloom {
    let mut bloom = Bloom::ZERO;
    for log in logs {
        bloom.accrue_log(log);
    }
    bloom
}
