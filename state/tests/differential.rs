//! Differential property tests against alloy-trie's `HashBuilder`: random account/storage sets
//! and random update/delete sequences, committed block by block through `StateDb`, and random
//! raw key sets through the in-memory trie.

mod common;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::{HashBuilder, Nibbles};
use chain_primitives::{Account, AccountUpdate, InMemoryState, KECCAK_EMPTY, StateDiff};
use chain_state::trie::MemoryTrie;
use chain_state::{StateConfig, StateDb};
use common::{alloy_root, expected_storage_trie_nodes};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// What a block does to one account of the pool.
#[derive(Clone, Debug)]
enum Op {
    Update {
        nonce: u64,
        balance: U256,
        code: bool,
        clear: bool,
        slots: Vec<(u8, U256)>,
    },
    Delete,
}

fn value() -> impl Strategy<Value = U256> {
    prop_oneof![
        2 => Just(U256::ZERO),
        4 => (1u64..1000).prop_map(U256::from),
        2 => any::<[u8; 32]>().prop_map(U256::from_be_bytes),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        9 => (any::<u64>(), value(), proptest::bool::weighted(0.1), proptest::bool::weighted(0.1),
              proptest::collection::vec((any::<u8>(), value()), 0..6))
            .prop_map(|(nonce, balance, code, clear, slots)| Op::Update { nonce, balance, code, clear, slots }),
        1 => Just(Op::Delete),
    ]
}

/// A block: ops on accounts of the pool (by index).
fn block(pool: usize, max_touched: usize) -> impl Strategy<Value = Vec<(usize, Op)>> {
    proptest::collection::vec((0..pool, op()), 1..max_touched)
}

fn pool_address(i: usize) -> Address {
    Address::from_slice(&keccak256((i as u64).to_be_bytes())[..20])
}

fn to_diff(ops: &[(usize, Op)]) -> StateDiff {
    let mut diff = StateDiff::default();
    for (i, op) in ops {
        let update = match op {
            Op::Delete => AccountUpdate {
                info: None,
                storage_cleared: true,
                storage: BTreeMap::new(),
            },
            Op::Update {
                nonce,
                balance,
                code,
                clear,
                slots,
            } => AccountUpdate {
                info: Some(Account {
                    nonce: *nonce,
                    balance: *balance,
                    code_hash: if *code {
                        keccak256(nonce.to_be_bytes())
                    } else {
                        KECCAK_EMPTY
                    },
                }),
                storage_cleared: *clear,
                storage: slots
                    .iter()
                    .map(|(slot, v)| (U256::from(*slot % 24), *v))
                    .collect(),
            },
        };
        diff.accounts.insert(pool_address(*i), update);
    }
    diff
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Root after every block equals alloy-trie's root of the model state.
    #[test]
    fn committed_roots_match_alloy_trie(
        genesis in block(400, 300),
        blocks in proptest::collection::vec(block(400, 40), 1..8),
        history in prop_oneof![Just(0u64), Just(2), Just(128)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), StateConfig { history_blocks: history, ..StateConfig::for_tests() }).unwrap();
        let mut model = InMemoryState::new();
        let mut roots = Vec::new();
        for (number, ops) in std::iter::once(&genesis).chain(&blocks).enumerate() {
            let diff = to_diff(ops);
            model.apply(&diff);
            let root = db.commit_block(number as u64, &diff, &[]).unwrap();
            prop_assert_eq!(root, alloy_root(&model), "block {}", number);
            roots.push(root);
        }
        prop_assert_eq!(db.recompute_root_from_flat().unwrap(), *roots.last().unwrap());
        // Revert as far as retained and check the root there.
        let oldest = db.oldest_readable().unwrap();
        db.revert_to(oldest).unwrap();
        prop_assert_eq!(db.latest().unwrap().1, roots[oldest as usize]);
        prop_assert_eq!(db.recompute_root_from_flat().unwrap(), roots[oldest as usize]);
    }
}

fn alloy_raw_root(entries: &BTreeMap<Vec<u8>, Vec<u8>>) -> B256 {
    let mut builder = HashBuilder::default();
    for (key, value) in entries {
        builder.add_leaf(Nibbles::unpack(key), value);
    }
    builder.root()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random fixed-length keys (HashBuilder needs prefix-free keys), inserted and deleted one
    /// at a time through the in-memory trie.
    #[test]
    fn memory_trie_matches_hash_builder(
        ops in proptest::collection::vec(
            (proptest::collection::vec(0u8..4, 3), proptest::option::weighted(0.7, proptest::collection::vec(any::<u8>(), 1..48))),
            1..120,
        )
    ) {
        let mut trie = MemoryTrie::new();
        let mut model = BTreeMap::new();
        for (key, value) in ops {
            match value {
                Some(value) => {
                    trie.insert(&key, &value);
                    model.insert(key, value);
                }
                None => {
                    trie.remove(&key);
                    model.remove(&key);
                }
            }
        }
        prop_assert_eq!(trie.root_hash(), alloy_raw_root(&model));
    }
}

/// An op on an account of a small pool that grows and shrinks its storage across the
/// small-storage bound: up to 24 writes over 40 slots, a third of them deletions.
fn storage_op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![1 => Just(U256::ZERO), 2 => (1u64..1000).prop_map(U256::from)];
    prop_oneof![
        12 => (any::<u64>(), proptest::bool::weighted(0.05),
               proptest::collection::vec((0u8..40, value), 0..24))
            .prop_map(|(nonce, clear, slots)| Op::Update {
                nonce, balance: U256::from(nonce), code: false, clear, slots,
            }),
        1 => Just(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Storage crossing the small-storage bound both ways: roots equal alloy-trie's, the
    /// database holds exactly the nodes of the storage tries above the bound (none left
    /// behind), reverts restore both, and the bound stored at creation outlives a reopen with
    /// another configuration.
    #[test]
    fn storage_crossing_the_small_bound_keeps_roots_and_nodes_exact(
        bound in prop_oneof![Just(0u32), Just(2), Just(16)],
        blocks in proptest::collection::vec(proptest::collection::vec((0usize..6, storage_op()), 1..6), 2..14),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = StateConfig { small_storage_max_slots: bound, ..StateConfig::for_tests() };
        let mut db = StateDb::open(dir.path(), config.clone()).unwrap();
        let mut model = InMemoryState::new();
        let mut states = Vec::new();
        for (number, ops) in blocks.iter().enumerate() {
            if number == blocks.len() / 2 {
                drop(db);
                let other = StateConfig { small_storage_max_slots: 3, ..config.clone() };
                db = StateDb::open(dir.path(), other).unwrap();
            }
            let diff = to_diff(ops);
            model.apply(&diff);
            let root = db.commit_block(number as u64, &diff, &[]).unwrap();
            prop_assert_eq!(root, alloy_root(&model), "block {}", number);
            prop_assert_eq!(
                db.stats().unwrap().storage_trie_nodes,
                expected_storage_trie_nodes(&model, bound as usize),
                "block {}", number
            );
            states.push(model.clone());
        }
        prop_assert_eq!(db.recompute_root_from_flat().unwrap(), alloy_root(&model));
        let oldest = db.oldest_readable().unwrap();
        db.revert_to(oldest).unwrap();
        let state = &states[oldest as usize];
        prop_assert_eq!(db.latest().unwrap().1, alloy_root(state));
        prop_assert_eq!(
            db.stats().unwrap().storage_trie_nodes,
            expected_storage_trie_nodes(state, bound as usize)
        );
    }
}
