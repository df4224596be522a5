//! What the in-process node tests share: a dev-chain node configuration in a temporary
//! directory.

use chain_executor::ExecutionMode;
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
