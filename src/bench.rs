//! `chaind bench execution`: sequential and parallel execution of one generated block, side
//! by side in one run, with throughput, the ratio and peak memory.

use crate::alloc::measure_peak;
use chain_executor::{
    BlockStm, CodeCache, execute_parallel, execute_sequential,
    workload::{Workload, WorkloadConfig, WorkloadKind, generate},
};
use serde::Serialize;
use std::{num::NonZeroUsize, time::Instant};

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct ExecutionBenchConfig {
    /// The block.
    pub workload: WorkloadConfig,
    /// Worker threads of the parallel run.
    pub threads: NonZeroUsize,
    /// Timed runs of each executor (the median is reported).
    pub runs: usize,
    /// Untimed runs of each executor before the timed ones.
    pub warmup: usize,
    /// When Block-STM gives up on a contended block (`None`: never).
    pub contention_limit: Option<chain_scheduler::ContentionLimit>,
}

/// Timings of one executor.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Median wall time of one block, in milliseconds.
    pub median_ms: f64,
    /// Fastest run, in milliseconds.
    pub min_ms: f64,
    /// Transactions per second at the median.
    pub tx_per_s: f64,
    /// Million gas per second at the median.
    pub mgas_per_s: f64,
}

/// The report printed by the command.
#[derive(Clone, Debug, Serialize)]
pub struct ExecutionBenchReport {
    /// Workload kind.
    pub workload: WorkloadKind,
    /// Contention knob.
    pub accounts: usize,
    /// Transactions in the block.
    pub txs: usize,
    /// Gas used by the block.
    pub gas_used: u64,
    /// Parallel worker threads.
    pub threads: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Sequential execution.
    pub sequential: Timing,
    /// Parallel execution.
    pub parallel: Timing,
    /// Sequential median time over parallel median time (> 1: parallel is faster).
    pub speedup: f64,
    /// Median time of the Block-STM run alone (parallel part), in milliseconds.
    pub parallel_run_ms: f64,
    /// Median time of folding the final writes into the diff after the run, in milliseconds.
    pub parallel_assemble_ms: f64,
    /// Average number of workers busy inside the EVM during the Block-STM run (median run).
    pub parallelism: f64,
    /// Executions per transaction in the parallel runs (1.0: nothing re-executed).
    pub executions_per_tx: f64,
    /// Whether the parallel result equalled the sequential one (checked on every run).
    pub identical: bool,
    /// Parallel runs whose result came from the sequential fallback.
    pub fallbacks: usize,
    /// Peak heap bytes allocated while executing the block sequentially.
    pub peak_bytes_sequential: usize,
    /// Peak heap bytes allocated while executing the block in parallel.
    pub peak_bytes_parallel: usize,
}

fn timing(mut samples: Vec<f64>, txs: usize, gas: u64) -> Timing {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    Timing {
        median_ms: median * 1e3,
        min_ms: samples[0] * 1e3,
        tx_per_s: txs as f64 / median,
        mgas_per_s: gas as f64 / median / 1e6,
    }
}

/// Runs the benchmark. Runs alternate between the two executors so that drift in machine
/// speed affects both alike; `warmup` untimed runs of each come first. Both share one code cache, warmed by a first untimed run, as the
/// blocks of a running node do.
pub fn run_execution_bench(config: &ExecutionBenchConfig) -> anyhow::Result<ExecutionBenchReport> {
    let Workload { state, env, txs } = generate(&config.workload);
    let runner = BlockStm::new(config.threads).with_contention_limit(config.contention_limit);
    let codes = CodeCache::default();
    let reference = execute_sequential(&state, &env, &txs, &codes)?;
    let gas = reference.gas_used;

    let (_, peak_bytes_sequential) =
        measure_peak(|| execute_sequential(&state, &env, &txs, &codes));
    let (_, peak_bytes_parallel) =
        measure_peak(|| execute_parallel(&state, &env, &txs, &codes, &runner));

    // The first blocks grow the allocator's arenas (fresh pages the kernel must zero) and
    // fill the caches; a running node has that behind it.
    for _ in 0..config.warmup {
        drop(execute_sequential(&state, &env, &txs, &codes)?);
        drop(execute_parallel(&state, &env, &txs, &codes, &runner)?);
    }

    let mut sequential = Vec::new();
    let mut parallel = Vec::new();
    let mut identical = true;
    let mut executions = 0usize;
    let mut fallbacks = 0usize;
    let mut run_us = Vec::new();
    let mut parallelism = Vec::new();
    let mut assemble_us = Vec::new();
    for _ in 0..config.runs.max(1) {
        let start = Instant::now();
        let output = execute_sequential(&state, &env, &txs, &codes)?;
        sequential.push(start.elapsed().as_secs_f64());
        identical &= output == reference;
        drop(output);

        let start = Instant::now();
        let (output, stats) = execute_parallel(&state, &env, &txs, &codes, &runner)?;
        parallel.push(start.elapsed().as_secs_f64());
        identical &= output == reference;
        executions += stats.executions;
        fallbacks += usize::from(stats.fallback.is_some());
        run_us.push(stats.run_us);
        parallelism.push(stats.busy_us as f64 / stats.run_us.max(1) as f64);
        assemble_us.push(stats.assemble_us);
        drop(output);
    }
    let runs = sequential.len();
    let median_ms = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2] as f64 / 1e3
    };
    let sequential = timing(sequential, txs.len(), gas);
    let parallel = timing(parallel, txs.len(), gas);
    Ok(ExecutionBenchReport {
        workload: config.workload.kind,
        accounts: config.workload.accounts,
        txs: txs.len(),
        gas_used: gas,
        threads: config.threads.get(),
        cpus: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        speedup: sequential.median_ms / parallel.median_ms,
        sequential,
        parallel,
        parallel_run_ms: median_ms(run_us),
        parallelism: {
            parallelism.sort_by(f64::total_cmp);
            parallelism[parallelism.len() / 2]
        },
        parallel_assemble_ms: median_ms(assemble_us),
        executions_per_tx: executions as f64 / (runs * txs.len().max(1)) as f64,
        identical,
        fallbacks,
        peak_bytes_sequential,
        peak_bytes_parallel,
    })
}

impl std::fmt::Display for ExecutionBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "workload {} | accounts {} | {} txs | {:.1} Mgas | {} threads on {} cpus",
            self.workload,
            self.accounts,
            self.txs,
            self.gas_used as f64 / 1e6,
            self.threads,
            self.cpus
        )?;
        for (name, t, peak) in [
            ("sequential", &self.sequential, self.peak_bytes_sequential),
            ("parallel", &self.parallel, self.peak_bytes_parallel),
        ] {
            writeln!(
                f,
                "  {name:<10} {:>9.2} ms  {:>10.0} tx/s  {:>8.1} Mgas/s  peak {:.1} MiB",
                t.median_ms,
                t.tx_per_s,
                t.mgas_per_s,
                peak as f64 / (1 << 20) as f64
            )?;
        }
        writeln!(
            f,
            "  parallel = {:.2} ms Block-STM run ({:.2} workers busy in the EVM on average) + {:.2} ms final state fold",
            self.parallel_run_ms, self.parallelism, self.parallel_assemble_ms
        )?;
        write!(
            f,
            "  speedup    {:.2}x  ({:.2} executions/tx, identical: {}, fallbacks: {})",
            self.speedup, self.executions_per_tx, self.identical, self.fallbacks
        )
    }
}
