//! The measured phase: [`presign`] signs every transaction up front (in parallel), then
//! [`run_measured`] paces them out over many connections while a block watcher matches
//! receipts of new heads against them, drains, and returns the [`MeasuredRun`].

use crate::{
    accounts::{Account, FeeParams, SignedTx},
    error::LoadgenError,
    progress::Progress,
    rate::{SendMode, SenderBound, classify_open_loop},
    rpc::{BlockHeader, NodeRpc, ObservedHead},
    tracker::{InclusionTracker, TrackerSummary},
    workload::WorkloadPlan,
};
use alloy_primitives::Bytes;
use rayon::prelude::*;
use std::{
    ops::Range,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
    time::Instant,
};

/// Signs transactions `0..count` of `plan`, each with its sender's next nonces after
/// `accounts[_].nonce`. Runs on the current rayon pool.
pub fn presign(
    plan: &WorkloadPlan,
    accounts: &[Account],
    count: u64,
    chain_id: u64,
    fees: FeeParams,
) -> Result<Vec<SignedTx>, LoadgenError> {
    if accounts.len() != plan.accounts {
        return Err(LoadgenError::Config(format!(
            "plan for {} accounts, {} given",
            plan.accounts,
            accounts.len()
        )));
    }
    (0..count)
        .into_par_iter()
        .map(|i| {
            let call = plan.call(i).ok_or_else(|| {
                LoadgenError::Config(format!("workload {} lacks its contracts", plan.kind))
            })?;
            let account = &accounts[plan.sender(i)];
            Ok(account.sign(&call, account.nonce + plan.nonce_offset(i), chain_id, fees))
        })
        .collect()
}

/// How the measured phase runs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Open or closed loop.
    pub mode: SendMode,
    /// How long to send.
    pub duration: Duration,
    /// Transactions per request.
    pub batch: usize,
    /// Requests each connection may have unanswered at once.
    pub requests_per_connection: usize,
    /// Longest wait after sending for accepted transactions to be included.
    pub drain: Duration,
    /// Show the live line.
    pub progress: bool,
}

/// How sending went.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SendStats {
    /// Target rate (open loop).
    pub target_tps: Option<f64>,
    /// Seconds from the first send to the last dispatch.
    pub elapsed_s: f64,
    /// Transactions sent.
    pub sent: u64,
    /// `sent / elapsed_s`.
    pub submit_tps: f64,
    /// Seconds the dispatcher waited for a connection with a free request slot.
    pub blocked_on_connections_s: f64,
    /// Seconds the dispatcher waited for the closed-loop window.
    pub blocked_on_window_s: f64,
    /// How late the last dispatch was on the open-loop schedule, in seconds.
    pub final_lag_s: f64,
    /// What limited the rate.
    pub bound: SenderBound,
    /// Interrupted (Ctrl-C) before the duration.
    pub interrupted: bool,
}

/// How the drain went.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DrainStats {
    /// Seconds from the end of sending until nothing was awaited (or the limit).
    pub elapsed_s: f64,
    /// The limit was reached with accepted transactions still not included.
    pub timed_out: bool,
}

/// Everything the measured phase found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MeasuredRun {
    /// The head when the phase started.
    pub start_block: u64,
    /// The last block examined.
    pub end_block: u64,
    /// Sending.
    pub send: SendStats,
    /// Draining.
    pub drain: DrainStats,
    /// Inclusion accounting.
    pub inclusion: TrackerSummary,
    /// Blocks whose heads were not announced and were fetched by number instead.
    pub blocks_fetched_by_number: u64,
    /// Whether heads came from polling because the subscription was unavailable.
    pub polled_heads: bool,
}

type SharedTracker = Arc<Mutex<InclusionTracker>>;

fn lock(tracker: &Mutex<InclusionTracker>) -> MutexGuard<'_, InclusionTracker> {
    // A panic while holding the lock cannot leave the counters half-updated in a way that
    // matters more than losing the whole run, so a poisoned lock is still used.
    tracker
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often the progress line and the drain check look at the tracker.
const TICK: Duration = Duration::from_millis(250);
/// How often heads are polled when there is no subscription.
const POLL_HEADS_EVERY: Duration = Duration::from_millis(100);
/// Retries of `eth_getBlockReceipts` for a block whose head was announced before its receipts
/// became readable.
const RECEIPT_RETRIES: u32 = 50;

/// Sends `txs` through `senders` (one per connection) as `config` says, watching blocks through
/// `watcher` (a WebSocket connection, for newHeads), until the duration is over, the
/// transactions run out or `interrupt` is set, then drains.
pub async fn run_measured<R: NodeRpc>(
    senders: Vec<Arc<R>>,
    watcher: Arc<R>,
    txs: Arc<Vec<SignedTx>>,
    config: &RunConfig,
    interrupt: Arc<AtomicBool>,
) -> Result<MeasuredRun, LoadgenError> {
    if senders.is_empty() || config.batch == 0 || config.requests_per_connection == 0 {
        return Err(LoadgenError::Config(
            "need at least one connection, batch and request slot".into(),
        ));
    }
    if let SendMode::Closed { window } = config.mode
        && window < config.batch
    {
        return Err(LoadgenError::Config(format!(
            "--max-inflight {window} is smaller than --batch {}",
            config.batch
        )));
    }
    let start_block = watcher.block_number().await?;
    let (heads, polled_heads) = match watcher.subscribe_heads().await {
        Ok(heads) => (Some(heads), false),
        Err(error) => {
            tracing::warn!(%error, "no newHeads subscription; polling eth_blockNumber instead");
            (None, true)
        }
    };
    let start = Instant::now();
    let tracker: SharedTracker = Arc::new(Mutex::new(InclusionTracker::new(
        txs.iter().map(|t| t.hash).collect(),
        start,
    )));
    let window = match config.mode {
        SendMode::Closed { window } => Some(Arc::new(Semaphore::new(window))),
        SendMode::Open(_) => None,
    };

    let (stop_watcher, watcher_stopped) = watch::channel(false);
    let watcher_task = tokio::spawn(watch_blocks(
        Arc::clone(&watcher),
        Arc::clone(&tracker),
        heads,
        start_block,
        window.clone(),
        watcher_stopped,
    ));

    let mut progress = Progress::new(config.duration, config.progress);
    let send = dispatch(
        &senders,
        &txs,
        &tracker,
        config,
        window.as_ref(),
        &interrupt,
        &mut progress,
    )
    .await;

    let drain_start = Instant::now();
    let mut timed_out = false;
    loop {
        let (awaiting, live) = {
            let t = lock(&tracker);
            (t.awaiting_inclusion(), t.live(Instant::now()))
        };
        progress.update("draining", start.elapsed(), &live);
        if awaiting == 0 {
            break;
        }
        if drain_start.elapsed() >= config.drain || interrupt.load(Ordering::Relaxed) {
            timed_out = true;
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    let drain = DrainStats {
        elapsed_s: drain_start.elapsed().as_secs_f64(),
        timed_out,
    };
    progress.finish();

    // The watcher may be behind the chain; it stops, then every block up to the head is read.
    let _ = stop_watcher.send(true);
    let watched = watcher_task.await.map_err(|e| LoadgenError::Transport {
        method: "newHeads",
        message: format!("block watcher panicked: {e}"),
    })??;
    let head = watcher.block_number().await?;
    let mut last_block = watched.last_block;
    let caught_up = catch_up_to(
        &*watcher,
        &tracker,
        &mut last_block,
        head,
        Instant::now(),
        None,
        None,
    )
    .await?;

    let inclusion = Arc::try_unwrap(tracker)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .map_err(|_| LoadgenError::Config("a sender still holds the tracker".into()))?
        .finish();
    Ok(MeasuredRun {
        start_block,
        end_block: last_block,
        send,
        drain,
        inclusion,
        blocks_fetched_by_number: watched.fetched_by_number + caught_up,
        polled_heads,
    })
}

async fn dispatch<R: NodeRpc>(
    senders: &[Arc<R>],
    txs: &Arc<Vec<SignedTx>>,
    tracker: &SharedTracker,
    config: &RunConfig,
    window: Option<&Arc<Semaphore>>,
    interrupt: &AtomicBool,
    progress: &mut Progress,
) -> SendStats {
    let start = lock(tracker).start();
    let mut connections = Vec::with_capacity(senders.len());
    let mut connection_tasks = JoinSet::new();
    for rpc in senders {
        // Capacity 1: a connection whose request slots are all taken pushes back at once.
        let (sender, receiver) = mpsc::channel::<Range<usize>>(1);
        connections.push(sender);
        connection_tasks.spawn(connection_loop(
            Arc::clone(rpc),
            Arc::clone(txs),
            Arc::clone(tracker),
            receiver,
            config.requests_per_connection,
            window.cloned(),
        ));
    }

    let total = txs.len();
    let mut blocked_on_connections = Duration::ZERO;
    let mut blocked_on_window = Duration::ZERO;
    let mut final_lag = Duration::ZERO;
    let mut sent = 0u64;
    let mut interrupted = false;
    let mut next_tick = start + TICK;
    let mut batch_start = 0;
    let mut batch_number = 0usize;
    while batch_start < total {
        if interrupt.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let range = batch_start..(batch_start + config.batch).min(total);
        match config.mode {
            SendMode::Open(schedule) => {
                let due = schedule.due(range.end as u64 - 1);
                if due > config.duration {
                    break;
                }
                let due_at = start + due;
                let now = Instant::now();
                if now < due_at {
                    final_lag = Duration::ZERO;
                    tokio::time::sleep_until(due_at).await;
                } else {
                    final_lag = now - due_at;
                }
            }
            SendMode::Closed { .. } => {
                if start.elapsed() >= config.duration {
                    break;
                }
                if let Some(window) = window {
                    let waited = Instant::now();
                    let acquired =
                        acquire_window(window, range.len(), start + config.duration, interrupt)
                            .await;
                    blocked_on_window += waited.elapsed();
                    if !acquired {
                        interrupted = interrupt.load(Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        let waited = Instant::now();
        let connection = &connections[batch_number % connections.len()];
        if connection.send(range.clone()).await.is_err() {
            break;
        }
        blocked_on_connections += waited.elapsed();
        sent += range.len() as u64;
        batch_start = range.end;
        batch_number += 1;
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            let live = lock(tracker).live(now);
            progress.update("sending", now - start, &live);
        }
    }
    let elapsed = start.elapsed();
    drop(connections);
    // Every request sent is answered (or fails) before the drain starts.
    while connection_tasks.join_next().await.is_some() {}

    let submit_tps = sent as f64 / elapsed.as_secs_f64().max(1e-9);
    let (target_tps, bound) = match config.mode {
        SendMode::Open(schedule) => {
            let target = schedule.due_by(config.duration) / config.duration.as_secs_f64().max(1e-9);
            let bound = if !interrupted && (total as u64) < schedule.total_over(config.duration) {
                SenderBound::Exhausted
            } else {
                classify_open_loop(config.duration, final_lag, blocked_on_connections)
            };
            (Some(target), bound)
        }
        SendMode::Closed { .. } => {
            let exhausted = !interrupted && batch_start >= total && elapsed < config.duration;
            (
                None,
                if exhausted {
                    SenderBound::Exhausted
                } else {
                    SenderBound::Window
                },
            )
        }
    };
    SendStats {
        target_tps,
        elapsed_s: elapsed.as_secs_f64(),
        sent,
        submit_tps,
        blocked_on_connections_s: blocked_on_connections.as_secs_f64(),
        blocked_on_window_s: blocked_on_window.as_secs_f64(),
        final_lag_s: final_lag.as_secs_f64(),
        bound,
        interrupted,
    }
}

/// Takes `count` slots of the closed-loop window, giving up at `deadline` or on `interrupt`:
/// lost transactions never give their slots back, so the wait must be bounded.
async fn acquire_window(
    window: &Semaphore,
    count: usize,
    deadline: Instant,
    interrupt: &AtomicBool,
) -> bool {
    loop {
        let wake = deadline.min(Instant::now() + TICK);
        match tokio::time::timeout_at(wake, window.acquire_many(count as u32)).await {
            Ok(Ok(permits)) => {
                permits.forget();
                return true;
            }
            // Closed: never happens, the window lives as long as the run.
            Ok(Err(_)) => return false,
            Err(_) if Instant::now() >= deadline || interrupt.load(Ordering::Relaxed) => {
                return false;
            }
            Err(_) => {}
        }
    }
}

/// One connection: takes batches (ranges of `txs`) and sends each as one request, with up to
/// `slots` requests unanswered at once. Returns when its channel closes and all its requests
/// have been answered.
async fn connection_loop<R: NodeRpc>(
    rpc: Arc<R>,
    txs: Arc<Vec<SignedTx>>,
    tracker: SharedTracker,
    mut batches: mpsc::Receiver<Range<usize>>,
    slots: usize,
    window: Option<Arc<Semaphore>>,
) {
    let slots = Arc::new(Semaphore::new(slots));
    let mut requests = JoinSet::new();
    while let Some(range) = batches.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (rpc, txs, tracker, window) = (
            Arc::clone(&rpc),
            Arc::clone(&txs),
            Arc::clone(&tracker),
            window.clone(),
        );
        requests.spawn(async move {
            send_batch(&*rpc, &txs, &tracker, range, window.as_deref()).await;
            drop(slot);
        });
        // Reap finished requests so the set does not grow with the run.
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
}

async fn send_batch<R: NodeRpc>(
    rpc: &R,
    txs: &[SignedTx],
    tracker: &Mutex<InclusionTracker>,
    range: Range<usize>,
    window: Option<&Semaphore>,
) {
    let raws: Vec<Bytes> = txs[range.clone()].iter().map(|t| t.raw.clone()).collect();
    lock(tracker).mark_submitted(range.clone(), Instant::now());
    let result = rpc.send_raw_batch(&raws).await;
    let now = Instant::now();
    let released = match result {
        Ok(outcomes) if outcomes.len() == range.len() => {
            lock(tracker).record_outcomes(range, &outcomes, now)
        }
        Ok(outcomes) => lock(tracker).record_transport_error(
            range.clone(),
            &format!("{} answers to a batch of {}", outcomes.len(), range.len()),
        ),
        Err(error) => lock(tracker).record_transport_error(range, &error.to_string()),
    };
    if let Some(window) = window {
        window.add_permits(released);
    }
}

struct Watched {
    last_block: u64,
    fetched_by_number: u64,
}

/// Follows new heads (or polls when `heads` is `None`) and records every block after
/// `last_block` in the tracker, until `stop` turns true.
async fn watch_blocks<R: NodeRpc>(
    rpc: Arc<R>,
    tracker: SharedTracker,
    mut heads: Option<mpsc::Receiver<ObservedHead>>,
    mut last_block: u64,
    window: Option<Arc<Semaphore>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Watched, LoadgenError> {
    let mut fetched_by_number = 0;
    loop {
        let next: Option<ObservedHead> = match heads.as_mut() {
            Some(receiver) => tokio::select! {
                _ = stop.changed() => return Ok(Watched { last_block, fetched_by_number }),
                head = receiver.recv() => {
                    if head.is_none() {
                        tracing::warn!("newHeads subscription ended; polling eth_blockNumber instead");
                        heads = None;
                    }
                    head
                }
            },
            None => tokio::select! {
                _ = stop.changed() => return Ok(Watched { last_block, fetched_by_number }),
                () = tokio::time::sleep(POLL_HEADS_EVERY) => None,
            },
        };
        let (head_number, observed, header) = match next {
            Some((header, observed)) => (header.number, observed, Some(header)),
            None => match rpc.block_number().await {
                Ok(number) => (number, Instant::now(), None),
                Err(error) => {
                    tracing::warn!(%error, "eth_blockNumber failed");
                    continue;
                }
            },
        };
        if head_number <= last_block {
            continue;
        }
        // Blocks the subscription skipped are fetched by number and stamped with this arrival.
        let read = catch_up_to(
            &*rpc,
            &tracker,
            &mut last_block,
            head_number,
            observed,
            header,
            window.as_deref(),
        )
        .await;
        match read {
            Ok(by_number) => fetched_by_number += by_number,
            Err(error) => {
                tracing::warn!(%error, "could not read block {}; retrying with the next head", last_block + 1)
            }
        }
    }
}

/// Records blocks `*last_block+1..=head` observed at `observed`, advancing `*last_block` past
/// each one recorded (so that a failure part-way never records a block twice). `head_header`
/// is the announced header of `head`, if any; the others are fetched by number. Returns how
/// many headers were fetched by number.
async fn catch_up_to<R: NodeRpc>(
    rpc: &R,
    tracker: &Mutex<InclusionTracker>,
    last_block: &mut u64,
    head: u64,
    observed: Instant,
    head_header: Option<BlockHeader>,
    window: Option<&Semaphore>,
) -> Result<u64, LoadgenError> {
    let mut fetched_by_number = 0;
    while *last_block < head {
        let number = *last_block + 1;
        let header = match &head_header {
            Some(h) if h.number == number => h.clone(),
            _ => {
                fetched_by_number += 1;
                rpc.header(number)
                    .await?
                    .ok_or_else(|| LoadgenError::BadResponse {
                        method: "eth_getBlockByNumber",
                        message: format!("block {number} not found although head is {head}"),
                    })?
            }
        };
        let receipts = block_receipts(rpc, number).await?;
        let update = lock(tracker).record_block(&header, &receipts, observed);
        if let Some(window) = window {
            window.add_permits(update.released);
        }
        *last_block = number;
    }
    Ok(fetched_by_number)
}

async fn block_receipts<R: NodeRpc>(
    rpc: &R,
    number: u64,
) -> Result<Vec<crate::rpc::TxReceipt>, LoadgenError> {
    for _ in 0..RECEIPT_RETRIES {
        if let Some(receipts) = rpc.block_receipts(number).await? {
            return Ok(receipts);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(LoadgenError::BadResponse {
        method: "eth_getBlockReceipts",
        message: format!("no receipts for block {number}"),
    })
}
