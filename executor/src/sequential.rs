//! The reference executor: one transaction after another on plain revm, which pays the
//! beneficiary itself. The parallel executor must produce exactly its output.

use crate::{
    CodeCache, ExecutionEnv, ExecutorError,
    diff::{FinalAccount, build_diff},
    evm::{FeePayment, account_effect, block_evm, info_from_account, receipt, run_tx, skip_reason},
    outcome::{BlockOutput, SkipReason, TxOutcome},
};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, map::HashMap};
use chain_primitives::{Account, StateReader};
use revm::{
    context::{DBErrorMarker, TxEnv},
    state::{AccountInfo, Bytecode, EvmState},
};

/// A state read failure, carried through revm.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StateReadError(pub(crate) String);

impl DBErrorMarker for StateReadError {}

/// What the block wrote to one account so far.
#[derive(Debug, Default)]
struct OverlayAccount {
    /// `Some(info)` once the block wrote the account record (`Some(None)`: deleted).
    info: Option<Option<Account>>,
    /// Created or deleted during the block: storage before the block is void.
    storage_cleared: bool,
    /// Slots written.
    storage: HashMap<U256, U256>,
}

/// The block's writes so far over the committed state.
pub(crate) struct Overlay<'a, S> {
    base: &'a S,
    codes: &'a CodeCache,
    accounts: HashMap<Address, OverlayAccount>,
    new_codes: HashMap<B256, Bytes>,
    new_bytecode: HashMap<B256, Bytecode>,
}

impl<S: StateReader> Overlay<'_, S> {
    fn account(&self, address: &Address) -> Result<Option<Account>, StateReadError> {
        match self.accounts.get(address).and_then(|a| a.info) {
            Some(info) => Ok(info),
            None => self
                .base
                .account(address)
                .map_err(|e| StateReadError(e.to_string())),
        }
    }

    fn code(&self, hash: B256) -> Result<Option<Bytecode>, StateReadError> {
        if let Some(code) = self.new_bytecode.get(&hash) {
            return Ok(Some(code.clone()));
        }
        self.codes
            .get_or_load(hash, || self.base.code(&hash))
            .map_err(|e| StateReadError(e.to_string()))
    }

    fn commit(&mut self, state: EvmState) {
        for (address, account) in state {
            let Some(effect) = account_effect(&account) else {
                continue;
            };
            let entry = self.accounts.entry(address).or_default();
            if effect.storage_cleared {
                entry.storage_cleared = true;
                entry.storage.clear();
            }
            if effect.info.is_some() {
                for (slot, value) in account.changed_storage_slots() {
                    entry.storage.insert(*slot, value.present_value);
                }
            }
            entry.info = Some(effect.info);
            if let Some((hash, code)) = effect.new_code {
                self.new_codes.insert(hash, code.original_bytes());
                self.new_bytecode.insert(hash, code);
            }
        }
    }
}

impl<S: StateReader> revm::Database for &mut Overlay<'_, S> {
    type Error = StateReadError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let Some(account) = self.account(&address)? else {
            return Ok(None);
        };
        let code = if account.has_code() {
            self.code(account.code_hash)?
        } else {
            None
        };
        Ok(Some(info_from_account(account, code)))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.code(code_hash)?.unwrap_or_default())
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        if let Some(account) = self.accounts.get(&address) {
            if let Some(value) = account.storage.get(&index) {
                return Ok(*value);
            }
            if account.storage_cleared {
                return Ok(U256::ZERO);
            }
        }
        self.base
            .storage(&address, &index)
            .map_err(|e| StateReadError(e.to_string()))
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.base
            .block_hash(number)
            .map_err(|e| StateReadError(e.to_string()))
    }
}

/// An empty overlay over `state`, for simulations that must not commit.
pub(crate) fn overlay<'a, S: StateReader>(state: &'a S, codes: &'a CodeCache) -> Overlay<'a, S> {
    Overlay {
        base: state,
        codes,
        accounts: HashMap::default(),
        new_codes: HashMap::default(),
        new_bytecode: HashMap::default(),
    }
}

/// Executes `txs` one after another over `state` (the state at the parent block).
pub fn execute_sequential<S: StateReader>(
    state: &S,
    env: &ExecutionEnv,
    txs: &[TxEnv],
    codes: &CodeCache,
) -> Result<BlockOutput, ExecutorError> {
    let mut overlay = Overlay {
        base: state,
        codes,
        accounts: HashMap::default(),
        new_codes: HashMap::default(),
        new_bytecode: HashMap::default(),
    };
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut gas_used = 0u64;
    let mut bloom = Bloom::ZERO;
    let mut evm = block_evm(env, &mut overlay);
    for (txn_idx, tx) in txs.iter().enumerate() {
        let remaining = env.block.gas_limit.saturating_sub(gas_used);
        if tx.gas_limit > remaining {
            outcomes.push(TxOutcome::Skipped(SkipReason::BlockGasExhausted {
                gas_limit: tx.gas_limit,
                remaining,
            }));
            continue;
        }
        match run_tx(&mut evm, tx.clone(), FeePayment::ByEvm) {
            Ok((result, evm_state)) => {
                evm.ctx.journaled_state.database.commit(evm_state);
                let mut receipt = receipt(env, tx, result);
                gas_used += receipt.gas_used;
                receipt.cumulative_gas_used = gas_used;
                bloom |= receipt.logs_bloom;
                outcomes.push(TxOutcome::Included(receipt));
            }
            Err(error) => match skip_reason(&error) {
                Some(reason) => outcomes.push(TxOutcome::Skipped(reason)),
                None => {
                    if let revm::context::result::EVMError::Database(e) = &error {
                        return Err(ExecutorError::State(e.0.clone()));
                    }
                    return Err(ExecutorError::Evm {
                        txn_idx,
                        message: error.to_string(),
                    });
                }
            },
        }
    }
    drop(evm);
    let Overlay {
        accounts,
        new_codes,
        ..
    } = overlay;
    let accounts = accounts
        .into_iter()
        .map(|(address, a)| {
            let storage = a.storage.into_iter().collect();
            (
                address,
                FinalAccount {
                    info: a.info,
                    storage_cleared: a.storage_cleared,
                    storage,
                },
            )
        })
        .collect();
    let diff = build_diff(state, accounts, &new_codes)?;
    Ok(BlockOutput {
        outcomes,
        gas_used,
        logs_bloom: bloom,
        diff,
    })
}
