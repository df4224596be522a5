//! Sequential vs parallel execution of generated 10,000-transaction blocks, per workload, at
//! low contention (10,000 accounts, or 100 pools) and full contention (1 account or pool).
//!
//! Run: `cargo bench -p chain-benches --bench execution`. Criterion reports the time of each
//! executor on the same block in the same run; tx/s and Mgas/s follow from the block's size
//! (printed once per block), and the README's table holds the ratios.

use chain_executor::{
    BlockStm, CodeCache, execute_parallel, execute_sequential,
    workload::{WorkloadConfig, WorkloadKind, generate},
};
use criterion::{Criterion, Throughput, criterion_main};
use std::{num::NonZeroUsize, time::Duration};

const TXS: usize = 10_000;

fn execution(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut thread_counts = vec![1, 2];
    if cores > 2 {
        thread_counts.push(cores);
    }
    let runners: Vec<BlockStm> = thread_counts
        .iter()
        .map(|&n| BlockStm::new(NonZeroUsize::new(n).expect("n > 0")))
        .collect();
    for kind in [
        WorkloadKind::Transfer,
        WorkloadKind::Erc20,
        WorkloadKind::Amm,
    ] {
        let low = if kind == WorkloadKind::Amm {
            100
        } else {
            10_000
        };
        for (contention, accounts) in [("low", low), ("full", 1)] {
            let workload = generate(&WorkloadConfig {
                kind,
                accounts,
                txs: TXS,
                seed: 1,
            });
            let codes = CodeCache::default();
            let reference =
                execute_sequential(&workload.state, &workload.env, &workload.txs, &codes)
                    .expect("workload executes");
            println!(
                "{kind}/{contention}: {} txs, {:.1} Mgas per block",
                reference.included(),
                reference.gas_used as f64 / 1e6
            );
            let mut group = c.benchmark_group(format!("execution/{kind}/{contention}"));
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(4))
                .warm_up_time(Duration::from_secs(1));
            group.throughput(Throughput::Elements(TXS as u64));
            group.bench_function("sequential", |b| {
                b.iter(|| {
                    execute_sequential(&workload.state, &workload.env, &workload.txs, &codes)
                        .expect("runs")
                })
            });
            for runner in &runners {
                group.bench_function(format!("parallel-{}", runner.threads()), |b| {
                    b.iter(|| {
                        let (output, _) = execute_parallel(
                            &workload.state,
                            &workload.env,
                            &workload.txs,
                            &codes,
                            runner,
                        )
                        .expect("runs");
                        output
                    })
                });
            }
            group.finish();
        }
    }
}

/// Runs the group (what `criterion_group!` would generate, with a doc comment).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    execution(&mut criterion);
}

criterion_main!(benches);
