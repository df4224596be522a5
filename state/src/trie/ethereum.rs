//! Ethereum's use of the trie: secure (keccak-hashed) keys, account and storage leaf values,
//! and from-scratch state roots.

use super::builder::build_root;
use crate::trie::EMPTY_ROOT_HASH;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_rlp::Encodable;
use chain_primitives::{Account, InMemoryState};
use rayon::prelude::*;

/// The secure-trie key of a byte string: its keccak256.
pub fn hashed_key(key: &[u8]) -> B256 {
    keccak256(key)
}

/// The account trie's leaf value: RLP([nonce, balance, storageRoot, codeHash]).
pub fn account_rlp(account: &Account, storage_root: B256) -> Vec<u8> {
    let payload = account.nonce.length()
        + account.balance.length()
        + storage_root.length()
        + account.code_hash.length();
    let mut out = Vec::with_capacity(payload + 2);
    alloy_rlp::Header {
        list: true,
        payload_length: payload,
    }
    .encode(&mut out);
    account.nonce.encode(&mut out);
    account.balance.encode(&mut out);
    storage_root.encode(&mut out);
    account.code_hash.encode(&mut out);
    out
}

/// A storage trie's leaf value: RLP of the slot value with leading zeros trimmed.
pub fn storage_value_rlp(value: U256) -> Vec<u8> {
    alloy_rlp::encode(value)
}

/// Root of a secure trie (keys hashed with keccak256) over raw `(key, value)` pairs; later
/// duplicates of a key win, empty values are absent.
pub fn secure_root<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = entries
        .into_iter()
        .map(|(k, v)| (keccak256(k.as_ref()), v.as_ref().to_vec()))
        .collect();
    sorted_unique(&mut leaves);
    leaves.retain(|(_, v)| !v.is_empty());
    build_root(&leaves, None)
}

/// Root of a storage trie holding `slots` (slot, value); zero values are absent.
pub fn storage_root(slots: impl IntoIterator<Item = (U256, U256)>) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = slots
        .into_iter()
        .filter(|(_, value)| !value.is_zero())
        .map(|(slot, value)| {
            (
                keccak256(slot.to_be_bytes::<32>()),
                storage_value_rlp(value),
            )
        })
        .collect();
    sorted_unique(&mut leaves);
    build_root(&leaves, None)
}

/// State root over `(address, account, storage root)` triples.
pub fn state_root(accounts: impl IntoIterator<Item = (Address, Account, B256)>) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = accounts
        .into_iter()
        .map(|(address, account, storage)| (keccak256(address), account_rlp(&account, storage)))
        .collect();
    sorted_unique(&mut leaves);
    build_root(&leaves, None)
}

/// The Ethereum state root of an in-memory state, computed from scratch.
pub fn state_root_of(state: &InMemoryState) -> B256 {
    let accounts: Vec<_> = state.accounts().iter().collect();
    let leaves: Vec<(Address, Account, B256)> = accounts
        .par_iter()
        .map(|(address, account)| {
            let root = if account.storage.is_empty() {
                EMPTY_ROOT_HASH
            } else {
                storage_root(account.storage.iter().map(|(k, v)| (*k, *v)))
            };
            (**address, account.info, root)
        })
        .collect();
    state_root(leaves)
}

/// Sorts by key; of equal keys, the last in input order stays.
fn sorted_unique(leaves: &mut Vec<(B256, Vec<u8>)>) {
    leaves.reverse();
    leaves.sort_by_key(|leaf| leaf.0);
    leaves.dedup_by(|later, earlier| later.0 == earlier.0);
}
