//! Crash safety: a child process commits blocks in a loop and is killed with SIGKILL at random
//! moments. After every kill the database must reopen at the last reported state or at the
//! state the interrupted operation was producing, with a root equal to a full recomputation
//! from the flat state, and the stored trie must still take incremental commits correctly.

use alloy_primitives::{Address, B256, U256};
use chain_primitives::{Account, AccountUpdate, StateDiff};
use chain_state::{StateConfig, StateDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILLS: u64 = 20;

/// What the child reported before it died.
#[derive(Default, Debug)]
struct Reports {
    /// Last completed state: (block, root).
    head: Option<(u64, B256)>,
    /// The block the interrupted operation was producing (a commit's number or a revert's
    /// target), if one was announced after the last head.
    pending: Option<u64>,
    heads_seen: usize,
}

fn parse(line: &str, reports: &mut Reports) {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["next", _, number] => reports.pending = Some(number.parse().expect("block number")),
        ["head", number, root] => {
            reports.head = Some((
                number.parse().expect("block number"),
                root.parse().expect("root"),
            ));
            reports.pending = None;
            reports.heads_seen += 1;
        }
        _ => panic!("unexpected child output {line:?}"),
    }
}

#[test]
fn killed_child_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let child_binary = env!("CARGO_BIN_EXE_state-crash-child");
    let mut rng = StdRng::seed_from_u64(0xc0ffee);
    let mut mid_operation_kills = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(child_binary)
            .arg(dir.path())
            .arg(kill.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crash child");
        let stdout = child.stdout.take().unwrap();
        let reports = Arc::new(Mutex::new(Reports::default()));
        let reader_reports = Arc::clone(&reports);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                parse(&line, &mut reader_reports.lock().unwrap());
            }
        });
        // Let it get going (at least one operation done), then kill at a random moment.
        let started = std::time::Instant::now();
        while reports.lock().unwrap().heads_seen == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child made no progress"
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        reader.join().unwrap();
        let reports = std::mem::take(&mut *reports.lock().unwrap());
        let (head_number, head_root) = reports.head.expect("at least one head reported");

        let db = StateDb::open(dir.path(), StateConfig::for_tests()).expect("reopen after kill");
        let (number, root) = db.latest().expect("a committed state");
        if number == head_number {
            assert_eq!(root, head_root, "kill {kill}: same block, different root");
        } else {
            assert_eq!(
                Some(number),
                reports.pending,
                "kill {kill}: latest {number}, reports {reports:?}"
            );
            mid_operation_kills += 1;
        }
        assert_eq!(
            db.recompute_root_from_flat().unwrap(),
            root,
            "kill {kill}: root vs flat state"
        );

        // The stored trie nodes must be intact: an incremental commit on top of them agrees
        // with a full recomputation.
        let mut diff = StateDiff::default();
        for i in 0..50u64 {
            let address =
                Address::left_padding_from(&(rng.random_range(1..5_000u64) + i).to_be_bytes());
            let update = AccountUpdate {
                info: Some(Account {
                    nonce: 1,
                    balance: U256::from(i),
                    ..Account::default()
                }),
                storage_cleared: false,
                storage: [(U256::from(i % 16), U256::from(kill + 1))]
                    .into_iter()
                    .collect(),
            };
            diff.accounts.insert(address, update);
        }
        let root = db.commit_block(number + 1, &diff, &[]).unwrap();
        assert_eq!(
            db.recompute_root_from_flat().unwrap(),
            root,
            "kill {kill}: commit after reopen"
        );
    }
    // Not a requirement on any single run, but a sign that kills land mid-operation at all.
    eprintln!(
        "{mid_operation_kills} of {KILLS} kills interrupted an operation that then completed"
    );
}
