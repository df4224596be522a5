//! `eth_subscribe` / `eth_unsubscribe` over WebSocket: `newHeads`, `logs` (reorged-out logs
//! again with `removed: true`) and `newPendingTransactions` (hashes, or full objects with
//! `true`).
//!
//! The node never waits for a subscriber: it publishes on broadcast channels, and each
//! subscription forwards from its own receiver into its connection's bounded buffer. A
//! subscriber whose receiver lags (it fell more than the channel's capacity behind) or whose
//! buffer stays full for `subscription_send_timeout` is dropped; the node and the other
//! subscribers carry on.

use crate::{
    api::{ChainApi, HeadEvent},
    convert::{pending_transaction, rpc_header},
    error::{CallError, CallResult, code},
    filters::new_id,
    logs::LogMatcher,
    methods::{Ctx, record_call},
    wire::{FilterCriteria, ParamReader},
};
use alloy_primitives::B256;
use alloy_rpc_types_eth::Log as RpcLog;
use jsonrpsee::{
    RpcModule,
    core::{
        RegisterMethodError, SubscriptionError,
        server::{SendTimeoutError, SubscriptionCloseResponse, SubscriptionSink},
    },
    types::{ErrorObjectOwned, SubscriptionId},
};
use serde::Serialize;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Subscription ids in geth's format ("0x" and hex digits without leading zeros).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HexIdProvider;

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        SubscriptionId::Str(new_id().into())
    }
}

enum Kind {
    NewHeads,
    Logs(LogMatcher),
    PendingTransactions { full: bool },
}

fn parse_kind<A: ChainApi>(ctx: &Ctx<A>, raw: Option<&str>) -> CallResult<Kind> {
    let mut p = ParamReader::new(raw)?;
    let name: String = p.required()?;
    let kind = match name.as_str() {
        "newHeads" => Kind::NewHeads,
        "logs" => {
            let criteria: FilterCriteria = p.optional()?.unwrap_or_default();
            Kind::Logs(LogMatcher::new(&criteria, &ctx.config)?)
        }
        "newPendingTransactions" => Kind::PendingTransactions {
            full: p.optional::<bool>()?.unwrap_or(false),
        },
        other => {
            return Err(CallError::new(
                code::METHOD_NOT_FOUND,
                format!("no {other:?} subscription in eth namespace"),
            ));
        }
    };
    p.finish()?;
    Ok(kind)
}

/// Registers `eth_subscribe`, its notifications `eth_subscription`, and `eth_unsubscribe`.
pub(crate) fn register<A: ChainApi>(
    module: &mut RpcModule<Ctx<A>>,
) -> Result<(), RegisterMethodError> {
    module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, ctx, _| async move {
            let started = Instant::now();
            let kind = match parse_kind(&ctx, params.as_str()) {
                Ok(kind) => kind,
                Err(error) => {
                    record_call("eth_subscribe", started, false);
                    pending.reject(ErrorObjectOwned::from(error)).await;
                    return SubscriptionCloseResponse::None;
                }
            };
            record_call("eth_subscribe", started, true);
            let timeout = ctx.config.subscription_send_timeout;
            // Subscribe to the node before accepting, so that nothing published after the
            // client got its id is missed.
            match kind {
                Kind::NewHeads | Kind::Logs(_) => {
                    let heads = ctx.api.subscribe_heads();
                    let Ok(sink) = pending.accept().await else {
                        return SubscriptionCloseResponse::None;
                    };
                    let matcher = match kind {
                        Kind::Logs(matcher) => Some(matcher),
                        _ => None,
                    };
                    forward_heads(sink, heads, matcher, timeout).await
                }
                Kind::PendingTransactions { full } => {
                    let hashes = ctx.api.subscribe_pending_transactions();
                    let Ok(sink) = pending.accept().await else {
                        return SubscriptionCloseResponse::None;
                    };
                    forward_pending(&ctx, sink, hashes, full, timeout).await
                }
            }
        },
    )?;
    Ok(())
}

/// Why a subscription ended.
enum End {
    /// The client unsubscribed or the connection closed.
    Closed,
    /// The client did not read for `subscription_send_timeout`.
    TooSlow,
    /// The node's channel overtook this subscriber by this many events.
    Lagged(u64),
}

impl End {
    fn into_response(self, kind: &'static str) -> SubscriptionCloseResponse {
        match self {
            End::Closed => SubscriptionCloseResponse::None,
            End::TooSlow => {
                dropped(kind, "send timeout");
                // The buffer is full: a closing notification could not be delivered either.
                SubscriptionCloseResponse::None
            }
            End::Lagged(missed) => {
                dropped(kind, "lagged");
                SubscriptionCloseResponse::NotifErr(SubscriptionError::from(format!(
                    "subscriber too slow: {missed} events missed, subscription closed"
                )))
            }
        }
    }
}

fn dropped(kind: &'static str, reason: &'static str) {
    tracing::debug!(target: "rpc", kind, reason, "slow subscriber dropped");
    metrics::counter!("rpc_subscriptions_dropped_total", "kind" => kind, "reason" => reason)
        .increment(1);
}

async fn send<T: Serialize>(
    sink: &SubscriptionSink,
    item: &T,
    timeout: Duration,
) -> Result<(), End> {
    let raw = serde_json::value::to_raw_value(item).map_err(|_| End::Closed)?;
    match sink.send_timeout(raw, timeout).await {
        Ok(()) => Ok(()),
        Err(SendTimeoutError::Timeout(_)) => Err(End::TooSlow),
        Err(SendTimeoutError::Closed(_)) => Err(End::Closed),
    }
}

async fn next<T: Clone>(sink: &SubscriptionSink, rx: &mut Receiver<T>) -> Result<T, End> {
    tokio::select! {
        _ = sink.closed() => Err(End::Closed),
        item = rx.recv() => match item {
            Ok(item) => Ok(item),
            Err(RecvError::Lagged(missed)) => Err(End::Lagged(missed)),
            Err(RecvError::Closed) => Err(End::Closed),
        },
    }
}

async fn forward_heads(
    sink: SubscriptionSink,
    mut heads: Receiver<HeadEvent>,
    matcher: Option<LogMatcher>,
    timeout: Duration,
) -> SubscriptionCloseResponse {
    let kind = if matcher.is_some() {
        "logs"
    } else {
        "newHeads"
    };
    let Err(end) = pump_heads(&sink, &mut heads, matcher.as_ref(), timeout).await;
    end.into_response(kind)
}

async fn pump_heads(
    sink: &SubscriptionSink,
    heads: &mut Receiver<HeadEvent>,
    matcher: Option<&LogMatcher>,
    timeout: Duration,
) -> Result<std::convert::Infallible, End> {
    let mut logs: Vec<RpcLog> = Vec::new();
    loop {
        let event = next(sink, heads).await?;
        match matcher {
            None if !event.removed => send(sink, &rpc_header(&event.block, false), timeout).await?,
            None => {}
            Some(matcher) => {
                if !matcher.may_match(&event.block.block.header().logs_bloom) {
                    continue;
                }
                logs.clear();
                matcher.block_logs(&event.block, &event.receipts, event.removed, &mut logs);
                for log in &logs {
                    send(sink, log, timeout).await?;
                }
            }
        }
    }
}

async fn forward_pending<A: ChainApi>(
    ctx: &Arc<Ctx<A>>,
    sink: SubscriptionSink,
    mut hashes: Receiver<B256>,
    full: bool,
    timeout: Duration,
) -> SubscriptionCloseResponse {
    let Err(end) = pump_pending(ctx, &sink, &mut hashes, full, timeout).await;
    end.into_response("newPendingTransactions")
}

async fn pump_pending<A: ChainApi>(
    ctx: &Arc<Ctx<A>>,
    sink: &SubscriptionSink,
    hashes: &mut Receiver<B256>,
    full: bool,
    timeout: Duration,
) -> Result<std::convert::Infallible, End> {
    loop {
        let hash = next(sink, hashes).await?;
        if full {
            // A transaction already mined or evicted has nothing to show.
            if let Some(tx) = ctx.api.pool_transaction(hash) {
                send(sink, &pending_transaction(&tx), timeout).await?;
            }
        } else {
            send(sink, &hash, timeout).await?;
        }
    }
}
