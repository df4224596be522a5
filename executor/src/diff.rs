//! Turning an executor's final account values into a normalized [`StateDiff`]: only real
//! changes against the committed state, in sorted order, so that the sequential and the
//! parallel executor produce byte-identical diffs for the same block.

use crate::ExecutorError;
use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use chain_primitives::{AccountUpdate, StateDiff, StateReader};
use chain_scheduler::BlockStm;
use parking_lot::Mutex;
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

/// Runs `work` over `items` split into one chunk per worker of `runner` and concatenates
/// the results in order. Without a runner, or for small inputs, it runs on the calling thread.
pub(crate) fn par_chunks<T: Send, R: Send>(
    items: Vec<T>,
    runner: Option<&BlockStm>,
    work: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R> {
    const MIN_CHUNK: usize = 256;
    let workers = runner.map_or(1, |r| r.threads().get());
    let chunks = workers.min(items.len() / MIN_CHUNK).max(1);
    let (Some(runner), true) = (runner, chunks > 1) else {
        return vec![work(items)];
    };
    let chunk_len = items.len().div_ceil(workers);
    let mut items = items.into_iter();
    let parts: Vec<Mutex<Option<Vec<T>>>> = (0..workers)
        .map(|_| Mutex::new(Some(items.by_ref().take(chunk_len).collect())))
        .collect();
    runner.broadcast(|index, _| work(parts[index].lock().take().unwrap_or_default()))
}

fn account_update<S: StateReader>(
    state: &S,
    address: &Address,
    account: FinalAccount,
) -> Result<Option<AccountUpdate>, ExecutorError> {
    let base = state.account(address).map_err(state_error)?;
    let info = account.info.unwrap_or(base);
    let mut storage = BTreeMap::new();
    if info.is_some() {
        for (slot, value) in account.storage {
            let before = if account.storage_cleared {
                U256::ZERO
            } else {
                state.storage(address, &slot).map_err(state_error)?
            };
            if value != before {
                storage.insert(slot, value);
            }
        }
    }
    let storage_cleared = account.storage_cleared || info.is_none();
    let unchanged = info == base && storage.is_empty() && (!storage_cleared || base.is_none());
    Ok((!unchanged).then_some(AccountUpdate {
        info,
        storage_cleared,
        storage,
    }))
}

/// Builds the normalized diff of a block from its final account values and deployed code,
/// comparing against the committed state on the workers of `runner`, if given.
pub(crate) fn build_diff<S: StateReader>(
    state: &S,
    accounts: Vec<(Address, FinalAccount)>,
    new_codes: &HashMap<B256, Bytes>,
    runner: Option<&BlockStm>,
) -> Result<StateDiff, ExecutorError> {
    let parts = par_chunks(accounts, runner, |chunk| {
        let mut updates = Vec::with_capacity(chunk.len());
        for (address, account) in chunk {
            if let Some(update) = account_update(state, &address, account)? {
                updates.push((address, update));
            }
        }
        Ok::<_, ExecutorError>(updates)
    });
    let mut updates = Vec::new();
    for part in parts {
        updates.extend(part?);
    }
    updates.sort_unstable_by_key(|(address, _)| *address);
    let mut diff = StateDiff::default();
    for (_, update) in &updates {
        if let Some(code_hash) = update.info.map(|i| i.code_hash)
            && let Some(code) = new_codes.get(&code_hash)
        {
            diff.codes.insert(code_hash, code.clone());
        }
    }
    diff.accounts = updates.into_iter().collect();
    Ok(diff)
}
