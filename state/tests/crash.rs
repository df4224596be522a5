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

/// Kills children committing blocks to the database at `path` until one leaves the account
/// trie's top unwritten (they write it every third commit), unless it already is.
fn leave_top_unwritten(path: &Path, rng: &mut StdRng, seed: u64) {
    for attempt in 0.. {
        if rebuild_marks(path).0 {
            return;
        }
        assert!(attempt < 100, "no kill left the top unwritten");
        let mut child = Child::spawn(path, seed * 100 + attempt);
        child.wait_for(|reports| reports.heads_seen > 0);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        child.kill();
    }
}

/// What the database at `path` shows of a rebuild of its account trie: whether its top is
/// marked unwritten (a rebuild clears the mark last), and whether the trie's root node is
/// stored (a rebuild deletes every node first and writes the root last). Read raw, with the
/// state crate's keys, so that the test does not open (and so rebuild) the database.
fn rebuild_marks(path: &Path) -> (bool, bool) {
    if !path.join("CURRENT").exists() {
        return (false, false);
    }
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    let raw = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), path, &names, false)
        .unwrap();
    let meta = raw.cf_handle("state_meta").unwrap();
    let marked = raw
        .get_cf(meta, b"account_trie_top_pending")
        .unwrap()
        .is_some();
    let trie = raw.cf_handle("account_trie").unwrap();
    // The root's key: the packed empty path and its length, 0.
    let root_stored = raw.get_cf(trie, [0u8]).unwrap().is_some();
    (marked, root_stored)
}

/// 50 random accounts of the children's range, each with one slot set to `tag + 1`.
fn small_diff(rng: &mut StdRng, tag: u64) -> StateDiff {
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
            storage: [(U256::from(i % 16), U256::from(tag + 1))]
                .into_iter()
                .collect(),
        };
        diff.accounts.insert(address, update);
    }
    diff
}

/// Checks that the latest root of a reopened `db` equals a recomputation from the flat state,
/// and that the stored trie nodes are intact: an incremental commit on top of them agrees with
/// a full recomputation too.
fn check_trie(db: &StateDb, rng: &mut StdRng, kill: u64) {
    let (number, root) = db.latest().expect("a committed state");
    assert_eq!(
        db.recompute_root_from_flat().unwrap(),
        root,
        "kill {kill}: root vs flat state"
    );
    let root = db
        .commit_block(number + 1, &small_diff(rng, kill), &[])
        .unwrap();
    assert_eq!(
        db.recompute_root_from_flat().unwrap(),
        root,
        "kill {kill}: commit after reopen"
    );
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
        check_trie(&db, &mut rng, kill);
    }
    // Not a requirement on any single run, but a sign that kills land mid-operation at all.
    eprintln!(
        "{mid_operation_kills} of {KILLS} kills interrupted an operation that then completed"
    );
}

/// Children killed inside the rebuild of the account trie at open: a child committing blocks
/// is killed until it leaves the top unwritten; then children opening the database are killed
/// after a delay searched for (by bisection, from what the database shows after each kill)
/// until one dies after the rebuild deleted the old nodes and before it finished. The
/// database then opens with a root equal to a recomputation from the flat state, unmarked.
#[test]
fn killed_rebuilds_start_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0xdead);
    let mut killed_in_rebuild = 0;
    let mut kills = 0;
    for round in 0..4u64 {
        // Bounds of the kill delay: killed at `early` the rebuild had not started, at `late`
        // it had finished.
        let (mut early, mut late) = (Duration::ZERO, Duration::from_secs(2));
        for attempt in 0..40 {
            leave_top_unwritten(dir.path(), &mut rng, 1000 * round + attempt);
            let delay = rng.random_range(early..=late);
            let started = Instant::now();
            let child = Child::spawn(dir.path(), 0);
            while started.elapsed() < delay && !child.reports.lock().unwrap().opened {
                std::thread::sleep(Duration::from_micros(100));
            }
            kills += 1;
            match (child.kill().opened, rebuild_marks(dir.path())) {
                (false, (true, false)) => {
                    killed_in_rebuild += 1;
                    break;
                }
                (false, (true, true)) => early = delay,
                // The rebuild finished (the child may have committed on).
                _ => late = delay,
            }
        }
        let db = StateDb::open(dir.path(), StateConfig::for_tests()).expect("reopen");
        check_trie(&db, &mut rng, round);
        drop(db);
        assert_eq!(rebuild_marks(dir.path()), (false, true), "round {round}");
    }
    eprintln!("{killed_in_rebuild} of 4 rounds killed a child inside the rebuild ({kills} kills)");
    assert!(killed_in_rebuild > 0, "no kill landed inside a rebuild");
}
