use crate::ExecutorError;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_primitives::{Address, TxKind};
use revm::context::TxEnv;

/// The gas price a transaction pays per unit under `base_fee`: its gas price for legacy and
/// EIP-2930 transactions, `min(max_fee, base_fee + max_priority_fee)` for EIP-1559 ones.
pub fn effective_gas_price(tx: &TxEnv, base_fee: u64) -> u128 {
    match tx.gas_priority_fee {
        Some(priority) if tx.tx_type >= 2 => tx
            .gas_price
            .min(u128::from(base_fee).saturating_add(priority)),
        _ => tx.gas_price,
    }
}

/// Converts a signed transaction and its recovered sender into revm's transaction input.
///
/// Legacy, EIP-2930 and EIP-1559 transactions are supported; blob (EIP-4844) and set-code
/// (EIP-7702) transactions are rejected: this chain has no blob market and no delegation.
pub fn tx_env(tx: &TxEnvelope, sender: Address) -> Result<TxEnv, ExecutorError> {
    let (tx_type, gas_price, priority) = match tx {
        TxEnvelope::Legacy(t) => (0u8, t.tx().gas_price, None),
        TxEnvelope::Eip2930(t) => (1, t.tx().gas_price, None),
        TxEnvelope::Eip1559(t) => (
            2,
            t.tx().max_fee_per_gas,
            Some(t.tx().max_priority_fee_per_gas),
        ),
        TxEnvelope::Eip4844(_) => return Err(ExecutorError::UnsupportedTxType { tx_type: 3 }),
        TxEnvelope::Eip7702(_) => return Err(ExecutorError::UnsupportedTxType { tx_type: 4 }),
    };
    Ok(TxEnv {
        tx_type,
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price,
        kind: match tx.kind() {
            TxKind::Create => TxKind::Create,
            TxKind::Call(to) => TxKind::Call(to),
        },
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: priority,
        ..TxEnv::default()
    })
}
