//! Options of a load run ([`LoadOptions`], [`Pace`]) independent of the command line, and
//! [`parse_duration`] for `60s`-style arguments.

use crate::{
    error::LoadgenError,
    rate::{RateSchedule, SendMode},
    rpc::TransportKind,
    workload::LoadKind,
};
use alloy_primitives::B256;
use std::time::Duration;

/// Pools when `--contention` is not given (amm, mix).
pub const DEFAULT_POOLS: usize = 16;
/// Closed loop: transactions pre-signed per second of duration when `--txs` is not given.
pub const CLOSED_LOOP_PRESIGN_TPS: u64 = 20_000;
/// Most transactions pre-signed in one run (about 250 bytes each in memory).
pub const MAX_PRESIGNED: u64 = 20_000_000;

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop at `tps`, optionally reached by a linear ramp.
    Rate {
        /// Target rate.
        tps: f64,
        /// Ramp length.
        ramp: Option<Duration>,
    },
    /// Closed loop with at most this many transactions sent and not yet included.
    Window(usize),
}

/// Everything a load run needs to know.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Node URL (HTTP or WebSocket).
    pub rpc: String,
    /// WebSocket URL for newHeads; derived from `rpc` if `None`.
    pub ws_url: Option<String>,
    /// Sending accounts (load-test accounts `0..accounts`).
    pub accounts: usize,
    /// Seed of the load-test accounts (`chaind dev --loadgen-seed`).
    pub seed: u64,
    /// Workload.
    pub workload: LoadKind,
    /// Shared recipients (transfer, erc20) and pools (amm, mix); 0 for the defaults: one
    /// recipient per account and [`DEFAULT_POOLS`] pools.
    pub contention: usize,
    /// How long to send.
    pub duration: Duration,
    /// How fast.
    pub pace: Pace,
    /// Cap on pre-signed transactions.
    pub txs: Option<u64>,
    /// Worker threads (tokio and rayon).
    pub threads: usize,
    /// Connections to send over.
    pub connections: usize,
    /// Transactions per request.
    pub batch: usize,
    /// Requests each connection may have unanswered.
    pub requests_per_connection: usize,
    /// HTTP or WebSocket for sending.
    pub transport: TransportKind,
    /// maxFeePerGas in gwei.
    pub max_fee_gwei: u64,
    /// maxPriorityFeePerGas in gwei.
    pub priority_fee_gwei: u64,
    /// Faucet (and deployer) key; without it, accounts must be prefunded.
    pub faucet_key: Option<B256>,
    /// ETH the faucet gives each account holding less than half of it.
    pub fund_eth: u64,
    /// Most setup transactions of one sender before waiting for inclusion.
    pub setup_depth: usize,
    /// Longest wait for one round of setup transactions.
    pub setup_timeout: Duration,
    /// Longest wait after sending for accepted transactions to be included.
    pub drain: Duration,
    /// Show the live line.
    pub progress: bool,
}

impl LoadOptions {
    /// Options for a short run against `rpc` with defaults everywhere else.
    pub fn new(rpc: impl Into<String>) -> Self {
        Self {
            rpc: rpc.into(),
            ws_url: None,
            accounts: 1000,
            seed: 1,
            workload: LoadKind::Transfer,
            contention: 0,
            duration: Duration::from_secs(60),
            pace: Pace::Rate {
                tps: 1000.0,
                ramp: None,
            },
            txs: None,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            connections: 4,
            batch: 100,
            requests_per_connection: 8,
            transport: TransportKind::Http,
            max_fee_gwei: 1000,
            priority_fee_gwei: 1,
            faucet_key: None,
            fund_eth: 10,
            setup_depth: 64,
            setup_timeout: Duration::from_secs(300),
            drain: Duration::from_secs(30),
            progress: true,
        }
    }

    /// Shared recipients of transfer and erc20 transactions.
    pub fn recipients(&self) -> usize {
        if self.contention == 0 {
            self.accounts
        } else {
            self.contention
        }
    }

    /// Pools of the amm workload.
    pub fn pools(&self) -> usize {
        if self.contention == 0 {
            DEFAULT_POOLS
        } else {
            self.contention
        }
    }

    /// The send mode.
    pub fn mode(&self) -> SendMode {
        match self.pace {
            Pace::Rate {
                tps,
                ramp: Some(ramp),
            } if !ramp.is_zero() => SendMode::Open(RateSchedule::ramped(tps, ramp)),
            Pace::Rate { tps, .. } => SendMode::Open(RateSchedule::constant(tps)),
            Pace::Window(window) => SendMode::Closed { window },
        }
    }

    /// Transactions to pre-sign: what the schedule sends over the duration (open loop) or
    /// [`CLOSED_LOOP_PRESIGN_TPS`] per second (closed loop), capped by `txs`.
    pub fn presign_count(&self) -> u64 {
        let planned = match self.mode() {
            SendMode::Open(schedule) => schedule.total_over(self.duration),
            SendMode::Closed { .. } => CLOSED_LOOP_PRESIGN_TPS * self.duration.as_secs().max(1),
        };
        self.txs.map_or(planned, |cap| cap.min(planned))
    }

    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let fail = |m: String| Err(LoadgenError::Config(m));
        if self.accounts == 0 {
            return fail("--accounts must be at least 1".into());
        }
        if self.duration.is_zero() {
            return fail("--duration must be positive".into());
        }
        if self.connections == 0
            || self.batch == 0
            || self.requests_per_connection == 0
            || self.threads == 0
        {
            return fail("--connections, --batch, --requests-per-connection and --threads must be at least 1".into());
        }
        match self.pace {
            Pace::Rate { tps, .. } if !(tps.is_finite() && tps > 0.0) => {
                return fail(format!("--rate must be positive, not {tps}"));
            }
            Pace::Window(window) if window < self.batch => {
                return fail(format!(
                    "--max-inflight {window} must be at least --batch {}",
                    self.batch
                ));
            }
            _ => {}
        }
        if self.max_fee_gwei < self.priority_fee_gwei {
            return fail("--max-fee-gwei must be at least --priority-fee-gwei".into());
        }
        let count = self.presign_count();
        if count == 0 {
            return fail("nothing to send: rate x duration is below one transaction".into());
        }
        if count > MAX_PRESIGNED {
            return fail(format!(
                "{count} transactions to pre-sign exceed the limit of {MAX_PRESIGNED}"
            ));
        }
        Ok(())
    }
}

/// Parses `60s`, `500ms`, `2m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn presign_count_follows_the_pace() {
        let mut options = LoadOptions::new("http://x");
        options.duration = Duration::from_secs(10);
        options.pace = Pace::Rate {
            tps: 500.0,
            ramp: None,
        };
        assert_eq!(options.presign_count(), 5000);
        options.txs = Some(100);
        assert_eq!(options.presign_count(), 100);
        options.txs = None;
        options.pace = Pace::Window(1000);
        assert_eq!(options.presign_count(), 10 * CLOSED_LOOP_PRESIGN_TPS);
    }

    #[test]
    fn validation_rejects_contradictions() {
        let mut options = LoadOptions::new("http://x");
        assert!(options.validate().is_ok());
        options.pace = Pace::Window(10);
        assert!(options.validate().is_err(), "window smaller than a batch");
        options.pace = Pace::Rate {
            tps: 0.0,
            ramp: None,
        };
        assert!(options.validate().is_err());
        options.pace = Pace::Rate {
            tps: 0.01,
            ramp: None,
        };
        options.duration = Duration::from_secs(1);
        assert!(options.validate().is_err(), "less than one transaction");
    }

    #[test]
    fn contention_defaults() {
        let mut options = LoadOptions::new("http://x");
        options.accounts = 50;
        assert_eq!((options.recipients(), options.pools()), (50, DEFAULT_POOLS));
        options.contention = 3;
        assert_eq!((options.recipients(), options.pools()), (3, 3));
    }
}
