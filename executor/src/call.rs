//! Simulation of one transaction over a state without committing it: what `eth_call` and
//! `eth_estimateGas` run.

use crate::{
    CodeCache, ExecutionEnv, ExecutorError, TxStatus,
    evm::{FeePayment, transact},
    outcome::SkipReason,
};
use alloy_primitives::{Bytes, Log};
use chain_primitives::StateReader;
use revm::context::{TxEnv, result::ExecutionResult};

/// How a simulation relaxes the rules of block execution (as geth's `eth_call` does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimulationOptions {
    /// Do not require the sender's nonce to match.
    pub skip_nonce_check: bool,
    /// Do not charge for gas (a call without a gas price), and do not require the balance.
    pub skip_fee_charge: bool,
    /// Accept a fee cap below the block's base fee (a call without fee fields).
    pub skip_base_fee_check: bool,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        Self {
            skip_nonce_check: true,
            skip_fee_charge: true,
            skip_base_fee_check: true,
        }
    }
}

/// The result of a simulated transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimulationOutcome {
    /// It ran: success, revert or halt, with its gas and output.
    Executed {
        /// How it ended.
        status: TxStatus,
        /// Gas used (after refunds).
        gas_used: u64,
        /// Return data, or revert data.
        output: Bytes,
        /// Logs (empty unless successful).
        logs: Vec<Log>,
        /// The halt reason, for a halt.
        halt_reason: Option<String>,
    },
    /// It could not be included (the same checks as block execution, minus the relaxed ones).
    Invalid(SkipReason),
}

/// Simulates `tx` on top of `state` under `env`, relaxing the rules per `options`.
pub fn simulate<S: StateReader>(
    state: &S,
    env: &ExecutionEnv,
    tx: TxEnv,
    options: SimulationOptions,
    codes: &CodeCache,
) -> Result<SimulationOutcome, ExecutorError> {
    let mut env = env.clone();
    let cfg = env.cfg_mut();
    cfg.disable_nonce_check = options.skip_nonce_check;
    cfg.disable_fee_charge = options.skip_fee_charge;
    cfg.disable_balance_check = options.skip_fee_charge;
    cfg.disable_base_fee = options.skip_base_fee_check;
    cfg.disable_block_gas_limit = true;
    let mut overlay = crate::sequential::overlay(state, codes);
    match transact(&env, &mut overlay, tx, FeePayment::ByEvm) {
        Ok((result, _)) => {
            let gas_used = result.tx_gas_used();
            Ok(match result {
                ExecutionResult::Success { logs, output, .. } => SimulationOutcome::Executed {
                    status: TxStatus::Success,
                    gas_used,
                    output: output.into_data(),
                    logs,
                    halt_reason: None,
                },
                ExecutionResult::Revert { output, .. } => SimulationOutcome::Executed {
                    status: TxStatus::Revert,
                    gas_used,
                    output,
                    logs: Vec::new(),
                    halt_reason: None,
                },
                ExecutionResult::Halt { reason, .. } => SimulationOutcome::Executed {
                    status: TxStatus::Halt,
                    gas_used,
                    output: Bytes::new(),
                    logs: Vec::new(),
                    halt_reason: Some(format!("{reason:?}")),
                },
            })
        }
        Err(error) => match crate::evm::skip_reason(&error) {
            Some(reason) => Ok(SimulationOutcome::Invalid(reason)),
            None => Err(ExecutorError::Evm {
                txn_idx: 0,
                message: error.to_string(),
            }),
        },
    }
}

/// Per-account overrides of `eth_call`'s third parameter.
#[derive(Clone, Debug, Default)]
pub struct AccountOverride {
    /// Replacement balance.
    pub balance: Option<alloy_primitives::U256>,
    /// Replacement nonce.
    pub nonce: Option<u64>,
    /// Replacement code.
    pub code: Option<Bytes>,
    /// Replace the whole storage with these slots (geth's `state`).
    pub state:
        Option<alloy_primitives::map::HashMap<alloy_primitives::U256, alloy_primitives::U256>>,
    /// Patch these slots (geth's `stateDiff`).
    pub state_diff: alloy_primitives::map::HashMap<alloy_primitives::U256, alloy_primitives::U256>,
}

/// A state with `eth_call` overrides on top of a base state.
#[derive(Debug)]
pub struct OverriddenState<'a, S> {
    base: &'a S,
    accounts: alloy_primitives::map::HashMap<alloy_primitives::Address, AccountOverride>,
    codes: alloy_primitives::map::HashMap<alloy_primitives::B256, Bytes>,
}

impl<'a, S: StateReader> OverriddenState<'a, S> {
    /// `base` with `overrides` applied.
    pub fn new(
        base: &'a S,
        overrides: alloy_primitives::map::HashMap<alloy_primitives::Address, AccountOverride>,
    ) -> Self {
        let codes = overrides
            .values()
            .filter_map(|o| o.code.clone())
            .map(|code| (alloy_primitives::keccak256(&code), code))
            .collect();
        Self {
            base,
            accounts: overrides,
            codes,
        }
    }
}

impl<S: StateReader> StateReader for OverriddenState<'_, S> {
    type Error = S::Error;

    fn account(
        &self,
        address: &alloy_primitives::Address,
    ) -> Result<Option<chain_primitives::Account>, Self::Error> {
        let base = self.base.account(address)?;
        let Some(o) = self.accounts.get(address) else {
            return Ok(base);
        };
        let mut account = base.unwrap_or_default();
        if let Some(balance) = o.balance {
            account.balance = balance;
        }
        if let Some(nonce) = o.nonce {
            account.nonce = nonce;
        }
        if let Some(code) = &o.code {
            account.code_hash = if code.is_empty() {
                chain_primitives::KECCAK_EMPTY
            } else {
                alloy_primitives::keccak256(code)
            };
        }
        Ok(Some(account))
    }

    fn storage(
        &self,
        address: &alloy_primitives::Address,
        slot: &alloy_primitives::U256,
    ) -> Result<alloy_primitives::U256, Self::Error> {
        if let Some(o) = self.accounts.get(address) {
            if let Some(state) = &o.state {
                return Ok(state.get(slot).copied().unwrap_or_default());
            }
            if let Some(value) = o.state_diff.get(slot) {
                return Ok(*value);
            }
        }
        self.base.storage(address, slot)
    }

    fn code(&self, code_hash: &alloy_primitives::B256) -> Result<Option<Bytes>, Self::Error> {
        match self.codes.get(code_hash) {
            Some(code) => Ok(Some(code.clone())),
            None => self.base.code(code_hash),
        }
    }

    fn block_hash(&self, number: u64) -> Result<alloy_primitives::B256, Self::Error> {
        self.base.block_hash(number)
    }
}
