use crate::{PoolConfig, PoolError, validation};
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxHash, U256};

/// A transaction as the pool holds it: decoded, its sender recovered once, and the fields the
/// pool orders and checks by computed in advance.
///
/// The pool hands these out as `Arc<PooledTx>`: to the block builder
/// ([`TxPool::best_transactions`](crate::TxPool::best_transactions)), to RPC queries, and back
/// to the pool on reorgs ([`TxPool::reinject`](crate::TxPool::reinject)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PooledTx {
    tx: TxEnvelope,
    hash: TxHash,
    sender: Address,
    encoded: Bytes,
    nonce: u64,
    gas_limit: u64,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
    cost: U256,
}

impl PooledTx {
    /// Decodes raw EIP-2718 bytes, runs every check that needs neither state nor the base fee
    /// (type, size, chain id, gas, fees, nonce bound) and recovers the sender.
    ///
    /// This is the admission path of [`TxPool::add_raw`](crate::TxPool::add_raw) without the
    /// pool: use it to validate transactions from elsewhere (the fixture tests do).
    pub fn decode(raw: Bytes, config: &PoolConfig) -> Result<Self, PoolError> {
        validation::decode_unrecovered(raw, config)?.recover()
    }

    /// Wraps a transaction whose sender is already known, as for transactions of a block that
    /// the node imported (and so recovered) and now returns to the pool on a reorg.
    ///
    /// The signature is not checked again; blob and set-code transactions are refused.
    pub fn from_recovered(tx: TxEnvelope, sender: Address) -> Result<Self, PoolError> {
        match tx {
            TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => {}
            TxEnvelope::Eip4844(_) => return Err(PoolError::UnsupportedTxType { tx_type: 3 }),
            TxEnvelope::Eip7702(_) => return Err(PoolError::UnsupportedTxType { tx_type: 4 }),
        }
        let encoded = Bytes::from(tx.encoded_2718());
        let hash = *tx.tx_hash();
        Self::from_parts(tx, hash, encoded, sender)
    }

    /// Assembles a pooled transaction; computes the derived fields.
    pub(crate) fn from_parts(
        tx: TxEnvelope,
        hash: TxHash,
        encoded: Bytes,
        sender: Address,
    ) -> Result<Self, PoolError> {
        let max_fee_per_gas = tx.max_fee_per_gas();
        // Legacy and EIP-2930 transactions pay their whole gas price as tip above the base fee.
        let max_priority_fee_per_gas = tx.max_priority_fee_per_gas().unwrap_or(max_fee_per_gas);
        let cost = max_cost(tx.gas_limit(), max_fee_per_gas, tx.value())?;
        Ok(Self {
            nonce: tx.nonce(),
            gas_limit: tx.gas_limit(),
            max_fee_per_gas,
            max_priority_fee_per_gas,
            cost,
            tx,
            hash,
            sender,
            encoded,
        })
    }

    /// The decoded transaction.
    pub fn tx(&self) -> &TxEnvelope {
        &self.tx
    }

    /// The transaction hash (keccak256 of the EIP-2718 encoding).
    pub fn hash(&self) -> TxHash {
        self.hash
    }

    /// The recovered sender.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// The EIP-2718 encoding (what `eth_sendRawTransaction` received and gossip relays).
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.encoded.len()
    }

    /// The sender's nonce this transaction uses.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.gas_limit
    }

    /// Fee cap per gas: `max_fee_per_gas`, or the gas price of legacy and EIP-2930 transactions.
    pub fn max_fee_per_gas(&self) -> u128 {
        self.max_fee_per_gas
    }

    /// Tip cap per gas: `max_priority_fee_per_gas`, or the gas price of legacy and EIP-2930
    /// transactions.
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.max_priority_fee_per_gas
    }

    /// The most the transaction can cost its sender: value + gas limit × fee cap.
    pub fn cost(&self) -> U256 {
        self.cost
    }

    /// The tip per gas the block producer earns under `base_fee`:
    /// `min(tip cap, fee cap - base_fee)`; `None` when the fee cap is below the base fee.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let above_base = self.max_fee_per_gas.checked_sub(u128::from(base_fee))?;
        Some(above_base.min(self.max_priority_fee_per_gas))
    }

    /// The price per gas the sender pays under `base_fee`: `min(fee cap, base_fee + tip cap)`.
    pub fn effective_gas_price(&self, base_fee: u64) -> u128 {
        u128::from(base_fee)
            .saturating_add(self.max_priority_fee_per_gas)
            .min(self.max_fee_per_gas)
    }
}

/// value + gas_limit × max_fee, refusing what does not fit in 256 bits.
fn max_cost(gas_limit: u64, max_fee_per_gas: u128, value: U256) -> Result<U256, PoolError> {
    // A u64 times a u128 fits in 192 bits; only the addition of the value can overflow.
    let gas_cost = U256::from(gas_limit) * U256::from(max_fee_per_gas);
    gas_cost.checked_add(value).ok_or(PoolError::CostOverflow)
}
