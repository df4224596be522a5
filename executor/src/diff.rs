//! Turning an executor's final account values into a normalized [`StateDiff`]: only real
//! changes against the committed state, in sorted order, so that the sequential and the
//! parallel executor produce byte-identical diffs for the same block.

use crate::ExecutorError;
use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use chain_primitives::{AccountUpdate, StateDiff, StateReader};
use std::collections::BTreeMap;

/// The final value of one account at the end of a block, as an executor saw it.
#[derive(Debug, Default)]
pub(crate) struct FinalAccount {
    /// `Some(info)` if the block wrote the account record (`Some(None)`: deleted).
    pub(crate) info: Option<Option<chain_primitives::Account>>,
    /// Created or deleted during the block: storage before the block is void.
    pub(crate) storage_cleared: bool,
    /// Final values of the slots the block wrote (each slot once).
    pub(crate) storage: Vec<(U256, U256)>,
}

pub(crate) fn state_error<E: std::error::Error>(error: E) -> ExecutorError {
    ExecutorError::State(error.to_string())
}

/// What slot `slot` of `address` held before the block: zero if the block voided the
/// account's storage (`storage_cleared`).
pub(crate) fn slot_before<S: StateReader>(
    state: &S,
    address: &Address,
    slot: &U256,
    storage_cleared: bool,
) -> Result<U256, ExecutorError> {
    if storage_cleared {
        Ok(U256::ZERO)
    } else {
        state.storage(address, slot).map_err(state_error)
    }
}

/// The normalized update of an account: `base` is its committed record, `written` its final
/// record if the block wrote one, `storage_cleared` whether its storage before the block is
/// void, and `changed_slots` the final values of the slots that differ from before. `None`
/// if the block left the account as it was.
pub(crate) fn normalized_update(
    base: Option<chain_primitives::Account>,
    written: Option<Option<chain_primitives::Account>>,
    storage_cleared: bool,
    changed_slots: BTreeMap<U256, U256>,
) -> Option<AccountUpdate> {
    let info = written.unwrap_or(base);
    // A deleted account keeps no storage.
    let storage = if info.is_some() {
        changed_slots
    } else {
        BTreeMap::new()
    };
    let storage_cleared = storage_cleared || info.is_none();
    let unchanged = info == base && storage.is_empty() && (!storage_cleared || base.is_none());
    (!unchanged).then_some(AccountUpdate {
        info,
        storage_cleared,
        storage,
    })
}

/// The normalized update of one account from its final value: `None` if the block left it as
/// it was.
fn account_update<S: StateReader>(
    state: &S,
    address: &Address,
    account: FinalAccount,
) -> Result<Option<AccountUpdate>, ExecutorError> {
    let base = state.account(address).map_err(state_error)?;
    let mut changed_slots = BTreeMap::new();
    if account.info.unwrap_or(base).is_some() {
        for (slot, value) in account.storage {
            if value != slot_before(state, address, &slot, account.storage_cleared)? {
                changed_slots.insert(slot, value);
            }
        }
    }
    Ok(normalized_update(
        base,
        account.info,
        account.storage_cleared,
        changed_slots,
    ))
}

/// Builds the normalized diff of a block from its final account values and deployed code,
/// comparing against the committed state.
pub(crate) fn build_diff<S: StateReader>(
    state: &S,
    accounts: Vec<(Address, FinalAccount)>,
    new_codes: &HashMap<B256, Bytes>,
) -> Result<StateDiff, ExecutorError> {
    let mut updates = Vec::with_capacity(accounts.len());
    for (address, account) in accounts {
        if let Some(update) = account_update(state, &address, account)? {
            updates.push((address, update));
        }
    }
    updates.sort_unstable_by_key(|(address, _)| *address);
    Ok(diff_from_sorted(updates, new_codes))
}

/// The diff of account updates sorted by address, with the code of the accounts that carry
/// deployed code.
pub(crate) fn diff_from_sorted(
    updates: Vec<(Address, AccountUpdate)>,
    new_codes: &HashMap<B256, Bytes>,
) -> StateDiff {
    let mut diff = StateDiff::default();
    if !new_codes.is_empty() {
        for (_, update) in &updates {
            if let Some(code_hash) = update.info.map(|i| i.code_hash)
                && let Some(code) = new_codes.get(&code_hash)
            {
                diff.codes.insert(code_hash, code.clone());
            }
        }
    }
    diff.accounts = updates.into_iter().collect();
    diff
}
