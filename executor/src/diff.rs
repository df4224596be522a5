//! Turning an executor's final account values into a normalized [`StateDiff`]: only real
//! changes against the committed state, in sorted order, so that the sequential and the
//! parallel executor produce byte-identical diffs for the same block.

use crate::ExecutorError;
use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use chain_primitives::{Account, AccountUpdate, StateDiff, StateReader};
use std::collections::BTreeMap;

/// The final value of one account at the end of a block, as an executor saw it.
#[derive(Debug, Default)]
pub(crate) struct FinalAccount {
    /// `Some(info)` if the block wrote the account record (`Some(None)`: deleted).
    pub(crate) info: Option<Option<Account>>,
    /// Created or deleted during the block: storage before the block is void.
    pub(crate) storage_cleared: bool,
    /// Final values of the slots the block wrote.
    pub(crate) storage: HashMap<U256, U256>,
}

pub(crate) fn state_error<E: std::error::Error>(error: E) -> ExecutorError {
    ExecutorError::State(error.to_string())
}

/// Builds the normalized diff of a block from its final account values and deployed code.
pub(crate) fn build_diff<S: StateReader>(
    state: &S,
    accounts: HashMap<Address, FinalAccount>,
    new_codes: &HashMap<B256, Bytes>,
) -> Result<StateDiff, ExecutorError> {
    let mut diff = StateDiff::default();
    for (address, account) in accounts {
        let base = state.account(&address).map_err(state_error)?;
        let info = account.info.unwrap_or(base);
        let mut storage = BTreeMap::new();
        if info.is_some() {
            for (slot, value) in account.storage {
                let before = if account.storage_cleared {
                    U256::ZERO
                } else {
                    state.storage(&address, &slot).map_err(state_error)?
                };
                if value != before {
                    storage.insert(slot, value);
                }
            }
        }
        let storage_cleared = account.storage_cleared || info.is_none();
        let unchanged = info == base && storage.is_empty() && (!storage_cleared || base.is_none());
        if unchanged {
            continue;
        }
        if let Some(code_hash) = info.map(|i| i.code_hash) {
            if let Some(code) = new_codes.get(&code_hash) {
                diff.codes.insert(code_hash, code.clone());
            }
        }
        diff.accounts.insert(address, AccountUpdate { info, storage_cleared, storage });
    }
    Ok(diff)
}
