//! Block execution for chaind: runs a block's EVM transactions on revm, either one after
//! another ([`execute_sequential`], the reference) or in parallel through Block-STM
//! ([`execute_parallel`]), with the same result byte for byte: receipts, gas, logs and the
//! [`StateDiff`](chain_primitives::StateDiff) that the state commits.
//!
//! The executor reads committed state only through
//! [`StateReader`], so it never links the storage engine and
//! tests run it over [`InMemoryState`](chain_primitives::InMemoryState). [`Executor`] is the
//! entry point the node uses; [`workload`] generates the benchmark and test blocks.
//!
//! Transactions arrive with their senders recovered (`revm`'s [`TxEnv`]); signature recovery
//! is the transaction pool's job, done once per transaction and off this path.

/// Simulation without commit (`eth_call`, `eth_estimateGas`) and state overrides.
pub mod call;
/// Per-hash cache of analysed contract code.
pub mod code_cache;
mod diff;
/// Block environment and fork rules.
pub mod env;
/// Errors of this crate.
pub mod error;
mod evm;
/// Receipts and block outputs.
pub mod outcome;
/// The parallel executor.
pub mod parallel;
/// The sequential reference executor.
pub mod sequential;
/// Conversion of signed transactions to revm's input.
pub mod tx;
/// Deterministic benchmark and test workloads.
pub mod workload;

pub use call::{AccountOverride, OverriddenState, SimulationOptions, SimulationOutcome, simulate};
pub use chain_scheduler::TxnIndex;
pub use code_cache::CodeCache;
pub use env::{BlockEnv, DEFAULT_SPEC, ExecutionEnv};
pub use error::ExecutorError;
pub use outcome::{BlockOutput, SkipReason, TxOutcome, TxReceipt, TxStatus, logs_bloom};
pub use parallel::{ParallelStats, execute_parallel};
pub use revm::{self, context::TxEnv, primitives::hardfork::SpecId};
pub use sequential::execute_sequential;
pub use tx::{effective_gas_price, tx_env};

pub use chain_scheduler::BlockStm;

use chain_primitives::StateReader;
use std::{num::NonZeroUsize, sync::Arc};

/// How blocks are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionMode {
    /// One transaction after another.
    Sequential,
    /// Block-STM on this many worker threads.
    Parallel(NonZeroUsize),
}

/// The block executor of a node: an execution mode and the code cache kept across blocks.
#[derive(Clone, Debug)]
pub struct Executor {
    mode: ExecutionMode,
    codes: Arc<CodeCache>,
    runner: Option<Arc<BlockStm>>,
}

impl Executor {
    /// An executor in `mode`.
    pub fn new(mode: ExecutionMode) -> Self {
        let runner = match mode {
            ExecutionMode::Sequential => None,
            ExecutionMode::Parallel(threads) => Some(Arc::new(BlockStm::new(threads))),
        };
        Self {
            mode,
            codes: Arc::new(CodeCache::default()),
            runner,
        }
    }

    /// A parallel executor on `threads` workers (one worker still runs Block-STM; use
    /// [`ExecutionMode::Sequential`] for the reference executor).
    pub fn parallel(threads: usize) -> Result<Self, ExecutorError> {
        let threads = NonZeroUsize::new(threads).ok_or(ExecutorError::ZeroThreads)?;
        Ok(Self::new(ExecutionMode::Parallel(threads)))
    }

    /// The execution mode.
    pub fn mode(&self) -> ExecutionMode {
        self.mode
    }

    /// The analysed-code cache shared by every block this executor runs.
    pub fn code_cache(&self) -> Arc<CodeCache> {
        self.codes.clone()
    }

    /// Executes `txs` over `state` (the state at the parent block).
    pub fn execute<S: StateReader>(
        &self,
        state: &S,
        env: &ExecutionEnv,
        txs: &[TxEnv],
    ) -> Result<(BlockOutput, Option<ParallelStats>), ExecutorError> {
        match &self.runner {
            None => Ok((execute_sequential(state, env, txs, &self.codes)?, None)),
            Some(runner) => {
                let (output, stats) = execute_parallel(state, env, txs, &self.codes, runner)?;
                Ok((output, Some(stats)))
            }
        }
    }
}
