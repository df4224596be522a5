//! How the node uses the transaction pool: choosing a block's transactions, and the pool's
//! views for RPC.

use alloy_primitives::{Address, B256};
use chain_primitives::{StateReader, TxEnvelope};
use chain_txpool::{PoolConfig, TxPool};
use std::collections::BTreeMap;

/// Smallest gas a transaction can use: below this much room the block is full.
const MIN_TX_GAS: u64 = 21_000;

/// The block's transactions from the pool at `base_fee`: by effective tip, nonce order within
/// a sender, until the gas limits add up to the block's. A sender whose next transaction does
/// not fit is skipped entirely: its later nonces could not run without it.
pub fn best_for_block(pool: &TxPool, base_fee: u64, gas_limit: u64) -> Vec<(TxEnvelope, Address)> {
    let mut selected = Vec::new();
    let mut gas = 0u64;
    let mut best = pool.best_transactions(base_fee);
    while let Some(tx) = best.next() {
        if gas_limit - gas < MIN_TX_GAS {
            break;
        }
        if gas + tx.gas_limit() > gas_limit {
            best.mark_invalid(&tx.sender());
            continue;
        }
        gas += tx.gas_limit();
        selected.push((tx.tx().clone(), tx.sender()));
    }
    selected
}

/// Drops transactions the executor refused (they would fail again).
pub fn remove_invalid(pool: &TxPool, hashes: &[B256]) {
    for hash in hashes {
        pool.remove(hash);
    }
}

/// Brings the pool up to a new head.
pub fn on_new_block<R: StateReader>(pool: &TxPool, senders: &[Address], state: &R, base_fee: u64) {
    let mut changed = senders.to_vec();
    changed.sort_unstable();
    changed.dedup();
    let update = pool.on_new_block(&changed, state, base_fee);
    tracing::debug!(
        removed = update.removed,
        promoted = update.promoted,
        evicted = update.evicted,
        "pool updated"
    );
}

/// (pending, queued).
pub fn counts(pool: &TxPool) -> (usize, usize) {
    let status = pool.status();
    (status.pending, status.queued)
}

/// The pool's content in RPC's terms.
pub fn rpc_content(pool: &TxPool) -> chain_rpc::PoolContent {
    let content = pool.content();
    let convert =
        |side: BTreeMap<Address, BTreeMap<u64, std::sync::Arc<chain_txpool::PooledTx>>>| {
            side.into_iter()
                .map(|(sender, txs)| {
                    let txs = txs
                        .into_iter()
                        .map(|(nonce, tx)| {
                            (
                                nonce,
                                chain_rpc::PoolTransaction {
                                    tx: tx.tx().clone(),
                                    sender: tx.sender(),
                                },
                            )
                        })
                        .collect();
                    (sender, txs)
                })
                .collect()
        };
    chain_rpc::PoolContent {
        pending: convert(content.pending),
        queued: convert(content.queued),
    }
}

/// Overrides the pool's per-sender and global limits from the config file.
pub fn apply_limits(
    config: &mut PoolConfig,
    max_per_sender: Option<usize>,
    max_total: Option<usize>,
) {
    if let Some(per_sender) = max_per_sender {
        config.account_slots = per_sender;
    }
    if let Some(total) = max_total {
        config.global_slots = total;
    }
}
