use alloy_primitives::{Address, B256, U256};
use revm::{
    context::{BlockEnv as RevmBlockEnv, CfgEnv},
    primitives::hardfork::SpecId,
};
use serde::{Deserialize, Serialize};

/// The fork rules blocks execute under: the latest mainnet fork revm implements.
pub const DEFAULT_SPEC: SpecId = SpecId::OSAKA;

/// The block-level inputs of execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEnv {
    /// Block number.
    pub number: u64,
    /// Unix time in seconds.
    pub timestamp: u64,
    /// EIP-1559 base fee per gas, in wei.
    pub base_fee: u64,
    /// Randomness for PREVRANDAO (the header's mixHash).
    pub prevrandao: B256,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Receives the priority fees.
    pub beneficiary: Address,
    /// Chain id (EIP-155).
    pub chain_id: u64,
}

impl Default for BlockEnv {
    fn default() -> Self {
        Self {
            number: 1,
            timestamp: 1,
            base_fee: 1_000_000_000,
            prevrandao: B256::ZERO,
            gas_limit: 30_000_000,
            beneficiary: Address::ZERO,
            chain_id: 31337,
        }
    }
}

/// A [`BlockEnv`] turned into revm's configuration, built once per block.
#[derive(Clone, Debug)]
pub struct ExecutionEnv {
    /// Our block inputs.
    pub block: BlockEnv,
    /// Fork rules.
    pub spec: SpecId,
    pub(crate) revm_block: RevmBlockEnv,
    pub(crate) cfg: CfgEnv,
}

impl ExecutionEnv {
    /// Execution under the latest mainnet rules ([`DEFAULT_SPEC`]).
    pub fn new(block: BlockEnv) -> Self {
        Self::with_spec(block, DEFAULT_SPEC)
    }

    /// Execution under the rules of `spec` (the statetest runner runs older forks).
    pub fn with_spec(block: BlockEnv, spec: SpecId) -> Self {
        let revm_block = RevmBlockEnv {
            number: U256::from(block.number),
            beneficiary: block.beneficiary,
            timestamp: U256::from(block.timestamp),
            gas_limit: block.gas_limit,
            basefee: block.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(block.prevrandao),
            ..RevmBlockEnv::default()
        };
        let mut cfg = CfgEnv::new_with_spec(spec);
        cfg.chain_id = block.chain_id;
        Self {
            block,
            spec,
            revm_block,
            cfg,
        }
    }

    /// Replaces revm's block environment (the statetest runner sets fields such as difficulty
    /// and excess blob gas that a chaind block does not have).
    pub fn set_revm_block(&mut self, revm_block: RevmBlockEnv) {
        self.revm_block = revm_block;
    }

    /// Mutable access to revm's configuration.
    pub fn cfg_mut(&mut self) -> &mut CfgEnv {
        &mut self.cfg
    }
}
