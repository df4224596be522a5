//! Readers of committed state behind [`chain_primitives::StateReader`]: the latest state
//! (cached, filter-guarded) and retained past states (through the history index).

use crate::StateError;
use crate::codec::{StoredAccount, decode_value};
use crate::db::Inner;
use crate::history::{account_key, slot_key};
use alloy_primitives::{Address, B256, Bytes, U256};
use chain_primitives::{Account, StateReader};
use std::sync::Arc;

/// Reads the latest committed state: from the in-memory caches, else RocksDB, with absent
/// accounts answered by the existence filter. It follows commits (it is not pinned to the block
/// current when it was made). `Clone`, `Send` and `Sync`: share it between worker threads.
#[derive(Clone)]
pub struct LatestReader {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for LatestReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestReader").finish_non_exhaustive()
    }
}

impl LatestReader {
    /// The account's storage root, `None` if the account does not exist.
    pub fn storage_root(&self, address: &Address) -> Result<Option<B256>, StateError> {
        Ok(self
            .inner
            .latest_account(address)?
            .map(|account| account.storage_root))
    }
}

impl StateReader for LatestReader {
    type Error = StateError;

    fn account(&self, address: &Address) -> Result<Option<Account>, StateError> {
        Ok(self
            .inner
            .latest_account(address)?
            .map(|account| account.info))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        self.inner.latest_storage(address, slot)
    }

    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        self.inner.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        self.inner.block_hash(number)
    }
}

/// Reads the state as it was after one retained block. A value there is the value recorded by
/// the oldest changeset after that block that touched the key (the value before that change),
/// else the current value. Reads fail with [`StateError::PrunedBlock`] or [`StateError::UnknownBlock`]
/// once the block is pruned or reverted away.
#[derive(Clone)]
pub struct HistoricalReader {
    pub(crate) inner: Arc<Inner>,
    pub(crate) number: u64,
}

impl std::fmt::Debug for HistoricalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoricalReader")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl HistoricalReader {
    /// The block whose state this reads.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The value recorded by the first change of `key` (a changeset key) after this block:
    /// the value the key had at this block. `None` if it has not changed since.
    fn recorded_before_next_change(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let filters = self.inner.history_filters.read();
        for (block, filter) in filters.range(self.number.saturating_add(1)..) {
            if filter.may_contain(key)
                && let Some(value) = self.inner.changeset_lookup(*block, key)?
            {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    fn stored_account(&self, address: &Address) -> Result<Option<StoredAccount>, StateError> {
        let inner = &self.inner;
        let _published = inner.publish_lock.read();
        inner.head.read().check_readable(self.number)?;
        match self.recorded_before_next_change(&account_key(address))? {
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => Ok(Some(StoredAccount::decode(&bytes)?)),
            None => {
                if !inner.filter.read().may_contain(address) {
                    return Ok(None);
                }
                match inner.account_cache.get(address) {
                    Some(cached) => Ok(cached),
                    None => inner.fill_account(address),
                }
            }
        }
    }

    /// The account's storage root at this block, `None` if the account did not exist.
    pub fn storage_root(&self, address: &Address) -> Result<Option<B256>, StateError> {
        Ok(self
            .stored_account(address)?
            .map(|account| account.storage_root))
    }
}

impl StateReader for HistoricalReader {
    type Error = StateError;

    fn account(&self, address: &Address) -> Result<Option<Account>, StateError> {
        Ok(self.stored_account(address)?.map(|account| account.info))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        let inner = &self.inner;
        let _published = inner.publish_lock.read();
        inner.head.read().check_readable(self.number)?;
        match self.recorded_before_next_change(&slot_key(address, slot))? {
            Some(bytes) => decode_value(&bytes),
            None => match inner.storage_cache.get(&(*address, *slot)) {
                Some(value) => Ok(value),
                None => inner.fill_storage(address, slot),
            },
        }
    }

    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        self.inner.code(code_hash)
    }

    fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        if number > self.number {
            return Ok(B256::ZERO);
        }
        self.inner.block_hash(number)
    }
}
