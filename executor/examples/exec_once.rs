//! Executes one generated block sequentially or in parallel, for instruction-count profiling
//! (`valgrind --tool=callgrind`): `cargo run --release --example exec_once -- seq|par N`.
use chain_executor::{BlockStm, CodeCache, execute_parallel, execute_sequential, workload::*};
use std::num::NonZeroUsize;
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let txs: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let w = generate(&WorkloadConfig {
        kind: WorkloadKind::Transfer,
        accounts: txs,
        txs,
        seed: 1,
    });
    let codes = CodeCache::default();
    let runner = BlockStm::new(NonZeroUsize::new(1).unwrap());
    for _ in 0..3 {
        if mode == "gen" {
        } else if mode == "seq" {
            execute_sequential(&w.state, &w.env, &w.txs, &codes).unwrap();
        } else {
            execute_parallel(&w.state, &w.env, &w.txs, &codes, &runner).unwrap();
        }
    }
}
