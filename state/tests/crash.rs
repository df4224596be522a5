//! Crash safety: a child process commits blocks in a loop and is killed with SIGKILL at random
//! moments. After every kill the database must reopen at the last reported state or at the
//! state the interrupted operation was producing, with a root equal to a full recomputation
//! from the flat state, and the stored trie must still take incremental commits correctly.
//! Children are also killed while they open a database whose account trie must be rebuilt.

use alloy_primitives::{Address, B256, U256};
use chain_primitives::{Account, AccountUpdate, StateDiff};
use chain_state::{StateConfig, StateDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Whether the child finished opening the database.
    opened: bool,
}

fn parse(line: &str, reports: &mut Reports) {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["opened"] => reports.opened = true,
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

/// A running child and what it reported so far.
struct Child {
    process: std::process::Child,
    reports: Arc<Mutex<Reports>>,
    reader: std::thread::JoinHandle<()>,
}

impl Child {
    fn spawn(dir: &Path, seed: u64) -> Child {
        let mut process = Command::new(env!("CARGO_BIN_EXE_state-crash-child"))
            .arg(dir)
            .arg(seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crash child");
        let stdout = process.stdout.take().unwrap();
        let reports = Arc::new(Mutex::new(Reports::default()));
        let reader_reports = Arc::clone(&reports);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                parse(&line, &mut reader_reports.lock().unwrap());
            }
        });
        Child {
            process,
            reports,
            reader,
        }
    }

    /// Waits until `done` holds for the reports (the child must not exit meanwhile).
    fn wait_for(&mut self, done: impl Fn(&Reports) -> bool) {
        let started = Instant::now();
        while !done(&self.reports.lock().unwrap()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child made no progress"
            );
            if let Some(status) = self.process.try_wait().unwrap() {
                panic!("child exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILLs the child and returns what it had reported.
    fn kill(mut self) -> Reports {
        self.process.kill().expect("SIGKILL the child");
        self.process.wait().unwrap();
        self.reader.join().unwrap();
        std::mem::take(&mut *self.reports.lock().unwrap())
    }
}

/// Whether the database at `path` marks its account trie's top as unwritten (the key is the
/// state crate's; reading it raw keeps the test from opening, and so rebuilding, the database).
fn top_pending(path: &Path) -> bool {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let raw = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), path, &names, false)
        .unwrap();
    let meta = raw.cf_handle("state_meta").unwrap();
    raw.get_cf(meta, b"account_trie_top_pending")
        .unwrap()
        .is_some()
}

#[test]
fn killed_child_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0xc0ffee);
    let mut mid_operation_kills = 0;
    for kill in 0..KILLS {
        let mut child = Child::spawn(dir.path(), kill);
        // Let it get going (at least one operation done), then kill at a random moment.
        child.wait_for(|reports| reports.heads_seen > 0);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        let reports = child.kill();
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

/// Children killed while they rebuild the account trie at open: a database left with its top
/// unwritten is opened by a child that is killed after a random part of the time an open
/// takes, again and again; the database then opens at the state the first child committed,
/// with a root equal to a recomputation from the flat state.
#[test]
fn killed_rebuilds_start_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0xdead);
    let mut killed_in_open = 0;
    // The longest open seen, rebuild included: kills land within it.
    let mut longest_open = Duration::ZERO;
    for round in 0..6u64 {
        // Commits until the child is killed between operations with the top unwritten (the
        // children write it every third commit).
        let head = loop {
            let started = Instant::now();
            let mut child = Child::spawn(dir.path(), 100 + round);
            child.wait_for(|reports| reports.opened);
            longest_open = longest_open.max(started.elapsed());
            child.wait_for(|reports| reports.heads_seen > 0);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
            let reports = child.kill();
            if reports.pending.is_none() && top_pending(dir.path()) {
                break reports.head.expect("a head");
            }
        };
        for _ in 0..4 {
            let started = Instant::now();
            let child = Child::spawn(dir.path(), 0);
            let delay = rng.random_range(0..=longest_open.as_micros() as u64);
            while started.elapsed() < Duration::from_micros(delay)
                && !child.reports.lock().unwrap().opened
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            if child.kill().opened {
                // The open, and the rebuild with it, finished.
                break;
            }
            killed_in_open += 1;
        }
        let db = StateDb::open(dir.path(), StateConfig::for_tests()).expect("reopen");
        let (number, root) = db.latest().expect("a committed state");
        assert!(
            number >= head.0,
            "round {round}: state went back from {head:?}"
        );
        if number == head.0 {
            assert_eq!(root, head.1, "round {round}");
        }
        assert_eq!(
            db.recompute_root_from_flat().unwrap(),
            root,
            "round {round}"
        );
        // The rebuild cleared the mark, and a close without commits leaves none.
        drop(db);
        assert!(!top_pending(dir.path()), "round {round}: still marked");
    }
    eprintln!("{killed_in_open} kills landed while a child was opening a database to rebuild");
    assert!(killed_in_open > 0, "no kill landed during an open");
}
