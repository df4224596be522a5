//! The `chaind` command line.

use anyhow::Context as _;
use chaind::{
    alloc::TrackingAllocator,
    bench::{ExecutionBenchConfig, run_execution_bench},
    statetest,
};
use chain_executor::workload::{WorkloadConfig, WorkloadKind};
use clap::{Parser, Subcommand};
use std::{num::NonZeroUsize, path::PathBuf, process::ExitCode};

#[global_allocator]
static GLOBAL: TrackingAllocator = TrackingAllocator;

/// chaind: a proof-of-stake EVM chain with parallel (Block-STM) execution.
#[derive(Debug, Parser)]
#[command(name = "chaind", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ethereum/tests GeneralStateTests files (or directories of them) through the
    /// executor and compare post-state roots and logs.
    Statetest {
        /// Fixture files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print every case, not only failures.
        #[arg(long)]
        verbose: bool,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Sequential vs parallel execution of one generated block, side by side.
    Execution {
        /// transfer, erc20 or amm.
        #[arg(long, default_value = "erc20")]
        workload: WorkloadKind,
        /// Contention knob: distinct accounts (transfer, erc20) or pools (amm).
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Transactions in the block.
        #[arg(long, default_value_t = 10_000)]
        txs: usize,
        /// Worker threads of the parallel executor.
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
        /// Timed runs of each executor; the median is reported.
        #[arg(long, default_value_t = 9)]
        runs: usize,
        /// Seed of the generated addresses.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

fn main() -> ExitCode {
    chaind::alloc::configure();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Statetest { paths, verbose } => {
            let mut reports = Vec::new();
            for path in &paths {
                let files = statetest::collect_files(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                for file in files {
                    reports.extend(statetest::run_file(&file));
                }
            }
            for report in &reports {
                let show = verbose || matches!(report.result, statetest::CaseResult::Fail(_));
                if show {
                    println!(
                        "{:?} {} {} {}[{}]",
                        report.result, report.file, report.test, report.fork, report.index
                    );
                }
            }
            let summary = statetest::summarize(&reports);
            println!("{summary}");
            Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench { bench: BenchCommand::Execution { workload, accounts, txs, threads, runs, seed, json } } => {
            let threads = NonZeroUsize::new(threads).context("--threads must be at least 1")?;
            anyhow::ensure!(accounts > 0, "--accounts must be at least 1");
            let report = run_execution_bench(&ExecutionBenchConfig {
                workload: WorkloadConfig { kind: workload, accounts, txs, seed },
                threads,
                runs,
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
