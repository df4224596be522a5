//! A whole load run from [`LoadOptions`] to [`Report`]: connect, set up, pre-sign, measure.
//! [`run_load`] does it over JSON-RPC; [`run_load_with`] over any [`NodeRpc`].

use crate::{
    accounts::{Account, FeeParams, loadgen_accounts},
    config::{LoadOptions, Pace},
    error::LoadgenError,
    report::{PresignStats, Report, RunSettings},
    rpc::{JsonRpcNode, NodeRpc, TransportKind, ws_url_of},
    runner::{RunConfig, presign, run_measured},
    setup::{SetupConfig, run_setup},
    workload::{LoadKind, WorkloadPlan},
};
use alloy_primitives::U256;
use std::sync::{Arc, atomic::AtomicBool};
use tokio::time::Instant;

const WEI_PER_ETH: u128 = 1_000_000_000_000_000_000;

/// Runs `options` against the node at `options.rpc`. Setting `interrupt` stops sending early
/// (the run still drains and reports).
pub async fn run_load(
    options: &LoadOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<Report, LoadgenError> {
    options.validate()?;
    let mut senders = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        senders.push(Arc::new(
            JsonRpcNode::connect(&options.rpc, options.transport).await?,
        ));
    }
    let ws_url = options
        .ws_url
        .clone()
        .unwrap_or_else(|| ws_url_of(&options.rpc));
    let watcher = Arc::new(JsonRpcNode::connect(&ws_url, TransportKind::Ws).await?);
    run_load_with(options, senders, watcher, interrupt).await
}

/// Runs `options` with `senders` (one per connection; the first also does the setup) and
/// `watcher` (for heads and receipts).
pub async fn run_load_with<R: NodeRpc>(
    options: &LoadOptions,
    senders: Vec<Arc<R>>,
    watcher: Arc<R>,
    interrupt: Arc<AtomicBool>,
) -> Result<Report, LoadgenError> {
    options.validate()?;
    let control = Arc::clone(
        senders
            .first()
            .ok_or_else(|| LoadgenError::Config("no connections".into()))?,
    );
    let chain_id = control.chain_id().await?;
    let fees = FeeParams::from_gwei(options.max_fee_gwei, options.priority_fee_gwei);
    let head = control.block_number().await?;
    if let Some(base_fee) = control.header(head).await?.and_then(|h| h.base_fee_per_gas)
        && u128::from(base_fee) * 2 > fees.max_fee_per_gas
    {
        tracing::warn!(
            base_fee,
            max_fee = fees.max_fee_per_gas,
            "--max-fee-gwei is below twice the base fee"
        );
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .thread_name(|i| format!("loadgen-sign-{i}"))
        .build()
        .map_err(|e| LoadgenError::Config(format!("signing threads: {e}")))?;
    let pool = Arc::new(pool);
    let (seed, count) = (options.seed, options.accounts);
    let mut accounts = on_pool(&pool, move || loadgen_accounts(seed, count)).await??;
    tracing::info!(
        accounts = accounts.len(),
        chain_id,
        "derived load-test accounts"
    );

    let faucet = options.faucet_key.map(Account::from_secret).transpose()?;
    let setup_config = SetupConfig {
        kind: options.workload,
        pools: options.pools(),
        faucet,
        fund_wei: U256::from(u128::from(options.fund_eth) * WEI_PER_ETH),
        chain_depth: options.setup_depth,
        batch: options.batch,
        timeout: options.setup_timeout,
        fees,
        chain_id,
    };
    let setup = run_setup(&control, &mut accounts, &setup_config).await?;
    tracing::info!(
        seconds = setup.elapsed_s,
        transactions = setup.transactions,
        "setup done"
    );

    let plan = WorkloadPlan {
        kind: options.workload,
        accounts: accounts.len(),
        recipients: options.recipients(),
        contracts: setup.contracts.clone(),
        seed: options.seed,
    };
    let total = options.presign_count();
    let signing_started = Instant::now();
    let accounts = Arc::new(accounts);
    let signing_accounts = Arc::clone(&accounts);
    let txs = on_pool(&pool, move || {
        presign(&plan, &signing_accounts, total, chain_id, fees)
    })
    .await??;
    let presign_stats = PresignStats {
        transactions: txs.len() as u64,
        elapsed_s: signing_started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        transactions = txs.len(),
        seconds = presign_stats.elapsed_s,
        "pre-signed"
    );

    let run_config = RunConfig {
        mode: options.mode(),
        duration: options.duration,
        batch: options.batch,
        requests_per_connection: options.requests_per_connection,
        drain: options.drain,
        progress: options.progress,
    };
    let run = run_measured(senders, watcher, Arc::new(txs), &run_config, interrupt).await?;
    Ok(Report::new(
        settings(options),
        chain_id,
        setup,
        presign_stats,
        run,
    ))
}

/// Runs CPU-bound `work` on the signing pool without blocking the async workers.
async fn on_pool<T: Send + 'static>(
    pool: &Arc<rayon::ThreadPool>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LoadgenError> {
    let pool = Arc::clone(pool);
    tokio::task::spawn_blocking(move || pool.install(work))
        .await
        .map_err(|e| LoadgenError::Config(format!("signing task failed: {e}")))
}

fn settings(options: &LoadOptions) -> RunSettings {
    let (mode, rate_tps, ramp_s, max_inflight) = match options.pace {
        Pace::Rate { tps, ramp } => ("open", Some(tps), ramp.map(|r| r.as_secs_f64()), None),
        Pace::Window(window) => ("closed", None, None, Some(window)),
    };
    RunSettings {
        rpc: options.rpc.clone(),
        workload: options.workload.to_string(),
        accounts: options.accounts,
        recipients: (options.workload != LoadKind::Amm).then(|| options.recipients()),
        pools: options.workload.needs_pools().then(|| options.pools()),
        seed: options.seed,
        mode: mode.to_owned(),
        rate_tps,
        ramp_s,
        max_inflight,
        duration_s: options.duration.as_secs_f64(),
        threads: options.threads,
        connections: options.connections,
        batch: options.batch,
        transport: match options.transport {
            TransportKind::Http => "http",
            TransportKind::Ws => "ws",
        }
        .to_owned(),
        max_fee_gwei: options.max_fee_gwei,
        priority_fee_gwei: options.priority_fee_gwei,
    }
}
