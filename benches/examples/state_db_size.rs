//! Size of the state database after 10,000 blocks of ERC-20-like traffic, with history pruned
//! to the default 128 blocks and with all history kept (`history_blocks = u64::MAX`).
//!
//! Each block carries 200 token transfers among 20,000 holders: each changes the sender's
//! account (nonce, balance for the fee) and two slots of the token contract (the balances of
//! sender and receiver); the block's fee recipient is credited once per block.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo run --profile bench -p chain-benches --example
//! state_db_size [blocks]` (`WRITE_BUFFER_MB=<n>` overrides the memtable size).

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use chain_primitives::{Account, AccountUpdate, StateDiff};
use chain_state::{StateConfig, StateDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// The node runs on mimalloc; so do the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOLDERS: u64 = 20_000;
const TRANSFERS_PER_BLOCK: usize = 200;

fn holder(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_be_bytes())[..20])
}

/// Solidity's slot of `balances[holder]` for a mapping at slot 0.
fn balance_slot(holder: &Address) -> U256 {
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(holder.as_slice());
    U256::from_be_bytes(keccak256(preimage).0)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let meta = e.metadata().expect("metadata");
                    if meta.is_dir() {
                        dir_size(&e.path())
                    } else {
                        meta.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn run(history_blocks: u64, blocks: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = StateConfig {
        history_blocks,
        ..StateConfig::default()
    };
    if let Ok(mb) = std::env::var("WRITE_BUFFER_MB") {
        config.write_buffer_bytes = mb.parse::<usize>().expect("megabytes") << 20;
    }
    let db = StateDb::open(dir.path(), config).expect("open");
    let token = Address::repeat_byte(0x70);
    let coinbase = Address::repeat_byte(0xcb);
    let token_code = Bytes::from_static(&[0x60, 0x80, 0x60, 0x40, 0x52, 0x00]);
    let token_code_hash = keccak256(&token_code);
    let mut accounts: Vec<Account> = (0..HOLDERS)
        .map(|_| Account::with_balance(U256::from(10u64).pow(U256::from(20))))
        .collect();
    let mut token_balances: Vec<U256> = vec![U256::from(1_000_000u64); HOLDERS as usize];
    let mut fees_collected = U256::ZERO;

    let mut genesis = StateDiff::default();
    for i in 0..HOLDERS {
        genesis.accounts.insert(
            holder(i),
            AccountUpdate {
                info: Some(accounts[i as usize]),
                ..Default::default()
            },
        );
    }
    let token_account = Account {
        nonce: 1,
        balance: U256::ZERO,
        code_hash: token_code_hash,
    };
    let storage: BTreeMap<U256, U256> = (0..HOLDERS)
        .map(|i| (balance_slot(&holder(i)), token_balances[i as usize]))
        .collect();
    genesis.accounts.insert(
        token,
        AccountUpdate {
            info: Some(token_account),
            storage_cleared: true,
            storage,
        },
    );
    genesis.codes.insert(token_code_hash, token_code);
    db.genesis(&genesis, &[]).expect("genesis");

    let mut rng = StdRng::seed_from_u64(42);
    let started = Instant::now();
    for number in 1..=blocks {
        let mut diff = StateDiff::default();
        let mut slots = BTreeMap::new();
        for _ in 0..TRANSFERS_PER_BLOCK {
            let from = rng.random_range(0..HOLDERS) as usize;
            let to = rng.random_range(0..HOLDERS) as usize;
            let amount = U256::from(rng.random_range(1..100u64));
            let fee = U256::from(21_000u64 * 1_000_000_000);
            if token_balances[from] < amount {
                continue;
            }
            token_balances[from] -= amount;
            token_balances[to] += amount;
            accounts[from].nonce += 1;
            accounts[from].balance -= fee;
            fees_collected += fee;
            slots.insert(balance_slot(&holder(from as u64)), token_balances[from]);
            slots.insert(balance_slot(&holder(to as u64)), token_balances[to]);
            diff.accounts.insert(
                holder(from as u64),
                AccountUpdate {
                    info: Some(accounts[from]),
                    ..Default::default()
                },
            );
        }
        diff.accounts.insert(
            token,
            AccountUpdate {
                info: Some(token_account),
                storage_cleared: false,
                storage: slots,
            },
        );
        diff.accounts.insert(
            coinbase,
            AccountUpdate {
                info: Some(Account::with_balance(fees_collected)),
                ..Default::default()
            },
        );
        db.commit_block(number, &diff, &[]).expect("commit");
    }
    let elapsed = started.elapsed();
    db.flush().expect("flush");
    let live = db.disk_usage().expect("size");
    let on_disk = dir_size(dir.path());
    db.compact().expect("compact");
    let compacted = db.disk_usage().expect("size");
    let stats = db.stats().expect("stats");
    let (_, root): (u64, B256) = db.latest().expect("latest");
    println!(
        "history_blocks={:<20} blocks={blocks} time={:.1}s ({:.2} ms/block) sst+memtables={:.1} MiB, dir={:.1} MiB, after full compaction={:.1} MiB; changesets={} history entries={} account trie nodes={} storage trie nodes={} root={root}",
        if history_blocks == u64::MAX {
            "u64::MAX (all)".to_string()
        } else {
            history_blocks.to_string()
        },
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / blocks as f64,
        live as f64 / (1 << 20) as f64,
        on_disk as f64 / (1 << 20) as f64,
        compacted as f64 / (1 << 20) as f64,
        stats.changesets,
        stats.history_entries,
        stats.account_trie_nodes,
        stats.storage_trie_nodes,
    );
}

fn main() {
    let blocks = std::env::args()
        .nth(1)
        .map_or(10_000, |arg| arg.parse().expect("block count"));
    run(128, blocks);
    if std::env::var_os("ONLY_PRUNED").is_none() {
        run(u64::MAX, blocks);
    }
}
