//! Our blocks, transactions and receipts turned into alloy's RPC types, which serialize with
//! geth's field names and encodings.

use crate::api::{IndexedBlock, PoolTransaction};
use alloy_consensus::{
    Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope,
    transaction::Recovered,
};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header as RpcHeader, Log as RpcLog, Transaction, TransactionReceipt,
};
use chain_primitives::{Header, StoredReceipt};

/// Where a mined transaction sits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxPlace {
    pub(crate) block_hash: B256,
    pub(crate) block_number: u64,
    pub(crate) index: u64,
    pub(crate) base_fee: Option<u64>,
}

/// The price per gas a transaction pays under `base_fee` (geth's `effectiveGasPrice`).
pub(crate) fn effective_gas_price(tx: &TxEnvelope, base_fee: Option<u64>) -> u128 {
    tx.effective_gas_price(base_fee)
}

/// The tip per gas the block's producer receives (geth's `EffectiveGasTip`).
pub(crate) fn effective_tip(tx: &TxEnvelope, base_fee: Option<u64>) -> u128 {
    effective_gas_price(tx, base_fee).saturating_sub(u128::from(base_fee.unwrap_or(0)))
}

/// The header as `newHeads` and block objects show it.
pub(crate) fn rpc_header(block: &IndexedBlock, with_size: bool) -> RpcHeader {
    RpcHeader {
        hash: block.block.hash(),
        inner: block.block.header().clone(),
        // geth still serves totalDifficulty on blocks; proof of stake keeps it at zero.
        total_difficulty: with_size.then_some(U256::ZERO),
        size: with_size.then(|| U256::from(block.size)),
    }
}

/// A mined transaction object.
pub(crate) fn mined_transaction(tx: &TxEnvelope, sender: Address, place: TxPlace) -> Transaction {
    Transaction {
        inner: Recovered::new_unchecked(tx.clone(), sender),
        block_hash: Some(place.block_hash),
        block_number: Some(place.block_number),
        transaction_index: Some(place.index),
        effective_gas_price: Some(effective_gas_price(tx, place.base_fee)),
        block_timestamp: None,
    }
}

/// A pool transaction object: block fields null; `gasPrice` of a dynamic-fee transaction is its
/// fee cap, as geth shows it while pending.
pub(crate) fn pending_transaction(tx: &PoolTransaction) -> Transaction {
    Transaction {
        inner: Recovered::new_unchecked(tx.tx.clone(), tx.sender),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: Some(tx.tx.max_fee_per_gas()),
        block_timestamp: None,
    }
}

/// The transaction at `index` of `block`.
pub(crate) fn block_transaction(block: &IndexedBlock, index: usize) -> Option<Transaction> {
    let tx = block.block.block().transactions.get(index)?;
    let sender = *block.senders.get(index)?;
    Some(mined_transaction(tx, sender, place(block, index)))
}

fn place(block: &IndexedBlock, index: usize) -> TxPlace {
    TxPlace {
        block_hash: block.block.hash(),
        block_number: block.block.number(),
        index: index as u64,
        base_fee: block.block.header().base_fee_per_gas,
    }
}

/// The block object of `eth_getBlockBy*`.
pub(crate) fn rpc_block(block: &IndexedBlock, full: bool) -> Block {
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.block.block().transactions.len())
                .filter_map(|i| block_transaction(block, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(block.tx_hashes.clone())
    };
    let header: &Header = block.block.header();
    Block {
        header: rpc_header(block, true),
        uncles: Vec::new(),
        transactions,
        withdrawals: header.withdrawals_root.map(|_| Default::default()),
    }
}

/// A log as RPC shows it, located in its block.
pub(crate) fn rpc_log(
    log: &alloy_primitives::Log,
    block: &IndexedBlock,
    tx_index: usize,
    log_index: u64,
    removed: bool,
) -> RpcLog {
    RpcLog {
        inner: log.clone(),
        block_hash: Some(block.block.hash()),
        block_number: Some(block.block.number()),
        block_timestamp: Some(block.block.header().timestamp),
        transaction_hash: block.tx_hashes.get(tx_index).copied(),
        transaction_index: Some(tx_index as u64),
        log_index: Some(log_index),
        removed,
    }
}

/// Index of the first log of each receipt in the block-wide log numbering.
pub(crate) fn first_log_indexes(receipts: &[StoredReceipt]) -> Vec<u64> {
    let mut next = 0u64;
    receipts
        .iter()
        .map(|r| {
            let first = next;
            next += r.logs.len() as u64;
            first
        })
        .collect()
}

/// The receipt of transaction `index` of `block`.
pub(crate) fn rpc_receipt(
    block: &IndexedBlock,
    receipts: &[StoredReceipt],
    index: usize,
    first_log_index: u64,
) -> Option<TransactionReceipt> {
    let receipt = receipts.get(index)?;
    let tx = block.block.block().transactions.get(index)?;
    let logs = receipt
        .logs
        .iter()
        .enumerate()
        .map(|(i, log)| rpc_log(log, block, index, first_log_index + i as u64, false))
        .collect();
    let with_bloom = ReceiptWithBloom {
        receipt: Receipt {
            status: Eip658Value::Eip658(receipt.success),
            cumulative_gas_used: receipt.cumulative_gas_used,
            logs,
        },
        logs_bloom: receipt.bloom(),
    };
    let inner = match receipt.tx_type {
        1 => ReceiptEnvelope::Eip2930(with_bloom),
        2 => ReceiptEnvelope::Eip1559(with_bloom),
        3 => ReceiptEnvelope::Eip4844(with_bloom),
        4 => ReceiptEnvelope::Eip7702(with_bloom),
        _ => ReceiptEnvelope::Legacy(with_bloom),
    };
    Some(TransactionReceipt {
        inner,
        transaction_hash: *block.tx_hashes.get(index)?,
        transaction_index: Some(index as u64),
        block_hash: Some(block.block.hash()),
        block_number: Some(block.block.number()),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: *block.senders.get(index)?,
        to: tx.to(),
        contract_address: receipt.created(),
    })
}

/// Every receipt of a block.
pub(crate) fn rpc_receipts(
    block: &IndexedBlock,
    receipts: &[StoredReceipt],
) -> Vec<TransactionReceipt> {
    first_log_indexes(receipts)
        .into_iter()
        .enumerate()
        .filter_map(|(i, first)| rpc_receipt(block, receipts, i, first))
        .collect()
}
