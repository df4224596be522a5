//! Temporary profiling driver: loads 1M accounts then commits 10k-account diffs in a loop.
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

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), StateConfig::default()).unwrap();
    let mut number = 0;
    for start in (0..1_000_000u64).step_by(100_000) {
        let mut diff = StateDiff::default();
        for i in start..start + 100_000 {
            diff.accounts.insert(address(i), AccountUpdate { info: Some(Account::with_balance(U256::from(i + 1))), ..Default::default() });
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
            let storage: BTreeMap<U256, U256> = [(U256::from(round * 2), U256::from(7)), (U256::from(round * 2 + 1), U256::from(9))].into_iter().collect();
            diff.accounts.insert(address(i), AccountUpdate { info: Some(Account::with_balance(U256::from(rng.random::<u64>()))), storage_cleared: false, storage });
        }
        let t = Instant::now();
        db.commit_block(number, &diff, &[]).unwrap();
        eprintln!("commit {number}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        number += 1;
    }
}
