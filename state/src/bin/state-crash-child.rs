//! Child process of the crash-safety test (`tests/crash.rs`): opens the state database given as
//! the first argument and commits random blocks to it (with an occasional revert) until it is
//! killed. Once the database is open (after any rebuild of its account trie) it prints
//! `opened`; before each operation `next commit <n>` or `next revert <n>`, after it
//! `head <n> <root>`, so that the parent knows which states the database may be in.

use alloy_primitives::{Address, U256};
use chain_primitives::{Account, AccountUpdate, StateDiff};
use chain_state::{StateConfig, StateDb, StateError};
use std::collections::BTreeMap;
use std::io::Write;

/// SplitMix64: the child cannot use dev-dependencies, and needs nothing better.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const POOL: u64 = 5_000;
const TOUCHED: u64 = 300;

fn random_diff(rng: &mut SplitMix) -> StateDiff {
    let mut diff = StateDiff::default();
    for _ in 0..TOUCHED {
        let address = Address::left_padding_from(&(rng.below(POOL) + 1).to_be_bytes());
        let roll = rng.below(100);
        let update = if roll < 5 {
            AccountUpdate {
                info: None,
                storage_cleared: true,
                storage: BTreeMap::new(),
            }
        } else {
            let info = Account {
                nonce: rng.below(1000),
                balance: U256::from(rng.next()),
                ..Account::default()
            };
            let storage = (0..rng.below(4))
                .map(|_| {
                    let value = if rng.below(5) == 0 { 0 } else { rng.next() };
                    (U256::from(rng.below(16)), U256::from(value))
                })
                .collect();
            AccountUpdate {
                info: Some(info),
                storage_cleared: roll < 8,
                storage,
            }
        };
        diff.accounts.insert(address, update);
    }
    diff
}

fn main() -> Result<(), StateError> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(seed)) = (args.next(), args.next()) else {
        eprintln!("usage: state-crash-child <db-dir> <seed>");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().unwrap_or_else(|_| {
        eprintln!("seed must be a number");
        std::process::exit(2);
    });
    let config = StateConfig {
        history_blocks: 8,
        ..StateConfig::for_tests()
    };
    let db = StateDb::open(&dir, config)?;
    let mut rng = SplitMix(seed);
    let mut out = std::io::stdout().lock();
    let mut report = |line: String| {
        // The parent may be gone; then there is nobody to report to and nothing to do.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            std::process::exit(0);
        }
    };
    report("opened".to_string());
    if db.latest().is_none() {
        report("next commit 0".to_string());
        let root = db.genesis(&random_diff(&mut rng), &[])?;
        report(format!("head 0 {root}"));
    }
    loop {
        let (latest, _) = db.latest().expect("committed above");
        let oldest = db.oldest_readable().expect("committed above");
        if rng.below(8) == 0 && latest > oldest {
            let target = latest - 1 - rng.below((latest - oldest).min(3));
            report(format!("next revert {target}"));
            db.revert_to(target)?;
            report(format!(
                "head {target} {}",
                db.latest().expect("reverted").1
            ));
        } else {
            let diff = random_diff(&mut rng);
            report(format!("next commit {}", latest + 1));
            let root = db.commit_block(latest + 1, &diff, &[])?;
            report(format!("head {} {root}", latest + 1));
        }
    }
}
