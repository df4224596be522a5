use crate::Account;
use alloy_primitives::{Address, B256, Bytes, U256, map::HashMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one block changed in one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// The account after the block; `None` if the block deleted it (EIP-161 or self-destruct).
    pub info: Option<Account>,
    /// Whether the account's storage before this block is void: the account was deleted or
    /// (re)created. Slots in [`AccountUpdate::storage`] apply on top of an empty storage then.
    pub storage_cleared: bool,
    /// Storage slots written, with their new values (zero deletes the slot).
    pub storage: BTreeMap<U256, U256>,
}

/// The effect of a block on the state: changed accounts and new code.
///
/// Accounts and slots are in sorted order so that two diffs of the same effect compare and
/// serialize equal, whichever executor produced them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDiff {
    /// Changed accounts.
    pub accounts: BTreeMap<Address, AccountUpdate>,
    /// Code deployed by the block, by hash.
    pub codes: BTreeMap<B256, Bytes>,
}

impl StateDiff {
    /// Number of storage slots written.
    pub fn storage_slots(&self) -> usize {
        self.accounts.values().map(|a| a.storage.len()).sum()
    }

    /// Applies `later` on top of `self`, as if both blocks' effects were one.
    pub fn extend(&mut self, later: StateDiff) {
        for (address, update) in later.accounts {
            let entry = self.accounts.entry(address).or_default();
            if update.storage_cleared {
                entry.storage.clear();
                entry.storage_cleared = true;
            }
            entry.storage.extend(update.storage);
            entry.info = update.info;
        }
        self.codes.extend(later.codes);
    }

    /// Builds a diff from unordered maps.
    pub fn from_maps(
        accounts: HashMap<Address, AccountUpdate>,
        codes: HashMap<B256, Bytes>,
    ) -> Self {
        Self {
            accounts: accounts.into_iter().collect(),
            codes: codes.into_iter().collect(),
        }
    }
}
