//! Profiling driver for state commits: loads 1,000,000 accounts, then commits diffs of 10,000
//! accounts with 2 new storage slots each and prints each commit's wall time and the CPU time
//! the process spent meanwhile (all threads, RocksDB's background flushes included). Attach
//! `perf record -p <pid>` after the "loaded" line to profile the commits alone.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo run --profile bench -p chain-benches --example
//! state_commit_profile [commits]` (`WRITE_BUFFER_MB=<n>` overrides the memtable size,
//! `BLOCK_CACHE_MB=<n>` RocksDB's block cache, `BACKGROUND_JOBS=<n>` its flush and compaction
//! threads,
//! `RESIDENT_DEPTH=<n>` the account-trie levels kept in memory, `TOP_WRITE_INTERVAL=<n>` how
//! often their nodes are written;
//! `OPEN_ONLY=<dir>` only times opening the database in `<dir>` (one left by a killed run
//! rebuilds its account trie);
//! `RUST_LOG=chain_state=debug` prints each commit's phases: reads, storage tries, account
//! trie, staging, write).
use alloy_primitives::{Address, U256, keccak256};
use chain_primitives::{Account, AccountUpdate, StateDiff};
use chain_state::{StateConfig, StateDb};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Instant;

/// The node runs on mimalloc; so do the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_be_bytes())[..20])
}

/// CPU time of the whole process so far (all threads), from /proc, in milliseconds.
fn cpu_ms() -> f64 {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += stat
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    total as f64 / 1e6
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut config = StateConfig::default();
    if let Ok(path) = std::env::var("OPEN_ONLY") {
        // Times opening an existing database (e.g. one left by a killed run, whose open
        // rebuilds the account trie), then exits.
        let started = Instant::now();
        let db = StateDb::open(&path, config).unwrap();
        println!(
            "opened {path} at {:?} in {:.0} ms",
            db.latest(),
            started.elapsed().as_secs_f64() * 1e3
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if let Ok(mb) = std::env::var("WRITE_BUFFER_MB") {
        config.write_buffer_bytes = mb.parse::<usize>().unwrap() << 20;
    }
    if let Ok(jobs) = std::env::var("BACKGROUND_JOBS") {
        config.background_jobs = jobs.parse().unwrap();
    }
    if let Ok(mb) = std::env::var("BLOCK_CACHE_MB") {
        config.block_cache_bytes = mb.parse::<usize>().unwrap() << 20;
    }
    if let Ok(depth) = std::env::var("RESIDENT_DEPTH") {
        config.resident_trie_depth = depth.parse().unwrap();
    }
    if let Ok(interval) = std::env::var("TOP_WRITE_INTERVAL") {
        config.top_write_interval = interval.parse().unwrap();
    }
    let db = StateDb::open(dir.path(), config).unwrap();
    let mut number = 0;
    for start in (0..1_000_000u64).step_by(100_000) {
        let mut diff = StateDiff::default();
        for i in start..start + 100_000 {
            diff.accounts.insert(
                address(i),
                AccountUpdate {
                    info: Some(Account::with_balance(U256::from(i + 1))),
                    ..Default::default()
                },
            );
        }
        db.commit_block(number, &diff, &[]).unwrap();
        number += 1;
    }
    eprintln!("loaded; pid {}", std::process::id());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rounds: u64 = std::env::args().nth(1).map_or(10, |a| a.parse().unwrap());
    for round in 0..rounds {
        let mut diff = StateDiff::default();
        while diff.accounts.len() < 10_000 {
            let i = rng.random_range(0..1_000_000u64);
            let storage: BTreeMap<U256, U256> = [
                (U256::from(round * 2), U256::from(7)),
                (U256::from(round * 2 + 1), U256::from(9)),
            ]
            .into_iter()
            .collect();
            diff.accounts.insert(
                address(i),
                AccountUpdate {
                    info: Some(Account::with_balance(U256::from(rng.random::<u64>()))),
                    storage_cleared: false,
                    storage,
                },
            );
        }
        let t = Instant::now();
        let cpu = cpu_ms();
        db.commit_block(number, &diff, &[]).unwrap();
        eprintln!(
            "commit {number}: {:.1} ms wall, {:.1} ms cpu",
            t.elapsed().as_secs_f64() * 1e3,
            cpu_ms() - cpu
        );
        number += 1;
    }
}
