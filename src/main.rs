//! The `chaind` command line.

use anyhow::Context as _;
use chain_executor::workload::{WorkloadConfig, WorkloadKind};
use chaind::{
    alloc::TrackingAllocator,
    bench::{ExecutionBenchConfig, run_execution_bench},
    statetest,
};
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
    /// Start a one-command dev chain: one validator, the test mnemonic's first 10 accounts
    /// funded with 10,000 ETH, JSON-RPC on 127.0.0.1:8545.
    Dev(DevArgs),
    /// Create a node's database from a genesis file.
    Init {
        /// Genesis file (geth format plus a `consensus` section).
        #[arg(long)]
        genesis: PathBuf,
        /// Data directory (default: the config file's, else the platform's data directory).
        #[arg(long)]
        datadir: Option<PathBuf>,
        /// The node's config file: its `datadir` and `[state]` settings (those fixed when the
        /// database is created among them) apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a node from a config file; flags override the file.
    Node(NodeArgs),
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
    /// Sign a staking operation with a validator key and submit it to a node
    /// (chaind_sendStakingOp). Stakes are in consensus units: 1 unit = 1 gwei of deposit,
    /// debited from the key's account into the staking escrow when a block includes it.
    Stake {
        #[command(subcommand)]
        action: StakeCommand,
        /// The validator's key: a file holding a hex secp256k1 private key.
        #[arg(long, global = true)]
        key_file: Option<PathBuf>,
        /// The node's JSON-RPC URL (http://).
        #[arg(long, global = true, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// Staking nonce to use instead of the node's answer for the validator's next one.
        #[arg(long, global = true)]
        nonce: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum StakeCommand {
    /// Become a validator with a stake.
    Join {
        /// The stake, in units of 1 gwei (32 ETH is 32000000000).
        #[arg(long)]
        stake: u64,
    },
    /// Change the stake of an active validator.
    Set {
        /// The new stake, in units of 1 gwei.
        #[arg(long)]
        stake: u64,
    },
    /// Leave the validator set; the deposit comes back after the unbonding delay.
    Leave,
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
        /// Untimed runs of each executor before the timed ones (the allocator's arenas and
        /// the caches reach the size a running node keeps them at).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Seed of the generated addresses.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Never hand contended blocks to the sequential executor (measures Block-STM alone).
        #[arg(long)]
        no_fallback: bool,
    },
}

/// Flags shared by `dev` and `node`.
#[derive(Debug, Clone, clap::Args)]
struct CommonArgs {
    /// Data directory.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// JSON-RPC listen address.
    #[arg(long = "http.addr")]
    http_addr: Option<std::net::IpAddr>,
    /// JSON-RPC port (HTTP and WebSocket).
    #[arg(long = "http.port")]
    http_port: Option<u16>,
    /// Accepted Host headers, comma-separated ("*" for any); default localhost only.
    #[arg(long = "http.vhosts", value_delimiter = ',')]
    http_vhosts: Vec<String>,
    /// Allowed CORS origins, comma-separated ("*" for any).
    #[arg(long = "http.corsdomain", value_delimiter = ',')]
    http_corsdomain: Vec<String>,
    /// Alias of --http.port: the WebSocket endpoint shares the HTTP port.
    #[arg(long = "ws.port")]
    ws_port: Option<u16>,
    /// Separate Prometheus listener (ip:port); /metrics on the RPC port is always served.
    #[arg(long = "metrics.addr")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Block-STM worker threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Execute blocks sequentially (the reference executor) instead of with Block-STM.
    #[arg(long)]
    sequential: bool,
    /// Past block states kept for RPC and reorgs.
    #[arg(long)]
    history: Option<u64>,
    /// Pool limits for load tests (much higher than geth's defaults).
    #[arg(long = "txpool.load-test")]
    txpool_load_test: bool,
    /// Print one line per committed block.
    #[arg(long)]
    print_blocks: bool,
}

#[derive(Debug, Clone, clap::Args)]
struct DevArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Slot length, e.g. 1s, 500ms (at least 100ms).
    #[arg(long, default_value = "1s")]
    block_time: String,
    /// Block gas limit.
    #[arg(long, default_value_t = 30_000_000)]
    gas_limit: u64,
    /// Fund this many load-test accounts (the ones `loadgen --accounts N` uses).
    #[arg(long, default_value_t = 0)]
    prefund_loadgen: u64,
    /// Seed of the load-test accounts.
    #[arg(long, default_value_t = 1)]
    loadgen_seed: u64,
}

#[derive(Debug, Clone, clap::Args)]
struct NodeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Config file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Genesis file (needed if the data directory is empty).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Validator key file (hex secp256k1 private key).
    #[arg(long = "validator.key")]
    validator_key: Option<PathBuf>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

fn main() -> ExitCode {
    chaind::alloc::configure();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
        Command::Dev(args) => commands::dev(&args).map(|()| ExitCode::SUCCESS),
        Command::Init {
            genesis,
            datadir,
            config,
        } => commands::init(&genesis, datadir, config.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::Node(args) => commands::node(&args).map(|()| ExitCode::SUCCESS),
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
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Stake {
            action,
            key_file,
            rpc,
            nonce,
        } => {
            use chaind::stake::{StakeAction, read_key_file, submit};
            let key_file = key_file.context("--key-file is required")?;
            let signer = read_key_file(&key_file)?;
            let action = match action {
                StakeCommand::Join { stake } => StakeAction::Join { stake },
                StakeCommand::Set { stake } => StakeAction::SetStake { stake },
                StakeCommand::Leave => StakeAction::Leave,
            };
            let submitted = submit(action, &signer, &rpc, nonce)?;
            println!(
                "submitted staking operation {} (validator {}, nonce {})",
                submitted.hash, submitted.op.op.validator, submitted.op.op.nonce
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            bench:
                BenchCommand::Execution {
                    workload,
                    accounts,
                    txs,
                    threads,
                    runs,
                    warmup,
                    seed,
                    json,
                    no_fallback,
                },
        } => {
            let threads = NonZeroUsize::new(threads).context("--threads must be at least 1")?;
            anyhow::ensure!(accounts > 0, "--accounts must be at least 1");
            let report = run_execution_bench(&ExecutionBenchConfig {
                workload: WorkloadConfig {
                    kind: workload,
                    accounts,
                    txs,
                    seed,
                },
                threads,
                runs,
                warmup,
                contention_limit: (!no_fallback).then(Default::default),
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

mod commands {
    use super::{CommonArgs, DevArgs, NodeArgs};
    use anyhow::Context as _;
    use chain_executor::ExecutionMode;
    use chain_primitives::ChainGenesis;
    use chaind::{
        config::{FileConfig, RpcSection, default_datadir},
        dev,
        node::{Node, NodeConfig, now_ms},
        run::{RunOptions, run},
    };
    use std::{
        num::NonZeroUsize,
        path::{Path, PathBuf},
    };

    fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
        const LATENCY_BUCKETS: &[f64] =
            &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("rpc_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .ok()?
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("chaind_block_execution_seconds".into()),
                LATENCY_BUCKETS,
            )
            .ok()?
            .install_recorder()
            .ok()
    }

    fn execution_mode(common: &CommonArgs, file: &FileConfig) -> anyhow::Result<ExecutionMode> {
        if common.sequential || file.execution.sequential {
            return Ok(ExecutionMode::Sequential);
        }
        let threads = common
            .threads
            .or(file.execution.threads)
            .unwrap_or_else(super::default_threads);
        Ok(ExecutionMode::Parallel(
            NonZeroUsize::new(threads).context("--threads must be at least 1")?,
        ))
    }

    fn rpc_section(common: &CommonArgs, file: &FileConfig) -> RpcSection {
        let mut rpc = file.rpc.clone();
        if let Some(addr) = common.http_addr {
            rpc.addr = addr;
        }
        if let Some(port) = common.http_port.or(common.ws_port) {
            rpc.port = port;
        }
        if !common.http_vhosts.is_empty() {
            rpc.vhosts = common.http_vhosts.clone();
        }
        if !common.http_corsdomain.is_empty() {
            rpc.cors = common.http_corsdomain.clone();
        }
        rpc
    }

    fn pool_config(
        common: &CommonArgs,
        file: &FileConfig,
    ) -> anyhow::Result<chain_txpool::PoolConfig> {
        let load_test = common.txpool_load_test
            || match file.txpool.profile.as_deref() {
                None | Some("default") => false,
                Some("load-test") => true,
                Some(other) => anyhow::bail!(
                    "field `txpool.profile`: unknown profile {other:?} (default, load-test)"
                ),
            };
        // Chain id and gas limit are filled in by the node from the genesis.
        let mut config = if load_test {
            chain_txpool::PoolConfig::load_test(0, 0)
        } else {
            chain_txpool::PoolConfig::new(0, 0)
        };
        chaind::node::apply_pool_limits(
            &mut config,
            file.txpool.max_per_sender,
            file.txpool.max_total,
        );
        Ok(config)
    }

    fn state_config(
        common: &CommonArgs,
        file: &FileConfig,
    ) -> anyhow::Result<chain_state::StateConfig> {
        let mut config = file.state.apply(chain_state::StateConfig::default())?;
        if let Some(history) = common.history {
            config.history_blocks = history;
        }
        Ok(config)
    }

    fn client_version() -> String {
        format!(
            "chaind/v{}/{}-{}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    }

    pub(super) fn dev(args: &DevArgs) -> anyhow::Result<()> {
        let file = FileConfig::default();
        let block_time_ms = chain_primitives::genesis::parse_duration_ms(&args.block_time)
            .map_err(|e| anyhow::anyhow!("--block-time: {e}"))?;
        anyhow::ensure!(
            block_time_ms >= chain_primitives::genesis::MIN_BLOCK_TIME_MS,
            "--block-time must be at least 100ms"
        );
        anyhow::ensure!(
            args.gas_limit >= 21_000,
            "--gas-limit must be at least 21000"
        );
        let datadir = args
            .common
            .datadir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data"));
        let signers = dev::dev_signers()?;
        let genesis = dev::dev_genesis(
            &dev::DevOptions {
                block_time_ms,
                gas_limit: args.gas_limit,
                prefund_loadgen: args.prefund_loadgen,
                loadgen_seed: args.loadgen_seed,
                timestamp: now_ms() / 1000,
            },
            &signers,
        )?;
        let prometheus = install_metrics();
        let rpc = rpc_section(&args.common, &file);
        let mut pool = pool_config(&args.common, &file)?;
        if args.prefund_loadgen > 0 && !args.common.txpool_load_test {
            // A load test needs the big pool; dev chains with load-test accounts get it.
            pool = chain_txpool::PoolConfig::load_test(0, 0);
        }
        let node = Node::open(NodeConfig {
            datadir: datadir.clone(),
            genesis,
            validator_key: Some(signers[0].clone()),
            execution: execution_mode(&args.common, &file)?,
            state: state_config(&args.common, &file)?,
            pool,
            dev_accounts: signers.iter().map(|s| s.address()).collect(),
            client_version: client_version(),
        })?;
        println!(
            "{}",
            dev::banner(
                &signers,
                &format!("http://{}:{}", rpc.addr, rpc.port),
                &datadir,
                args.prefund_loadgen
            )
        );
        println!("Head: block {}\n", node.head_number());
        run(
            &node,
            &RunOptions {
                rpc: chaind::node::rpc_config(&rpc),
                metrics_addr: args.common.metrics_addr,
                produce: true,
                print_blocks: args.common.print_blocks,
            },
            prometheus,
        )
    }

    pub(super) fn init(
        genesis: &Path,
        datadir: Option<PathBuf>,
        config: Option<&Path>,
    ) -> anyhow::Result<()> {
        let file = match config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let state = file.state.apply(chain_state::StateConfig::default())?;
        let genesis = ChainGenesis::load(genesis)?;
        let datadir = datadir.or(file.datadir).unwrap_or_else(default_datadir);
        let node = Node::open(NodeConfig {
            datadir: datadir.clone(),
            genesis,
            validator_key: None,
            execution: ExecutionMode::Sequential,
            state,
            pool: chain_txpool::PoolConfig::new(0, 0),
            dev_accounts: Vec::new(),
            client_version: client_version(),
        })?;
        let head = node.head();
        println!(
            "initialized {} at block {} (genesis {})",
            datadir.display(),
            head.block.number(),
            node.chain()
                .block(0)?
                .map(|b| b.block.hash())
                .unwrap_or_default()
        );
        Ok(())
    }

    fn read_key(path: &Path) -> anyhow::Result<alloy_signer_local::PrivateKeySigner> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read validator key {}", path.display()))?;
        text.trim()
            .parse::<alloy_signer_local::PrivateKeySigner>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "validator key {}: not a hex secp256k1 private key ({e})",
                    path.display()
                )
            })
    }

    pub(super) fn node(args: &NodeArgs) -> anyhow::Result<()> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        if !file.network.peers.is_empty() {
            tracing::warn!("networking is not part of this build: `network.peers` is ignored");
        }
        let datadir = args
            .common
            .datadir
            .clone()
            .or(file.datadir.clone())
            .unwrap_or_else(default_datadir);
        let state = state_config(&args.common, &file)?;
        let genesis_path = args.genesis.clone().or(file.genesis.clone());
        let genesis = match genesis_path {
            Some(path) => ChainGenesis::load(&path)?,
            None => {
                // Opening creates a database where there is none, which would fix settings
                // such as the small-storage bound before `chaind init` could choose them.
                anyhow::ensure!(
                    datadir.join("db").join("CURRENT").exists(),
                    "{} holds no chain: run `chaind init --genesis FILE` first (or give --genesis)",
                    datadir.display()
                );
                // The node's own settings: a database left empty (by a failed start) takes
                // them as the node would.
                let probe = chain_state::StateDb::open(datadir.join("db"), state.clone())
                    .with_context(|| {
                        format!(
                            "no --genesis given, and the database in {} does not open",
                            datadir.display()
                        )
                    })?;
                let store = chaind::node::chain::ChainStore::new(probe);
                let json = store.genesis_json()?.with_context(|| {
                    format!(
                        "{} holds no chain: run `chaind init --genesis FILE` first",
                        datadir.display()
                    )
                })?;
                drop(store);
                serde_json::from_slice(&json).context("stored genesis is corrupt")?
            }
        };
        let key_path = args
            .validator_key
            .clone()
            .or(file.validator.key_file.clone());
        let validator_key = key_path.as_deref().map(read_key).transpose()?;
        if let Some(key) = &validator_key {
            anyhow::ensure!(
                genesis
                    .consensus
                    .validators
                    .iter()
                    .any(|v| v.address == key.address()),
                "validator key {} is not in the genesis validator set",
                key.address()
            );
        }
        let produce = validator_key.is_some() && genesis.consensus.validators.len() == 1;
        if validator_key.is_some() && !produce {
            tracing::warn!(
                "several validators need peer-to-peer networking, which this build lacks: not producing"
            );
        }
        let prometheus = install_metrics();
        let rpc = rpc_section(&args.common, &file);
        let node = Node::open(NodeConfig {
            datadir,
            genesis,
            validator_key,
            execution: execution_mode(&args.common, &file)?,
            state,
            pool: pool_config(&args.common, &file)?,
            dev_accounts: Vec::new(),
            client_version: client_version(),
        })?;
        run(
            &node,
            &RunOptions {
                rpc: chaind::node::rpc_config(&rpc),
                metrics_addr: args.common.metrics_addr.or(file.metrics.addr),
                produce,
                print_blocks: args.common.print_blocks,
            },
            prometheus,
        )
    }
}
