use crate::{Account, AccountUpdate, StateDiff, StateReader};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap};
use std::convert::Infallible;

/// One account of [`InMemoryState`]: its record and its storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryAccount {
    /// Nonce, balance, code hash.
    pub info: Account,
    /// Non-zero storage slots.
    pub storage: HashMap<U256, U256>,
}

/// A whole world state in hash maps. The reference [`StateReader`] for tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct InMemoryState {
    accounts: HashMap<Address, MemoryAccount>,
    codes: HashMap<B256, Bytes>,
    block_hashes: HashMap<u64, B256>,
}

impl InMemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces an account with the given record and no storage.
    pub fn insert_account(&mut self, address: Address, info: Account) {
        self.accounts.entry(address).or_default().info = info;
    }

    /// Deploys `code` at `address` (creating the account if needed) and returns its hash.
    pub fn insert_code(&mut self, address: Address, code: Bytes) -> B256 {
        let hash = keccak256(&code);
        self.codes.insert(hash, code);
        self.accounts.entry(address).or_default().info.code_hash = hash;
        hash
    }

    /// Sets a storage slot (creating the account if needed); zero removes it.
    pub fn insert_storage(&mut self, address: Address, slot: U256, value: U256) {
        let storage = &mut self.accounts.entry(address).or_default().storage;
        if value.is_zero() {
            storage.remove(&slot);
        } else {
            storage.insert(slot, value);
        }
    }

    /// Records the hash of block `number` for BLOCKHASH.
    pub fn insert_block_hash(&mut self, number: u64, hash: B256) {
        self.block_hashes.insert(number, hash);
    }

    /// All accounts.
    pub fn accounts(&self) -> &HashMap<Address, MemoryAccount> {
        &self.accounts
    }

    /// All contract code, by hash.
    pub fn codes(&self) -> &HashMap<B256, Bytes> {
        &self.codes
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Applies a block's diff.
    pub fn apply(&mut self, diff: &StateDiff) {
        for (hash, code) in &diff.codes {
            self.codes.insert(*hash, code.clone());
        }
        for (address, update) in &diff.accounts {
            self.apply_account(*address, update);
        }
    }

    fn apply_account(&mut self, address: Address, update: &AccountUpdate) {
        let Some(info) = update.info else {
            self.accounts.remove(&address);
            return;
        };
        let account = self.accounts.entry(address).or_default();
        account.info = info;
        if update.storage_cleared {
            account.storage.clear();
        }
        for (slot, value) in &update.storage {
            if value.is_zero() {
                account.storage.remove(slot);
            } else {
                account.storage.insert(*slot, *value);
            }
        }
    }
}

impl StateReader for InMemoryState {
    type Error = Infallible;

    fn account(&self, address: &Address) -> Result<Option<Account>, Self::Error> {
        Ok(self.accounts.get(address).map(|a| a.info))
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, Self::Error> {
        Ok(self
            .accounts
            .get(address)
            .and_then(|a| a.storage.get(slot).copied())
            .unwrap_or_default())
    }

    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, Self::Error> {
        Ok(self.codes.get(code_hash).cloned())
    }

    fn block_hash(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_diff_deletes_and_clears() {
        let a = Address::repeat_byte(1);
        let mut state = InMemoryState::new();
        state.insert_account(a, Account::with_balance(U256::from(5)));
        state.insert_storage(a, U256::from(1), U256::from(7));

        let mut diff = StateDiff::default();
        diff.accounts.insert(
            a,
            AccountUpdate {
                info: Some(Account::with_balance(U256::from(9))),
                storage_cleared: true,
                storage: [(U256::from(2), U256::from(3))].into_iter().collect(),
            },
        );
        state.apply(&diff);
        assert_eq!(state.account(&a).unwrap().unwrap().balance, U256::from(9));
        assert_eq!(state.storage(&a, &U256::from(1)).unwrap(), U256::ZERO);
        assert_eq!(state.storage(&a, &U256::from(2)).unwrap(), U256::from(3));

        diff.accounts.get_mut(&a).unwrap().info = None;
        state.apply(&diff);
        assert_eq!(state.account(&a).unwrap(), None);
        assert_eq!(state.storage(&a, &U256::from(2)).unwrap(), U256::ZERO);
    }
}
