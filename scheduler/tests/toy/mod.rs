//! A toy transaction language for testing Block-STM without an EVM: each transaction reads
//! and writes small integer locations, with data-dependent control flow so that write sets
//! change between incarnations, and delta writes that must commute.

#![allow(dead_code, unreachable_pub)]

use chain_scheduler::{
    Incarnation, MvRead, MvValue, TaskError, TaskOutput, TransactionTask, TxnIndex, TxnView,
    fold_deltas,
};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Full(u64),
    Add(u64),
}

impl MvValue for Val {
    fn is_delta(&self) -> bool {
        matches!(self, Val::Add(_))
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    /// Mix the value of a location into the accumulator.
    Read(u8),
    /// Write the accumulator (mixed with the location) to a location.
    Write(u8),
    /// Add a constant to a location without reading it.
    Add(u8, u64),
    /// If the accumulator is even, write to the first location, else to the second.
    Branch(u8, u8),
}

pub type Txn = Vec<Op>;

pub fn initial(key: u8) -> u64 {
    u64::from(key) * 7 + 1
}

fn mix(acc: u64, v: u64) -> u64 {
    acc.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(v)
        .rotate_left(17)
}

/// The effect of one transaction given a way to read a location.
fn run_txn(
    txn: &Txn,
    mut read: impl FnMut(u8) -> Result<u64, TxnIndex>,
) -> Result<(u64, BTreeMap<u8, Val>), TxnIndex> {
    let mut acc = 0u64;
    let mut local: BTreeMap<u8, Val> = BTreeMap::new();
    let write = |local: &mut BTreeMap<u8, Val>, key: u8, val: Val| {
        let merged = match (local.get(&key), &val) {
            (Some(Val::Full(base)), Val::Add(n)) => Val::Full(base.wrapping_add(*n)),
            (Some(Val::Add(m)), Val::Add(n)) => Val::Add(m.wrapping_add(*n)),
            _ => val,
        };
        local.insert(key, merged);
    };
    for op in txn {
        match *op {
            Op::Read(key) => {
                let value = match local.get(&key) {
                    Some(Val::Full(v)) => *v,
                    Some(Val::Add(n)) => read(key)?.wrapping_add(*n),
                    None => read(key)?,
                };
                acc = mix(acc, value);
            }
            Op::Write(key) => write(&mut local, key, Val::Full(mix(acc, u64::from(key)))),
            Op::Add(key, n) => write(&mut local, key, Val::Add(n)),
            Op::Branch(a, b) => {
                let key = if acc.is_multiple_of(2) { a } else { b };
                write(&mut local, key, Val::Full(mix(acc, 99)));
            }
        }
    }
    Ok((acc, local))
}

/// Executes the block one transaction after another: the reference.
pub fn sequential(block: &[Txn]) -> (Vec<u64>, BTreeMap<u8, u64>) {
    let mut state: BTreeMap<u8, u64> = BTreeMap::new();
    let mut outputs = Vec::new();
    for txn in block {
        let (out, writes) = run_txn(txn, |k| {
            Ok(state.get(&k).copied().unwrap_or_else(|| initial(k)))
        })
        .unwrap();
        for (k, v) in writes {
            let cur = state.get(&k).copied().unwrap_or_else(|| initial(k));
            state.insert(
                k,
                match v {
                    Val::Full(x) => x,
                    Val::Add(n) => cur.wrapping_add(n),
                },
            );
        }
        outputs.push(out);
    }
    (outputs, state)
}

pub struct ToyTask {
    pub block: Vec<Txn>,
    /// Busy-work per transaction, to vary interleavings.
    pub work: Vec<u32>,
    /// Predicted writes per transaction (right or wrong guesses; empty for none).
    pub hints: Vec<Vec<u8>>,
}

impl TransactionTask for ToyTask {
    type Key = u8;
    type Value = Val;
    type Output = u64;
    type Error = ();
    type Worker = ();

    fn worker(&self) {}

    fn predicted_writes(&self, txn_idx: TxnIndex) -> Vec<u8> {
        self.hints.get(txn_idx).cloned().unwrap_or_default()
    }

    fn execute(
        &self,
        _worker: &mut (),
        txn_idx: TxnIndex,
        _incarnation: Incarnation,
        view: &mut TxnView<'_, u8, Val>,
    ) -> Result<TaskOutput<u8, Val, u64>, TaskError<()>> {
        let mut spin = 0u64;
        for i in 0..self.work.get(txn_idx).copied().unwrap_or(0) {
            spin = std::hint::black_box(spin.wrapping_add(u64::from(i)));
        }
        let (output, writes) = run_txn(&self.block[txn_idx], |key| {
            Ok(match view.read(&key)? {
                MvRead::Storage => initial(key),
                MvRead::Value(Val::Full(v)) => v,
                MvRead::Value(Val::Add(_)) => unreachable!("a full read is never a delta"),
                MvRead::Deltas { deltas, base } => {
                    let base = match base {
                        Some(Val::Full(v)) => v,
                        _ => initial(key),
                    };
                    fold_deltas(&deltas, base, |acc, d| match d {
                        Val::Add(n) => acc.wrapping_add(*n),
                        Val::Full(v) => *v,
                    })
                }
            })
        })
        .map_err(TaskError::Dependency)?;
        Ok(TaskOutput {
            writes: writes.into_iter().collect(),
            output,
        })
    }
}

/// Final state of a parallel run, folded from the memory.
pub fn final_state(memory: &chain_scheduler::MvMemory<u8, Val>) -> BTreeMap<u8, u64> {
    let mut state = BTreeMap::new();
    memory
        .for_each_final(|key, top_down| {
            let mut deltas = Vec::new();
            let mut base = initial(*key);
            for (_, v) in top_down {
                match v {
                    Val::Add(n) => deltas.push(*n),
                    Val::Full(x) => {
                        base = *x;
                        break;
                    }
                }
            }
            let value = deltas
                .iter()
                .rev()
                .fold(base, |acc, n| acc.wrapping_add(*n));
            state.insert(*key, value);
        })
        .expect("no estimate left");
    state
}
