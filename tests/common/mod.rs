//! What the in-process node tests share: a dev-chain node configuration in a temporary
//! directory, signed transfers, and re-sealing a tampered block.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use chain_executor::ExecutionMode;
use chain_primitives::Block;
use chaind::{
    dev::{DevOptions, dev_genesis, dev_signers},
    node::NodeConfig,
};
use std::{num::NonZeroUsize, path::Path};

/// A dev chain in `dir` with 2 execution threads and test-sized caches; the first dev account
/// is the validator when `validator` is set (otherwise the node only follows).
pub(crate) fn node_config(
    dir: &Path,
    validator: bool,
    block_time_ms: u64,
    timestamp: u64,
) -> NodeConfig {
    let signers = dev_signers().unwrap();
    let genesis = dev_genesis(
        &DevOptions {
            block_time_ms,
            gas_limit: 30_000_000,
            prefund_loadgen: 0,
            loadgen_seed: 1,
            timestamp,
        },
        &signers,
    )
    .unwrap();
    NodeConfig {
        datadir: dir.to_path_buf(),
        genesis,
        validator_key: validator.then(|| signers[0].clone()),
        execution: ExecutionMode::Parallel(NonZeroUsize::new(2).unwrap()),
        state: chain_state::StateConfig::for_tests(),
        pool: chain_txpool::PoolConfig::new(0, 0),
        dev_accounts: Vec::new(),
        client_version: "test".into(),
    }
}

/// A signed EIP-1559 transfer of `value` wei on the dev chain (21,000 gas at up to 10 gwei).
pub(crate) fn transfer(signer: &PrivateKeySigner, nonce: u64, to: Address, value: U256) -> Bytes {
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        ..Default::default()
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(signature))
        .encoded_2718()
        .into()
}

/// `block` with its seal signature redone by `proposer`, so that a test's tampering is caught
/// by execution checks rather than by the seal check.
pub(crate) fn reseal(mut block: Block, proposer: &PrivateKeySigner) -> Block {
    let hash = block.header.hash_slow();
    let signature = proposer.sign_hash_sync(&hash).unwrap();
    block.seal.signature = Bytes::from(signature.as_bytes().to_vec());
    block
}
