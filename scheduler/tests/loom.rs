//! Model checking of the scheduler, the multi-version memory and the worker loop with loom.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p chain-scheduler --release --test loom`
//! (CI runs it). Without `--cfg loom` this file is empty.

#![cfg(loom)]

mod toy;

use chain_scheduler::BlockRun;
use loom::{sync::Arc, thread};
use toy::{Op, ToyTask, Txn, final_state, sequential};

/// Runs `block` on `threads` loom threads and checks the result against sequential
/// execution, in every interleaving loom explores.
fn model(block: Vec<Txn>, threads: usize) {
    model_bounded(block, threads, 3)
}

fn model_bounded(block: Vec<Txn>, threads: usize, preemptions: usize) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    // Idle workers poll the scheduler; each poll is a few branch points.
    builder.max_branches = 100_000;
    let (expected_outputs, expected_state) = sequential(&block);
    let task: &'static ToyTask = Box::leak(Box::new(ToyTask {
        work: vec![0; block.len()],
        hints: Vec::new(),
        block,
    }));
    builder.check(move || {
        let run = Arc::new(BlockRun::new(task, task.block.len()));
        let handles: Vec<_> = (1..threads)
            .map(|_| {
                let run = run.clone();
                thread::spawn(move || run.work())
            })
            .collect();
        run.work();
        for handle in handles {
            handle.join().unwrap();
        }
        let run = Arc::try_unwrap(run).unwrap_or_else(|_| panic!("workers hold no reference"));
        let (outputs, memory) = run.finish().expect("run succeeds");
        assert_eq!(outputs, expected_outputs);
        let mut state = final_state(&memory);
        state.retain(|k, _| expected_state.contains_key(k));
        assert_eq!(state, expected_state);
    });
}

#[test]
fn two_txns_conflicting() {
    model(
        vec![
            vec![Op::Read(0), Op::Write(0)],
            vec![Op::Read(0), Op::Write(0)],
        ],
        2,
    );
}

#[test]
fn three_txns_chain() {
    model(
        vec![
            vec![Op::Write(0)],
            vec![Op::Read(0), Op::Write(1)],
            vec![Op::Read(1), Op::Write(0)],
        ],
        2,
    );
}

#[test]
fn write_set_changes_between_incarnations() {
    model(
        vec![
            vec![Op::Read(1), Op::Write(0)],
            vec![Op::Read(0), Op::Branch(1, 2)],
            vec![Op::Read(2), Op::Read(1)],
        ],
        2,
    );
}

#[test]
fn deltas_and_reader() {
    model(
        vec![
            vec![Op::Add(0, 1)],
            vec![Op::Add(0, 2)],
            vec![Op::Read(0), Op::Write(1)],
        ],
        2,
    );
}
