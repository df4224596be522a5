//! Property test: random sequences of admissions, removals, blocks, base-fee changes and
//! re-injections keep the pool consistent (no gap in a pending run, counts and indexes in
//! agreement, limits held) and keep the block builder's order valid.

mod common;

use alloy_primitives::{Address, Bytes, U256};
use chain_primitives::InMemoryState;
use chain_txpool::{PoolConfig, PooledTx, TxPool};
use common::*;
use proptest::prelude::*;
use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

const SENDERS: usize = 4;
const NONCES: u64 = 7;
/// (fee cap, tip) levels, each more than 10% above the previous on both.
const FEES: [(u128, u128); 3] = [
    (30 * GWEI, GWEI),
    (40 * GWEI, 2 * GWEI),
    (50 * GWEI, 3 * GWEI),
];
const BASE_FEES: [u64; 4] = [
    GWEI as u64,
    20 * GWEI as u64,
    35 * GWEI as u64,
    45 * GWEI as u64,
];

struct Fixture {
    keys: Vec<Key>,
    /// Signed transactions by (sender, nonce, fee level).
    txs: HashMap<(usize, u64, usize), Bytes>,
}

/// Signing is the slow part: sign the whole grid once for all cases.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys: Vec<Key> = (0..SENDERS as u64).map(|i| Key::new(100 + i)).collect();
        let mut txs = HashMap::new();
        for (s, key) in keys.iter().enumerate() {
            for nonce in 0..NONCES {
                for (level, (fee, tip)) in FEES.iter().enumerate() {
                    txs.insert((s, nonce, level), key.transfer(nonce, *fee, *tip));
                }
            }
        }
        Fixture { keys, txs }
    })
}

/// A balance level: about 1.5, 4 or 100 transactions' worth at the highest fee.
fn balance(level: usize) -> u128 {
    let one = 21_000 * FEES[2].0;
    [one * 3 / 2, one * 4, one * 100][level]
}

#[derive(Clone, Debug)]
enum Op {
    Add {
        sender: usize,
        nonce: u64,
        level: usize,
    },
    Batch(Vec<(usize, u64, usize)>),
    Remove {
        pick: usize,
    },
    Block {
        sender: usize,
        advance: u64,
        balance_level: usize,
        base_fee: usize,
    },
    BaseFee {
        level: usize,
    },
    Reinject {
        pick: usize,
    },
}

fn tx_key() -> impl Strategy<Value = (usize, u64, usize)> {
    (0..SENDERS, 0..NONCES, 0..FEES.len())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => tx_key().prop_map(|(sender, nonce, level)| Op::Add { sender, nonce, level }),
        2 => prop::collection::vec(tx_key(), 1..8).prop_map(Op::Batch),
        1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        2 => (0..SENDERS, 0..3u64, 0..3usize, 0..BASE_FEES.len()).prop_map(
            |(sender, advance, balance_level, base_fee)| Op::Block { sender, advance, balance_level, base_fee }
        ),
        1 => (0..BASE_FEES.len()).prop_map(|level| Op::BaseFee { level }),
        1 => any::<usize>().prop_map(|pick| Op::Reinject { pick }),
    ]
}

/// The block builder's order is valid: every sender's transactions come in consecutive nonces
/// from its account nonce, all pay the base fee, and none is served twice.
fn check_best_order(
    pool: &TxPool,
    state: &InMemoryState,
    keys: &[Key],
    base_fee: u64,
) -> Result<(), String> {
    let mut next: HashMap<Address, u64> = keys
        .iter()
        .map(|key| (key.address, state.account_nonce(&key.address)))
        .collect();
    let mut served = 0;
    for tx in pool.best_transactions(base_fee) {
        let expected = next.get_mut(&tx.sender()).ok_or("unknown sender")?;
        if tx.nonce() != *expected {
            return Err(format!(
                "{} served nonce {} before {}",
                tx.sender(),
                tx.nonce(),
                expected
            ));
        }
        *expected += 1;
        if tx.max_fee_per_gas() < u128::from(base_fee) {
            return Err("served a transaction below the base fee".to_owned());
        }
        served += 1;
    }
    if served > pool.status().pending {
        return Err("served more than pending".to_owned());
    }
    Ok(())
}

trait AccountNonce {
    fn account_nonce(&self, address: &Address) -> u64;
}

impl AccountNonce for InMemoryState {
    fn account_nonce(&self, address: &Address) -> u64 {
        use chain_primitives::StateReader;
        self.account(address)
            .unwrap()
            .map_or(0, |account| account.nonce)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fixture = fixture();
    let keys = &fixture.keys;
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.account_slots = 3;
    config.account_queue = 2;
    config.global_slots = 5;
    config.global_queue = 3;
    let pool = TxPool::new(config);
    let mut state = InMemoryState::new();
    for key in keys {
        set_account(&mut state, key, 0, balance(2));
    }
    let mut base_fee = BASE_FEES[0];
    pool.set_base_fee(base_fee);
    let mut left_pool: Vec<Arc<PooledTx>> = Vec::new();

    for op in ops {
        match op {
            Op::Add {
                sender,
                nonce,
                level,
            } => {
                let _ = pool.add_raw(fixture.txs[&(sender, nonce, level)].clone(), &state);
            }
            Op::Batch(keys) => {
                let raws = keys.iter().map(|k| fixture.txs[k].clone()).collect();
                let _ = pool.add_raw_batch(raws, &state);
            }
            Op::Remove { pick } => {
                let content = pool.content();
                let all: Vec<_> = content
                    .pending
                    .values()
                    .chain(content.queued.values())
                    .flat_map(|txs| txs.values())
                    .collect();
                if !all.is_empty() {
                    let tx = all[pick % all.len()];
                    let removed = pool.remove(&tx.hash());
                    prop_assert!(removed.is_some());
                    left_pool.push(removed.unwrap());
                }
            }
            Op::Block {
                sender,
                advance,
                balance_level,
                base_fee: level,
            } => {
                let key = &keys[sender];
                let nonce = state.account_nonce(&key.address) + advance;
                set_account(&mut state, key, nonce, balance(balance_level));
                base_fee = BASE_FEES[level];
                pool.on_new_block(&[key.address], &state, base_fee);
                prop_assert!(
                    pool.content()
                        .pending
                        .values()
                        .chain(pool.content().queued.values())
                        .flat_map(|txs| txs.values())
                        .filter(|tx| tx.sender() == key.address)
                        .all(|tx| tx.nonce() >= nonce
                            && tx.cost() <= U256::from(balance(balance_level)))
                );
            }
            Op::BaseFee { level } => {
                base_fee = BASE_FEES[level];
                pool.set_base_fee(base_fee);
            }
            Op::Reinject { pick } => {
                if !left_pool.is_empty() {
                    let tx = left_pool.swap_remove(pick % left_pool.len());
                    pool.reinject(vec![tx]);
                    // The node follows a reorg with a block update, which re-reads the account.
                    pool.on_new_block(&[], &state, base_fee);
                }
            }
        }
        pool.check_invariants().map_err(TestCaseError::fail)?;
        let status = pool.status();
        let content = pool.content();
        let count = |set: &std::collections::BTreeMap<
            Address,
            std::collections::BTreeMap<u64, Arc<PooledTx>>,
        >| { set.values().map(|txs| txs.len()).sum::<usize>() };
        prop_assert_eq!(
            (status.pending, status.queued),
            (count(&content.pending), count(&content.queued))
        );
        prop_assert_eq!(pool.len(), status.pending + status.queued);
        for key in keys {
            if let Some(pending_nonce) = pool.pending_nonce(&key.address) {
                let pending = content.pending.get(&key.address).map_or(0, |txs| txs.len()) as u64;
                prop_assert_eq!(pending_nonce, state.account_nonce(&key.address) + pending);
            }
        }
        check_best_order(&pool, &state, keys, base_fee).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_pool_consistent(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Input from the network never panics the pool: random bytes, and valid transactions with
    /// bytes flipped, truncated or extended, are refused or pooled, and the pool stays whole.
    #[test]
    fn arbitrary_input_never_panics(
        random in prop::collection::vec(any::<u8>(), 0..300),
        pick in tx_key(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
        extra in prop::collection::vec(any::<u8>(), 0..3),
    ) {
        let fixture = fixture();
        let mut state = InMemoryState::new();
        for key in &fixture.keys {
            set_account(&mut state, key, 0, balance(2));
        }
        let pool = TxPool::new(PoolConfig::new(CHAIN_ID, 30_000_000));
        let _ = pool.add_raw(random.into(), &state);
        let mut mutated = fixture.txs[&pick].to_vec();
        for (at, byte) in flips {
            let at = at % mutated.len();
            mutated[at] ^= byte;
        }
        let _ = pool.add_raw(Bytes::from(mutated.clone()), &state);
        mutated.truncate(cut % (mutated.len() + 1));
        mutated.extend(extra);
        let _ = pool.add_raw_batch(vec![mutated.into()], &state);
        pool.check_invariants().map_err(TestCaseError::fail)?;
    }
}
