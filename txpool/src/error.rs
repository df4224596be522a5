use alloy_primitives::{Address, U256};

/// Why the pool refused a transaction.
///
/// `Display` explains the refusal in our words (for logs); [`PoolError::geth_message`] gives
/// the text geth returns for the same refusal, which is what JSON-RPC clients (viem, ethers,
/// web3.py, foundry) match on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The bytes are not an EIP-2718 transaction envelope (bad RLP, trailing bytes, empty).
    #[error("malformed transaction: {reason}")]
    Decode {
        /// The decoder's complaint.
        reason: String,
    },
    /// A transaction type the chain does not carry: blob (3), set-code (4) or unknown.
    #[error("transaction type {tx_type} is not supported")]
    UnsupportedTxType {
        /// The EIP-2718 type byte.
        tx_type: u8,
    },
    /// The encoded transaction is larger than the pool's size limit.
    #[error("transaction of {size} bytes exceeds the {limit}-byte limit")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A legacy transaction signed without a chain id (pre-EIP-155), refused by configuration.
    #[error("legacy transaction without EIP-155 replay protection")]
    Unprotected,
    /// The transaction is signed for another chain.
    #[error("transaction for chain {got}, this chain is {expected}")]
    InvalidChainId {
        /// This chain's id.
        expected: u64,
        /// The transaction's chain id.
        got: u64,
    },
    /// The signature is malformed, has a high `s` (EIP-2), or recovers no public key.
    #[error("invalid signature")]
    InvalidSignature,
    /// The nonce is 2^64-1, which EIP-2681 forbids (the account nonce could not advance).
    #[error("nonce 2^64-1 is not allowed")]
    NonceMax,
    /// The gas limit is below the intrinsic gas (base, calldata, creation, access list).
    #[error("gas limit {gas} below the intrinsic gas {needed}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        gas: u64,
        /// Its intrinsic gas.
        needed: u64,
    },
    /// The gas limit is below the EIP-7623 calldata floor.
    #[error("gas limit {gas} below the calldata floor {needed}")]
    FloorDataGasTooLow {
        /// The transaction's gas limit.
        gas: u64,
        /// The floor.
        needed: u64,
    },
    /// The gas limit exceeds the per-transaction cap (EIP-7825).
    #[error("gas limit {gas} above the per-transaction cap {cap}")]
    GasLimitTooHigh {
        /// The transaction's gas limit.
        gas: u64,
        /// The cap.
        cap: u64,
    },
    /// The gas limit exceeds the block gas limit, so no block could include the transaction.
    #[error("gas limit {gas} above the block gas limit {limit}")]
    ExceedsBlockGasLimit {
        /// The transaction's gas limit.
        gas: u64,
        /// The block gas limit.
        limit: u64,
    },
    /// A contract creation whose init code exceeds EIP-3860's limit.
    #[error("init code of {size} bytes exceeds the {limit}-byte limit")]
    MaxInitCodeSizeExceeded {
        /// Init code size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The priority fee exceeds the fee cap.
    #[error("max priority fee {max_priority_fee} above max fee {max_fee}")]
    TipAboveFeeCap {
        /// Fee cap per gas.
        max_fee: u128,
        /// Priority fee per gas.
        max_priority_fee: u128,
    },
    /// The priority fee is below the pool's minimum.
    #[error("priority fee {tip} below the pool minimum {minimum}")]
    TipBelowMinimum {
        /// The transaction's priority fee per gas.
        tip: u128,
        /// The configured minimum.
        minimum: u128,
    },
    /// The fee cap is below the current base fee.
    #[error("max fee {max_fee} below the base fee {base_fee}")]
    FeeCapBelowBaseFee {
        /// The sender.
        sender: Address,
        /// Fee cap per gas.
        max_fee: u128,
        /// The pool's current base fee.
        base_fee: u64,
    },
    /// The sender has code, so it cannot originate transactions (EIP-3607).
    #[error("sender {sender} is a contract")]
    SenderNotEoa {
        /// The sender.
        sender: Address,
    },
    /// The pool already holds this transaction.
    #[error("transaction already in the pool")]
    AlreadyKnown,
    /// The nonce is below the sender's account nonce: it was already used.
    #[error("nonce {tx_nonce} below the account nonce {state_nonce}")]
    NonceTooLow {
        /// The transaction's nonce.
        tx_nonce: u64,
        /// The account's next nonce in the latest state.
        state_nonce: u64,
    },
    /// The balance does not cover the transaction's maximum cost plus that of the sender's
    /// pooled transactions with lower nonces.
    #[error("balance {balance} below {queued_cost} (pooled, ahead) + {tx_cost} (this tx)")]
    InsufficientFunds {
        /// The sender's balance.
        balance: U256,
        /// Maximum cost of the sender's pooled transactions with lower nonces.
        queued_cost: U256,
        /// This transaction's maximum cost: value + gas limit × fee cap.
        tx_cost: U256,
    },
    /// value + gas limit × fee cap does not fit in 256 bits.
    #[error("maximum cost overflows 256 bits")]
    CostOverflow,
    /// A transaction with the same sender and nonce is pooled and this one does not raise both
    /// the fee cap and the tip by the configured percentage.
    #[error("replacement must raise fee cap and tip by {bump_percent}%")]
    ReplacementUnderpriced {
        /// The required bump.
        bump_percent: u32,
    },
    /// The pool is full and this transaction pays no more than the cheapest one it could evict.
    #[error("pool full and the transaction pays no more than the cheapest pooled one")]
    Underpriced,
    /// The pool is full and holds nothing this transaction could displace.
    #[error("pool full")]
    PoolFull,
    /// The sender already has the most transactions one account may pool.
    #[error("sender already has {pooled} pooled transactions")]
    AccountLimitExceeded {
        /// How many it has.
        pooled: usize,
    },
    /// The state could not be read to check nonce and balance.
    #[error("state read failed: {0}")]
    StateRead(String),
}

impl PoolError {
    /// The message geth returns for this refusal: its `core/txpool` and `core` error text with
    /// the detail geth appends (format of geth 1.14–1.16, `core/txpool/validation.go`).
    ///
    /// Where geth's text carries values (nonces, balances, gas) ours carries the same values in
    /// the same format. Two are approximations: decoding errors (`rlp: <alloy's reason>` where
    /// geth prints its own RLP decoder's reason) and [`PoolError::StateRead`] (geth has none).
    pub fn geth_message(&self) -> String {
        match self {
            Self::Decode { reason } => format!("rlp: {reason}"),
            Self::UnsupportedTxType { tx_type } => format!(
                "transaction type not supported: tx type {tx_type} not supported by this pool"
            ),
            Self::Oversized { size, limit } => {
                format!("oversized data: transaction size {size}, limit {limit}")
            }
            Self::Unprotected => {
                "only replay-protected (EIP-155) transactions allowed over RPC".to_owned()
            }
            Self::InvalidChainId { expected, got } => {
                format!("invalid sender: invalid chain id for signer: have {got} want {expected}")
            }
            Self::InvalidSignature => {
                "invalid sender: invalid transaction v, r, s values".to_owned()
            }
            Self::NonceMax => "nonce has max value".to_owned(),
            Self::IntrinsicGasTooLow { gas, needed } => {
                format!("intrinsic gas too low: gas {gas}, minimum needed {needed}")
            }
            Self::FloorDataGasTooLow { gas, needed } => {
                format!(
                    "insufficient gas for floor data gas cost: gas {gas}, minimum needed {needed}"
                )
            }
            Self::GasLimitTooHigh { gas, cap } => {
                format!("transaction gas limit too high (cap: {cap}, tx: {gas})")
            }
            Self::ExceedsBlockGasLimit { .. } => "exceeds block gas limit".to_owned(),
            Self::MaxInitCodeSizeExceeded { size, limit } => {
                format!("max initcode size exceeded: code size {size}, limit {limit}")
            }
            Self::TipAboveFeeCap { .. } => {
                "max priority fee per gas higher than max fee per gas".to_owned()
            }
            Self::TipBelowMinimum { tip, minimum } => format!(
                "transaction gas price below minimum: gas tip cap {tip}, minimum needed {minimum}"
            ),
            Self::FeeCapBelowBaseFee {
                sender,
                max_fee,
                base_fee,
            } => format!(
                "max fee per gas less than block base fee: address {}, maxFeePerGas: {max_fee}, baseFee: {base_fee}",
                sender.to_checksum(None)
            ),
            Self::SenderNotEoa { sender } => {
                format!("sender not an eoa: address {}", sender.to_checksum(None))
            }
            Self::AlreadyKnown => "already known".to_owned(),
            Self::NonceTooLow {
                tx_nonce,
                state_nonce,
            } => {
                format!("nonce too low: next nonce {state_nonce}, tx nonce {tx_nonce}")
            }
            Self::InsufficientFunds {
                balance,
                queued_cost,
                tx_cost,
            } => {
                let need = queued_cost.saturating_add(*tx_cost);
                let overshot = need.saturating_sub(*balance);
                if queued_cost.is_zero() {
                    format!(
                        "insufficient funds for gas * price + value: balance {balance}, tx cost {tx_cost}, overshot {overshot}"
                    )
                } else {
                    format!(
                        "insufficient funds for gas * price + value: balance {balance}, queued cost {queued_cost}, tx cost {tx_cost}, overshot {overshot}"
                    )
                }
            }
            Self::CostOverflow => "insufficient funds for gas * price + value".to_owned(),
            Self::ReplacementUnderpriced { .. } => "replacement transaction underpriced".to_owned(),
            Self::Underpriced => "transaction underpriced".to_owned(),
            Self::PoolFull => "txpool is full".to_owned(),
            Self::AccountLimitExceeded { pooled } => {
                format!("account limit exceeded: pooled {pooled} txs")
            }
            Self::StateRead(reason) => format!("state unavailable: {reason}"),
        }
    }
}
