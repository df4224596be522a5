//! Profiling driver for block execution: generates one block and executes it over and over
//! with one executor only, so that a profiler sees that executor and nothing else. Prints each
//! run's wall time (and, for the parallel executor, its Block-STM run and final fold).
//!
//! Run: `cargo run --profile release -p chain-benches --example execution_profile --
//! [transfer|erc20|amm] [accounts] [par|seq] [runs] [threads] [txs]`, e.g. under `perf
//! record`.
//! Set `MIMALLOC_PURGE_DELAY=3000 MIMALLOC_ARENA_EAGER_COMMIT=1`, the allocator settings
//! `chaind` applies itself, to see what it sees. The median leaves out the first three runs
//! (the allocator's arenas and the caches growing).
use chain_executor::{
    BlockStm, CodeCache, execute_parallel, execute_sequential,
    workload::{WorkloadConfig, generate},
};
use std::{num::NonZeroUsize, time::Instant};

/// The node runs on mimalloc; so do the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let kind = arg(0, "transfer")
        .parse()
        .expect("workload: transfer, erc20 or amm");
    let accounts: usize = arg(1, "10000").parse().expect("accounts: a number");
    let parallel = match arg(2, "par").as_str() {
        "par" => true,
        "seq" => false,
        other => panic!("executor {other}: par or seq"),
    };
    let runs: usize = arg(3, "50").parse().expect("runs: a number");
    let threads: NonZeroUsize = arg(4, "2").parse().expect("threads: a positive number");
    let txs: usize = arg(5, "10000").parse().expect("txs: a number");
    let workload = generate(&WorkloadConfig {
        kind,
        accounts,
        txs,
        seed: 1,
    });
    let runner = BlockStm::new(threads);
    let codes = CodeCache::default();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        if parallel {
            let (output, stats) = execute_parallel(
                &workload.state,
                &workload.env,
                &workload.txs,
                &codes,
                &runner,
            )
            .expect("executes");
            let total = started.elapsed();
            drop(output);
            println!(
                "{:.2} ms (run {:.2}, fold {:.2}, busy {:.2}, executions {}{})",
                total.as_secs_f64() * 1e3,
                stats.run_us as f64 / 1e3,
                stats.assemble_us as f64 / 1e3,
                stats.busy_us as f64 / 1e3,
                stats.executions,
                stats
                    .fallback
                    .map(|f| format!(", fallback: {f}"))
                    .unwrap_or_default()
            );
            times.push(total.as_secs_f64() * 1e3);
        } else {
            let output = execute_sequential(&workload.state, &workload.env, &workload.txs, &codes)
                .expect("executes");
            let total = started.elapsed();
            drop(output);
            println!("{:.2} ms", total.as_secs_f64() * 1e3);
            times.push(total.as_secs_f64() * 1e3);
        }
    }
    let mut steady = times.split_off(times.len().min(3));
    if steady.is_empty() {
        steady = times;
    }
    steady.sort_by(f64::total_cmp);
    println!(
        "median {:.2} ms, min {:.2} ms",
        steady[steady.len() / 2],
        steady[0]
    );
}
