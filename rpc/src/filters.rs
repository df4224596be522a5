//! Polling filters (`eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`): installed filters collect what happens between two polls and are
//! removed after `filter_timeout` without a poll, as geth does.

use crate::{
    api::{ChainApi, HeadEvent},
    error::{CallError, CallResult},
    logs::LogMatcher,
    wire::FilterCriteria,
};
use alloy_primitives::B256;
use alloy_rpc_types_eth::Log as RpcLog;
use parking_lot::Mutex;
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::broadcast::error::RecvError;

/// A fresh geth-style identifier: "0x" and up to 32 hex digits without leading zeros, as geth
/// makes them. Clients that hold ids as numbers (alloy's `U256`) send them back that way, so a
/// zero-padded id would not be found again.
pub(crate) fn new_id() -> String {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return format!("0x{id:x}");
        }
    }
}

/// `id` as [`new_id`] writes it: lowercase, without leading zeros after "0x" (clients may pad
/// or uppercase a quantity they send back).
fn canonical_id(id: &str) -> String {
    let digits = id
        .strip_prefix("0x")
        .or_else(|| id.strip_prefix("0X"))
        .unwrap_or(id)
        .trim_start_matches('0');
    format!("0x{}", digits.to_ascii_lowercase())
}

enum Collected {
    Blocks(Vec<B256>),
    PendingTransactions(Vec<B256>),
    Logs {
        criteria: FilterCriteria,
        matcher: LogMatcher,
        logs: Vec<RpcLog>,
    },
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Collected::Blocks(v) | Collected::PendingTransactions(v) => v.len(),
            Collected::Logs { logs, .. } => logs.len(),
        }
    }
}

struct InstalledFilter {
    collected: Collected,
    last_poll: Instant,
    /// Head when the filter was installed: head events for blocks up to it were published
    /// before the filter existed and are skipped, until a reorg (a removed block) shows that
    /// blocks at those heights are being replaced.
    skip_through: Option<u64>,
}

impl InstalledFilter {
    fn skips(&mut self, event: &HeadEvent) -> bool {
        if event.removed {
            self.skip_through = None;
            return false;
        }
        self.skip_through
            .is_some_and(|head| event.block.block.number() <= head)
    }
}

/// The installed polling filters.
pub(crate) struct FilterManager {
    filters: Mutex<HashMap<String, InstalledFilter>>,
    timeout: Duration,
    max_filters: usize,
    max_backlog: usize,
}

/// What a poll returns.
pub(crate) enum FilterChanges {
    Hashes(Vec<B256>),
    Logs(Vec<RpcLog>),
}

impl FilterChanges {
    pub(crate) fn into_json(self) -> Value {
        match self {
            FilterChanges::Hashes(h) => serde_json::to_value(h).unwrap_or(Value::Null),
            FilterChanges::Logs(l) => serde_json::to_value(l).unwrap_or(Value::Null),
        }
    }
}

fn filter_not_found() -> CallError {
    CallError::server("filter not found")
}

impl FilterManager {
    pub(crate) fn new(timeout: Duration, max_filters: usize, max_backlog: usize) -> Self {
        Self {
            filters: Mutex::new(HashMap::new()),
            timeout,
            max_filters,
            max_backlog,
        }
    }

    fn install(&self, collected: Collected, head: u64) -> CallResult<String> {
        let mut filters = self.filters.lock();
        if filters.len() >= self.max_filters {
            return Err(CallError::limit(format!(
                "too many filters installed (limit {})",
                self.max_filters
            )));
        }
        let id = new_id();
        filters.insert(
            id.clone(),
            InstalledFilter {
                collected,
                last_poll: Instant::now(),
                skip_through: Some(head),
            },
        );
        Ok(id)
    }

    /// `eth_newBlockFilter`.
    pub(crate) fn new_block_filter(&self, head: u64) -> CallResult<String> {
        self.install(Collected::Blocks(Vec::new()), head)
    }

    /// `eth_newPendingTransactionFilter`.
    pub(crate) fn new_pending_transaction_filter(&self, head: u64) -> CallResult<String> {
        self.install(Collected::PendingTransactions(Vec::new()), head)
    }

    /// `eth_newFilter`.
    pub(crate) fn new_log_filter(
        &self,
        criteria: FilterCriteria,
        matcher: LogMatcher,
        head: u64,
    ) -> CallResult<String> {
        self.install(
            Collected::Logs {
                criteria,
                matcher,
                logs: Vec::new(),
            },
            head,
        )
    }

    /// `eth_uninstallFilter`.
    pub(crate) fn uninstall(&self, id: &str) -> bool {
        self.filters.lock().remove(&canonical_id(id)).is_some()
    }

    /// `eth_getFilterChanges`: what the filter collected since the last poll.
    pub(crate) fn changes(&self, id: &str) -> CallResult<FilterChanges> {
        let mut filters = self.filters.lock();
        let filter = filters
            .get_mut(&canonical_id(id))
            .ok_or_else(filter_not_found)?;
        filter.last_poll = Instant::now();
        Ok(match &mut filter.collected {
            Collected::Blocks(h) | Collected::PendingTransactions(h) => {
                FilterChanges::Hashes(std::mem::take(h))
            }
            Collected::Logs { logs, .. } => FilterChanges::Logs(std::mem::take(logs)),
        })
    }

    /// The criteria of a log filter (`eth_getFilterLogs`); polling it keeps it alive.
    pub(crate) fn log_criteria(&self, id: &str) -> CallResult<FilterCriteria> {
        let mut filters = self.filters.lock();
        let filter = filters
            .get_mut(&canonical_id(id))
            .ok_or_else(filter_not_found)?;
        filter.last_poll = Instant::now();
        match &filter.collected {
            Collected::Logs { criteria, .. } => Ok(criteria.clone()),
            _ => Err(filter_not_found()),
        }
    }

    /// Removes filters not polled within the timeout.
    pub(crate) fn expire(&self, now: Instant) {
        self.filters
            .lock()
            .retain(|_, f| now.duration_since(f.last_poll) < self.timeout);
    }

    /// Records a head event in every block and log filter.
    pub(crate) fn on_head(&self, event: &HeadEvent) {
        let mut filters = self.filters.lock();
        let max = self.max_backlog;
        filters.retain(|id, filter| {
            if filter.skips(event) {
                return true;
            }
            match &mut filter.collected {
                Collected::Blocks(hashes) => {
                    if !event.removed {
                        hashes.push(event.block.block.hash());
                    }
                }
                Collected::Logs { matcher, logs, .. } => {
                    if matcher.may_match(&event.block.block.header().logs_bloom) {
                        matcher.block_logs(&event.block, &event.receipts, event.removed, logs);
                    }
                }
                Collected::PendingTransactions(_) => {}
            }
            keep_within_backlog(id, &filter.collected, max)
        });
    }

    /// Records a transaction entering the pool in every pending-transaction filter.
    pub(crate) fn on_pending(&self, hash: B256) {
        let mut filters = self.filters.lock();
        let max = self.max_backlog;
        filters.retain(|id, filter| {
            if let Collected::PendingTransactions(hashes) = &mut filter.collected {
                hashes.push(hash);
            }
            keep_within_backlog(id, &filter.collected, max)
        });
    }

    /// Removes every filter of a kind that missed events (its feed lagged).
    fn drop_lagged(&self, heads: bool) {
        let mut filters = self.filters.lock();
        filters.retain(|_, f| match f.collected {
            Collected::Blocks(_) | Collected::Logs { .. } => !heads,
            Collected::PendingTransactions(_) => heads,
        });
    }

    /// Number of installed filters.
    pub(crate) fn len(&self) -> usize {
        self.filters.lock().len()
    }
}

fn keep_within_backlog(id: &str, collected: &Collected, max: usize) -> bool {
    if collected.len() > max {
        tracing::warn!(target: "rpc", filter = id, "polling filter removed: more than {max} undelivered items");
        false
    } else {
        true
    }
}

/// Feeds the filters from the node's head and pool channels and expires idle filters, until
/// `shutdown` fires.
pub(crate) async fn run_filter_feed<A: ChainApi>(
    api: Arc<A>,
    filters: Arc<FilterManager>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut heads = api.subscribe_heads();
    let mut pending = api.subscribe_pending_transactions();
    let period = (filters.timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
    let mut expiry = tokio::time::interval(period);
    let (mut heads_open, mut pending_open) = (true, true);
    loop {
        tokio::select! {
            event = heads.recv(), if heads_open => match event {
                Ok(event) => filters.on_head(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(target: "rpc", missed, "block and log filters missed head events; removed");
                    filters.drop_lagged(true);
                }
                Err(RecvError::Closed) => heads_open = false,
            },
            hash = pending.recv(), if pending_open => match hash {
                Ok(hash) => filters.on_pending(hash),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(target: "rpc", missed, "pending transaction filters missed events; removed");
                    filters.drop_lagged(false);
                }
                Err(RecvError::Closed) => pending_open = false,
            },
            _ = expiry.tick() => filters.expire(Instant::now()),
            _ = shutdown.changed() => break,
        }
    }
}
