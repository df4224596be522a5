//! `loadgen`: load-tests a chaind (or any Ethereum JSON-RPC) node and reports included TPS,
//! inclusion latency and lost transactions.

use alloy_primitives::B256;
use anyhow::Context as _;
use chain_loadtest::{
    app::run_load,
    config::{LoadOptions, Pace, parse_duration},
    plot::write_svg,
    rpc::TransportKind,
    workload::LoadKind,
};
use clap::Parser;
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load generator for chaind: sends pre-signed transactions at a fixed rate (open loop) or
/// as fast as a window of in-flight transactions allows (closed loop), follows new heads, and
/// reports submitted and included TPS, inclusion latency and lost transactions.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about)]
struct Cli {
    /// Node JSON-RPC URL (HTTP or WebSocket; both are used on the same port).
    #[arg(long, default_value = "http://127.0.0.1:8545", env = "LOADGEN_RPC")]
    rpc: String,
    /// WebSocket URL for newHeads (default: --rpc with ws://).
    #[arg(long)]
    ws_url: Option<String>,
    /// Sending accounts: load-test accounts 0..N (`chaind dev --prefund-loadgen N` funds them).
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Seed of the load-test accounts (`chaind dev --loadgen-seed`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// transfer, erc20, amm or mix.
    #[arg(long, default_value = "transfer")]
    workload: LoadKind,
    /// Shared recipients (transfer, erc20) or pools (amm, mix); 0: one recipient per account
    /// and 16 pools.
    #[arg(long, default_value_t = 0)]
    contention: usize,
    /// How long to send, e.g. 60s, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Open loop: transactions per second (default 1000 unless --max-inflight is given).
    #[arg(long, conflicts_with = "max_inflight")]
    rate: Option<f64>,
    /// Open loop: reach --rate by a linear ramp of this length (part of --duration).
    #[arg(long, value_parser = parse_duration, conflicts_with = "max_inflight")]
    ramp: Option<Duration>,
    /// Closed loop: send as fast as possible with at most W transactions sent and not yet
    /// included.
    #[arg(long, value_name = "W")]
    max_inflight: Option<usize>,
    /// Cap on the transactions pre-signed (closed loop default: 20,000 per second of duration).
    #[arg(long)]
    txs: Option<u64>,
    /// Worker threads (async runtime and signing).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Connections to send over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Transactions per request (a JSON-RPC batch when above 1).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Requests each connection may have unanswered at once.
    #[arg(long, default_value_t = 8)]
    requests_per_connection: usize,
    /// http or ws.
    #[arg(long, default_value = "http")]
    transport: TransportKind,
    /// maxFeePerGas of every transaction, in gwei (high, so pre-signed transactions survive a
    /// rising base fee).
    #[arg(long, default_value_t = 1000)]
    max_fee_gwei: u64,
    /// maxPriorityFeePerGas, in gwei.
    #[arg(long, default_value_t = 1)]
    priority_fee_gwei: u64,
    /// Hex secret key of a funded account that funds the sending accounts (and deploys the
    /// contracts) instead of relying on prefunding.
    #[arg(long, env = "LOADGEN_FAUCET_KEY", hide_env_values = true)]
    faucet_key: Option<B256>,
    /// ETH the faucet sends to each account holding less than half of it.
    #[arg(long, default_value_t = 10)]
    fund_eth: u64,
    /// Most setup transactions of one sender (faucet, deployer) sent before waiting for them.
    #[arg(long, default_value_t = 64)]
    setup_depth: usize,
    /// Longest wait for one round of setup transactions.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    setup_timeout: Duration,
    /// Longest wait after sending for accepted transactions to be included.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain: Duration,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the SVG plot (TPS and latency over time) here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    no_progress: bool,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Cli {
    fn options(&self) -> LoadOptions {
        let pace = match (self.rate, self.max_inflight) {
            (_, Some(window)) => Pace::Window(window),
            (rate, None) => Pace::Rate {
                tps: rate.unwrap_or(1000.0),
                ramp: self.ramp,
            },
        };
        LoadOptions {
            rpc: self.rpc.clone(),
            ws_url: self.ws_url.clone(),
            accounts: self.accounts,
            seed: self.seed,
            workload: self.workload,
            contention: self.contention,
            duration: self.duration,
            pace,
            txs: self.txs,
            threads: self.threads,
            connections: self.connections,
            batch: self.batch,
            requests_per_connection: self.requests_per_connection,
            transport: self.transport,
            max_fee_gwei: self.max_fee_gwei,
            priority_fee_gwei: self.priority_fee_gwei,
            faucet_key: self.faucet_key,
            fund_eth: self.fund_eth,
            setup_depth: self.setup_depth,
            setup_timeout: self.setup_timeout,
            drain: self.drain,
            progress: !self.no_progress,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code of a run that lost or duplicated transactions.
const EXIT_LOST: u8 = 2;

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let options = cli.options();
    options.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupt);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "interrupted: stopping sends, draining, then reporting (Ctrl-C again to abort)"
                );
                flag.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        run_load(&options, interrupt).await
    })?;

    print!("{}", report.table());
    if let Some(path) = &cli.report {
        report.write_json(path)?;
        println!("  report       {}", path.display());
    }
    if let Some(path) = &cli.plot {
        let tps = report
            .throughput
            .steady_included_tps
            .unwrap_or(report.throughput.included_tps);
        let title = format!(
            "loadgen {}: {tps:.0} included tx/s sustained, p99 latency {:.0} ms, {} lost",
            report.settings.workload, report.latency.p99_ms, report.totals.lost
        );
        write_svg(path, &title, &report.per_second, &report.per_block)?;
        println!("  plot         {}", path.display());
    }
    Ok(if report.verdict.all_accepted_included_once {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_LOST)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_window_select_the_loop() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--rate",
            "5000",
            "--ramp",
            "10s",
            "--duration",
            "1m",
        ])
        .unwrap();
        let options = cli.options();
        assert_eq!(
            options.pace,
            Pace::Rate {
                tps: 5000.0,
                ramp: Some(Duration::from_secs(10))
            }
        );
        assert_eq!(options.duration, Duration::from_secs(60));

        let cli =
            Cli::try_parse_from(["loadgen", "--max-inflight", "20000", "--workload", "erc20"])
                .unwrap();
        assert_eq!(cli.options().pace, Pace::Window(20_000));
        assert_eq!(cli.options().workload, LoadKind::Erc20);

        let cli = Cli::try_parse_from(["loadgen"]).unwrap();
        assert_eq!(
            cli.options().pace,
            Pace::Rate {
                tps: 1000.0,
                ramp: None
            }
        );
    }

    #[test]
    fn rejects_contradicting_flags() {
        assert!(Cli::try_parse_from(["loadgen", "--rate", "1", "--max-inflight", "100"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "--workload", "nft"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "--transport", "carrier-pigeon"]).is_err());
    }

    #[test]
    fn parses_a_faucet_key() {
        let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let cli = Cli::try_parse_from(["loadgen", "--faucet-key", key]).unwrap();
        assert_eq!(
            cli.options().faucet_key,
            Some(chain_loadtest::accounts::DEV_ACCOUNT_0_KEY)
        );
    }
}
