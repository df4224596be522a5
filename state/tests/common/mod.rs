//! Helpers shared by the integration tests: random block diffs over a reference model, and
//! alloy-trie as an independent root oracle.
#![allow(dead_code, unreachable_pub)]

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use chain_primitives::{Account, AccountUpdate, InMemoryState, StateDiff, StateReader};
use rand::Rng;
use std::collections::BTreeMap;

/// The state root of `state` computed by alloy-trie's `HashBuilder` over sorted leaves.
pub fn alloy_root(state: &InMemoryState) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = state
        .accounts()
        .iter()
        .map(|(address, account)| {
            let mut slots: Vec<(B256, U256)> = account
                .storage
                .iter()
                .map(|(slot, value)| (keccak256(slot.to_be_bytes::<32>()), *value))
                .collect();
            slots.sort_unstable();
            let mut storage = HashBuilder::default();
            for (key, value) in slots {
                storage.add_leaf(Nibbles::unpack(key), &alloy_rlp::encode(value));
            }
            let trie_account = TrieAccount::new(
                account.info.nonce,
                account.info.balance,
                storage.root(),
                account.info.code_hash,
            );
            (keccak256(address), alloy_rlp::encode(trie_account))
        })
        .collect();
    leaves.sort_unstable();
    let mut builder = HashBuilder::default();
    for (key, value) in leaves {
        builder.add_leaf(Nibbles::unpack(key), &value);
    }
    builder.root()
}

/// Address number `i` of a test pool.
pub fn address(i: u64) -> Address {
    Address::left_padding_from(&(i + 1).to_be_bytes())
}

/// Shape of the random blocks.
#[derive(Clone, Copy, Debug)]
pub struct BlockShape {
    /// Addresses are drawn from this many.
    pub accounts: u64,
    /// Accounts touched per block (at most).
    pub touched: usize,
    /// Slots are drawn from this many per account.
    pub slots: u64,
    /// Slot writes per touched account (at most).
    pub writes: usize,
}

impl Default for BlockShape {
    fn default() -> Self {
        Self {
            accounts: 60,
            touched: 12,
            slots: 12,
            writes: 5,
        }
    }
}

/// A random block diff over the model: updates, creations with cleared storage, deletions,
/// slot writes (zero deletes), code deployments. Applies it to `model` and returns it.
pub fn random_block(rng: &mut impl Rng, model: &mut InMemoryState, shape: BlockShape) -> StateDiff {
    let mut diff = StateDiff::default();
    for _ in 0..rng.random_range(1..=shape.touched) {
        let address = address(rng.random_range(0..shape.accounts));
        let existing = model.account(&address).expect("infallible");
        let roll: u32 = rng.random_range(0..100);
        let update = if roll < 8 && existing.is_some() {
            AccountUpdate {
                info: None,
                storage_cleared: true,
                storage: BTreeMap::new(),
            }
        } else {
            let mut info = existing.unwrap_or_default();
            info.nonce += 1;
            info.balance = U256::from(rng.random::<u64>());
            let storage_cleared = roll < 14;
            if roll < 18 {
                let code = Bytes::from(vec![0x60, rng.random(), 0x00]);
                let hash = keccak256(&code);
                diff.codes.insert(hash, code);
                info.code_hash = hash;
            }
            let mut storage = BTreeMap::new();
            for _ in 0..rng.random_range(0..=shape.writes) {
                let slot = U256::from(rng.random_range(0..shape.slots));
                let value = if rng.random_bool(0.25) {
                    U256::ZERO
                } else {
                    U256::from(rng.random::<u32>()) + U256::from(1)
                };
                storage.insert(slot, value);
            }
            AccountUpdate {
                info: Some(info),
                storage_cleared,
                storage,
            }
        };
        diff.accounts.insert(address, update);
    }
    model.apply(&diff);
    diff
}

/// Checks that `reader` answers exactly like `model` for every account and slot of the pool.
pub fn assert_same_state<R: StateReader>(
    reader: &R,
    model: &InMemoryState,
    shape: BlockShape,
    context: &str,
) where
    R::Error: std::fmt::Debug,
{
    for i in 0..shape.accounts + 3 {
        let address = address(i);
        assert_eq!(
            reader.account(&address).unwrap(),
            model.account(&address).unwrap(),
            "{context}: account {address}"
        );
        for slot in 0..shape.slots {
            let slot = U256::from(slot);
            assert_eq!(
                reader.storage(&address, &slot).unwrap(),
                model.storage(&address, &slot).unwrap(),
                "{context}: {address} slot {slot}"
            );
        }
    }
}

/// An account with `balance` and no code.
pub fn funded(balance: u64) -> Account {
    Account::with_balance(U256::from(balance))
}

/// Storage-trie nodes a database with small-storage bound `bound` must hold for `state`: the
/// nodes of every storage trie of more than `bound` slots, none of the others.
pub fn expected_storage_trie_nodes(state: &InMemoryState, bound: usize) -> u64 {
    state
        .accounts()
        .values()
        .filter(|account| account.storage.len() > bound)
        .map(|account| {
            let mut leaves: Vec<(B256, Vec<u8>)> = account
                .storage
                .iter()
                .map(|(slot, value)| {
                    (
                        keccak256(slot.to_be_bytes::<32>()),
                        alloy_rlp::encode(value),
                    )
                })
                .collect();
            leaves.sort_unstable();
            let nodes = std::sync::atomic::AtomicU64::new(0);
            let count = |_: &[u8], _: &[u8]| {
                nodes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            chain_state::trie::build_root(&leaves, Some(&count));
            nodes.into_inner()
        })
        .sum()
}
