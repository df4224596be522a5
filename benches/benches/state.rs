//! State benchmarks (chain-state):
//!
//! 1. `state_commit`: commit of a 10,000-account diff (2 storage slots each) onto a state of
//!    1,000,000 accounts through `StateDb::commit_block` (flat state, incremental trie, history,
//!    one RocksDB write), beside alloy-trie's `HashBuilder` and our own one-pass builder
//!    computing the same root from scratch over prepared sorted leaves.
//! 2. `state_reads`: random account reads through `LatestReader`: hot (in our cache), warm
//!    (our cache too small, RocksDB block cache warm), cold absent (existence filter).
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench -p chain-benches --bench state`.

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
use chain_primitives::{Account, AccountUpdate, StateDiff, StateReader};
use chain_state::{StateConfig, StateDb, trie};
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The node runs on mimalloc; so do the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: u64 = 1_000_000;
const LOAD_BLOCK_ACCOUNTS: u64 = 100_000;
const DIFF_ACCOUNTS: usize = 10_000;
const READS_PER_ITERATION: usize = 1_000;

/// Account number `i`: keccak-derived addresses, spread like real ones.
fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_be_bytes())[..20])
}

fn base_account(i: u64) -> Account {
    Account {
        nonce: i % 7,
        balance: U256::from(1_000_000 + i),
        ..Account::default()
    }
}

/// A diff touching `DIFF_ACCOUNTS` random existing accounts, each with 2 new storage slots.
fn commit_diff(rng: &mut StdRng, salt: u64) -> (StateDiff, Vec<u64>) {
    let mut diff = StateDiff::default();
    let mut touched = Vec::with_capacity(DIFF_ACCOUNTS);
    while diff.accounts.len() < DIFF_ACCOUNTS {
        let i = rng.random_range(0..ACCOUNTS);
        let storage: BTreeMap<U256, U256> = [
            (U256::from(salt * 2), U256::from(rng.random::<u64>() | 1)),
            (
                U256::from(salt * 2 + 1),
                U256::from(rng.random::<u64>() | 1),
            ),
        ]
        .into_iter()
        .collect();
        let info = Account {
            nonce: salt + 100,
            balance: U256::from(rng.random::<u64>()),
            ..Account::default()
        };
        if diff
            .accounts
            .insert(
                address(i),
                AccountUpdate {
                    info: Some(info),
                    storage_cleared: false,
                    storage,
                },
            )
            .is_none()
        {
            touched.push(i);
        }
    }
    (diff, touched)
}

/// Opens a fresh database and commits `ACCOUNTS` accounts in blocks of `LOAD_BLOCK_ACCOUNTS`.
fn load_state(config: StateConfig) -> (tempfile::TempDir, StateDb, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(dir.path(), config).expect("open");
    let started = Instant::now();
    let mut number = 0;
    for start in (0..ACCOUNTS).step_by(LOAD_BLOCK_ACCOUNTS as usize) {
        let mut diff = StateDiff::default();
        for i in start..(start + LOAD_BLOCK_ACCOUNTS).min(ACCOUNTS) {
            diff.accounts.insert(
                address(i),
                AccountUpdate {
                    info: Some(base_account(i)),
                    ..Default::default()
                },
            );
        }
        db.commit_block(number, &diff, &[]).expect("load block");
        number += 1;
    }
    eprintln!(
        "loaded {ACCOUNTS} accounts in {number} blocks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (dir, db, number)
}

/// Sorted (hashed address, account RLP) leaves of the loaded state after `diff`, with alloy's
/// own encoding of the accounts and storage roots.
fn leaves_after(diff: &StateDiff) -> Vec<(B256, Vec<u8>)> {
    let changed: HashMap<Address, &AccountUpdate> =
        diff.accounts.iter().map(|(a, u)| (*a, u)).collect();
    let mut leaves: Vec<(B256, Vec<u8>)> = (0..ACCOUNTS)
        .map(|i| {
            let address = address(i);
            let (info, storage_root) = match changed.get(&address) {
                Some(update) => {
                    let mut slots: Vec<(B256, U256)> = update
                        .storage
                        .iter()
                        .map(|(slot, value)| (keccak256(slot.to_be_bytes::<32>()), *value))
                        .collect();
                    slots.sort_unstable();
                    let mut storage = HashBuilder::default();
                    for (key, value) in slots {
                        storage.add_leaf(Nibbles::unpack(key), &alloy_rlp::encode(value));
                    }
                    (update.info.expect("updates only"), storage.root())
                }
                None => (base_account(i), trie::EMPTY_ROOT_HASH),
            };
            let account = TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash);
            (keccak256(address), alloy_rlp::encode(account))
        })
        .collect();
    leaves.sort_unstable_by_key(|a| a.0);
    leaves
}

fn alloy_root(leaves: &[(B256, Vec<u8>)]) -> B256 {
    let mut builder = HashBuilder::default();
    for (key, value) in leaves {
        builder.add_leaf(Nibbles::unpack(key), value);
    }
    builder.root()
}

fn bench_commit(c: &mut Criterion) {
    let (_dir, db, first_block) = load_state(StateConfig::default());
    let mut rng = StdRng::seed_from_u64(1);

    // One checked commit: our root equals alloy-trie's from scratch.
    let (diff, _) = commit_diff(&mut rng, 0);
    let started = Instant::now();
    let root = db.commit_block(first_block, &diff, &[]).expect("commit");
    eprintln!(
        "first 10k-account commit: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let leaves = leaves_after(&diff);
    assert_eq!(
        root,
        alloy_root(&leaves),
        "our root differs from alloy-trie's"
    );
    assert_eq!(root, trie::build_root(&leaves, None));

    let mut group = c.benchmark_group("state_commit");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(20));
    let next = Cell::new(first_block + 1);
    let salt = Cell::new(1u64);
    group.bench_function("ours_commit_10k_accounts_2_slots_onto_1m", |b| {
        b.iter_batched(
            || {
                salt.set(salt.get() + 1);
                commit_diff(&mut rng, salt.get()).0
            },
            |diff| {
                let number = next.get();
                next.set(number + 1);
                db.commit_block(number, &diff, &[]).expect("commit")
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("alloy_hash_builder_from_scratch_1m", |b| {
        b.iter(|| alloy_root(&leaves))
    });
    group.bench_function("ours_build_root_from_scratch_1m", |b| {
        b.iter(|| trie::build_root(&leaves, None))
    });
    group.finish();
}

fn bench_reads(c: &mut Criterion) {
    // Our account cache far smaller than the state, so uniform reads over all accounts miss
    // it and go to RocksDB (whose block cache holds the whole accounts family).
    let config = StateConfig {
        account_cache_entries: 10_000,
        ..StateConfig::default()
    };
    let (_dir, db, _) = load_state(config);
    let reader = db.reader();
    let addresses: Vec<Address> = (0..ACCOUNTS).map(address).collect();
    let started = Instant::now();
    for address in &addresses {
        assert!(reader.account(address).expect("read").is_some());
    }
    eprintln!(
        "warm-up read of all accounts: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let hot: Vec<Address> = addresses[..2_000].to_vec();
    for address in &hot {
        reader.account(address).expect("read");
    }
    let absent: Vec<Address> = (ACCOUNTS..ACCOUNTS + 100_000).map(address).collect();
    let mut rng = StdRng::seed_from_u64(2);

    let mut group = c.benchmark_group("state_reads");
    group.throughput(Throughput::Elements(READS_PER_ITERATION as u64));
    group.bench_function("hot_cached", |b| {
        b.iter(|| {
            for _ in 0..READS_PER_ITERATION {
                let address = &hot[rng.random_range(0..hot.len())];
                std::hint::black_box(reader.account(address).expect("read"));
            }
        })
    });
    group.bench_function("warm_rocksdb_block_cache", |b| {
        b.iter(|| {
            for _ in 0..READS_PER_ITERATION {
                let address = &addresses[rng.random_range(0..addresses.len())];
                std::hint::black_box(reader.account(address).expect("read"));
            }
        })
    });
    group.bench_function("cold_absent_filter", |b| {
        b.iter(|| {
            for _ in 0..READS_PER_ITERATION {
                let address = &absent[rng.random_range(0..absent.len())];
                std::hint::black_box(reader.account(address).expect("read"));
            }
        })
    });
    group.finish();
}

/// Runs both groups (what `criterion_group!` would generate, with a doc comment).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_commit(&mut criterion);
    bench_reads(&mut criterion);
}

criterion_main!(benches);
