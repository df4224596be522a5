//! The results of a run: [`Report`] (written as JSON by `--report`), built from the setup,
//! pre-signing and [`MeasuredRun`] figures, and its human-readable table ([`Report::table`]).

use crate::{
    error::LoadgenError,
    rate::SenderBound,
    runner::{DrainStats, MeasuredRun, SendStats},
    setup::SetupOutcome,
    stats::LatencySummary,
    tracker::{BlockRecord, SecondStats, Totals},
};
use std::{fmt::Write as _, path::Path};

/// The options a run was made with, echoed in the report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunSettings {
    /// Node URL.
    pub rpc: String,
    /// Workload.
    pub workload: String,
    /// Sending accounts.
    pub accounts: usize,
    /// Shared recipients of transfer and erc20 transactions (the contention knob), if the
    /// workload has any.
    pub recipients: Option<usize>,
    /// Pools of amm swaps (the contention knob), if the workload has any.
    pub pools: Option<usize>,
    /// Account seed.
    pub seed: u64,
    /// "open" or "closed".
    pub mode: String,
    /// Open loop: target rate.
    pub rate_tps: Option<f64>,
    /// Open loop: ramp length in seconds.
    pub ramp_s: Option<f64>,
    /// Closed loop: window of in-flight transactions.
    pub max_inflight: Option<usize>,
    /// Sending duration in seconds.
    pub duration_s: f64,
    /// Worker threads of the generator.
    pub threads: usize,
    /// Connections.
    pub connections: usize,
    /// Transactions per request.
    pub batch: usize,
    /// "http" or "ws".
    pub transport: String,
    /// maxFeePerGas in gwei.
    pub max_fee_gwei: u64,
    /// maxPriorityFeePerGas in gwei.
    pub priority_fee_gwei: u64,
}

/// The machine the generator ran on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MachineInfo {
    /// Logical CPUs.
    pub cpus: usize,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
}

impl MachineInfo {
    /// This machine.
    pub fn current() -> Self {
        Self {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// Pre-signing of the measured transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PresignStats {
    /// Transactions signed.
    pub transactions: u64,
    /// Seconds it took.
    pub elapsed_s: f64,
}

/// Included throughput.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Included transactions per second from the start of sending to the arrival of the last
    /// block with one of them.
    pub included_tps: f64,
    /// Gas of included transactions per second over the same span.
    pub gas_per_s: f64,
    /// Included per second between block heads while sending (see [`steady_tps`]): the
    /// sustained rate, free of the start-up latency and the drain.
    pub steady_included_tps: Option<f64>,
    /// The span in seconds.
    pub span_s: f64,
}

/// Blocks from the first to the last one with a transaction of this run.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct BlockSummary {
    /// Blocks in that range.
    pub count: usize,
    /// Of those, with at least one transaction of this run.
    pub with_our_txs: usize,
    /// First block of the range.
    pub first: Option<u64>,
    /// Last block of the range.
    pub last: Option<u64>,
    /// Mean of gas used / gas limit.
    pub mean_fill: f64,
    /// Largest gas used / gas limit.
    pub max_fill: f64,
    /// Mean transactions per block.
    pub mean_txs: f64,
    /// Base fee of the first block, gwei.
    pub base_fee_first_gwei: Option<f64>,
    /// Base fee of the last block, gwei.
    pub base_fee_last_gwei: Option<f64>,
}

impl BlockSummary {
    /// Summarizes `blocks` between the first and the last that include a transaction of ours.
    pub fn of(blocks: &[BlockRecord]) -> Self {
        let first = blocks.iter().position(|b| b.ours > 0);
        let last = blocks.iter().rposition(|b| b.ours > 0);
        let (Some(first), Some(last)) = (first, last) else {
            return Self::default();
        };
        let range = &blocks[first..=last];
        let count = range.len();
        Self {
            count,
            with_our_txs: range.iter().filter(|b| b.ours > 0).count(),
            first: Some(range[0].number),
            last: Some(range[count - 1].number),
            mean_fill: range.iter().map(|b| b.fill).sum::<f64>() / count as f64,
            max_fill: range.iter().map(|b| b.fill).fold(0.0, f64::max),
            mean_txs: range.iter().map(|b| b.txs as f64).sum::<f64>() / count as f64,
            base_fee_first_gwei: range[0].base_fee_gwei,
            base_fee_last_gwei: range[count - 1].base_fee_gwei,
        }
    }
}

/// The end verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Every accepted transaction was included exactly once.
    pub all_accepted_included_once: bool,
    /// Accepted, never included.
    pub lost: u64,
    /// Extra inclusions.
    pub duplicates: u64,
}

/// Everything a run measured; serialized as the `--report` JSON.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// The generator's version.
    pub loadgen_version: String,
    /// Options.
    pub settings: RunSettings,
    /// Where it ran.
    pub machine: MachineInfo,
    /// The node's chain id.
    pub chain_id: u64,
    /// The setup phase.
    pub setup: SetupOutcome,
    /// Pre-signing.
    pub presign: PresignStats,
    /// Sending.
    pub send: SendStats,
    /// Draining.
    pub drain: DrainStats,
    /// First and last block examined.
    pub block_range: (u64, u64),
    /// Counts.
    pub totals: Totals,
    /// Inclusion latency (submit to the arrival of the including block's head).
    pub latency: LatencySummary,
    /// Throughput.
    pub throughput: Throughput,
    /// Blocks.
    pub blocks: BlockSummary,
    /// The end verdict.
    pub verdict: Verdict,
    /// Heads were polled rather than subscribed to.
    pub polled_heads: bool,
    /// Blocks whose heads were not announced (or polled) and were read by number.
    pub blocks_fetched_by_number: u64,
    /// Per-second series.
    pub per_second: Vec<SecondStats>,
    /// Every block observed.
    pub per_block: Vec<BlockRecord>,
}

/// The sustained included rate while sending: the transactions of this run in the blocks after
/// the first one that had any, up to the last block whose head arrived before sending ended
/// at `send_elapsed_s`, divided by the time between those heads. Per-block rather than
/// per-second, so that blocks slower than a second (or two heads in one second) do not skew
/// it; `None` if fewer than two such blocks.
pub fn steady_tps(blocks: &[BlockRecord], send_elapsed_s: f64) -> Option<f64> {
    let first = blocks.iter().position(|b| b.ours > 0)?;
    let last = blocks
        .iter()
        .rposition(|b| b.observed_s <= send_elapsed_s)?;
    if last <= first {
        return None;
    }
    let span = blocks[last].observed_s - blocks[first].observed_s;
    let included: usize = blocks[first + 1..=last].iter().map(|b| b.ours).sum();
    (span > 0.0).then(|| included as f64 / span)
}

/// How the table words what limited the sending rate.
fn bound_text(bound: SenderBound) -> &'static str {
    match bound {
        SenderBound::KeptUp => "kept the target rate",
        SenderBound::Node => {
            "BEHIND the target: node-bound (every connection was waiting for the node)"
        }
        SenderBound::Generator => {
            "BEHIND the target: generator-bound (this process could not keep up)"
        }
        SenderBound::Window => "closed loop, paced by the in-flight window",
        SenderBound::Exhausted => "ran out of pre-signed transactions before the duration",
    }
}

impl Report {
    /// Assembles the report of a run.
    pub fn new(
        settings: RunSettings,
        chain_id: u64,
        setup: SetupOutcome,
        presign: PresignStats,
        run: MeasuredRun,
    ) -> Self {
        let inclusion = run.inclusion;
        let totals = inclusion.totals;
        let span_s = inclusion.last_inclusion_s.unwrap_or(0.0);
        let per_second_tps =
            |span: f64, count: u64| if span > 0.0 { count as f64 / span } else { 0.0 };
        let throughput = Throughput {
            included_tps: per_second_tps(span_s, totals.included),
            gas_per_s: per_second_tps(span_s, totals.gas_used),
            steady_included_tps: steady_tps(&inclusion.blocks, run.send.elapsed_s),
            span_s,
        };
        let verdict = Verdict {
            all_accepted_included_once: totals.lost == 0 && totals.duplicates == 0,
            lost: totals.lost,
            duplicates: totals.duplicates,
        };
        Self {
            loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
            settings,
            machine: MachineInfo::current(),
            chain_id,
            setup,
            presign,
            send: run.send,
            drain: run.drain,
            block_range: (run.start_block, run.end_block),
            latency: inclusion.latency,
            throughput,
            blocks: BlockSummary::of(&inclusion.blocks),
            verdict,
            polled_heads: run.polled_heads,
            blocks_fetched_by_number: run.blocks_fetched_by_number,
            per_second: inclusion.per_second,
            per_block: inclusion.blocks,
            totals,
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), LoadgenError> {
        let output_error = |message: String| LoadgenError::Output {
            path: path.to_owned(),
            message,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| output_error(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| output_error(e.to_string()))
    }

    /// The human-readable summary.
    pub fn table(&self) -> String {
        let s = &self.settings;
        let t = &self.totals;
        let mut out = String::new();
        let pace = match (s.rate_tps, s.max_inflight) {
            (Some(rate), _) => match s.ramp_s {
                Some(ramp) => format!("open loop {rate:.0} tps after a {ramp:.0} s ramp"),
                None => format!("open loop {rate:.0} tps"),
            },
            (None, Some(window)) => format!("closed loop, {window} in flight"),
            (None, None) => "unpaced".to_owned(),
        };
        let recipients = s
            .recipients
            .map_or_else(String::new, |r| format!(", {r} recipients"));
        let pools = s.pools.map_or_else(String::new, |p| format!(", {p} pools"));
        let _ = writeln!(
            out,
            "loadgen {} | {} accounts{recipients}{pools} | {pace} for {:.0} s | {} x {} connections, batch {}",
            s.workload, s.accounts, s.duration_s, s.transport, s.connections, s.batch
        );
        let row = |out: &mut String, label: &str, text: String| {
            let _ = writeln!(out, "  {label:<13}{text}");
        };
        let contracts = &self.setup.contracts;
        let deployed = contracts.token0.map_or(0, |_| 1)
            + contracts.token1.map_or(0, |_| 1)
            + contracts.pairs.len();
        row(
            &mut out,
            "setup",
            format!(
                "{:.1} s, {} txs, {} contracts, {} accounts funded",
                self.setup.elapsed_s, self.setup.transactions, deployed, self.setup.funded_accounts
            ),
        );
        row(
            &mut out,
            "pre-signed",
            format!(
                "{} txs in {:.1} s ({:.0}/s)",
                self.presign.transactions,
                self.presign.elapsed_s,
                self.presign.transactions as f64 / self.presign.elapsed_s.max(1e-9)
            ),
        );
        row(
            &mut out,
            "sent",
            format!(
                "{} in {:.1} s = {:.0} tps, {}{}{}",
                self.send.sent,
                self.send.elapsed_s,
                self.send.submit_tps,
                bound_text(self.send.bound),
                if self.send.final_lag_s > 0.0 {
                    format!(" (last send {:.2} s late)", self.send.final_lag_s)
                } else {
                    String::new()
                },
                if self.send.interrupted {
                    ", interrupted"
                } else {
                    ""
                }
            ),
        );
        row(
            &mut out,
            "answers",
            format!(
                "accepted {}  rejected {}  transport errors {}",
                t.accepted, t.rejected, t.transport_errors
            ),
        );
        for (reason, count) in &t.rejected_by_reason {
            row(&mut out, "", format!("rejected {count}: {reason}"));
        }
        for (reason, count) in &t.transport_errors_by_reason {
            row(&mut out, "", format!("transport error {count}: {reason}"));
        }
        row(
            &mut out,
            "included",
            format!(
                "{}  reverted {}  duplicates {}  lost {}  (drain {:.1} s{})",
                t.included,
                t.reverted,
                t.duplicates,
                t.lost,
                self.drain.elapsed_s,
                if self.drain.timed_out {
                    ", timed out"
                } else {
                    ""
                }
            ),
        );
        row(
            &mut out,
            "throughput",
            format!(
                "{:.0} included tps, {:.1} Mgas/s over {:.1} s; steady {} tps",
                self.throughput.included_tps,
                self.throughput.gas_per_s / 1e6,
                self.throughput.span_s,
                self.throughput
                    .steady_included_tps
                    .map_or_else(|| "-".to_owned(), |t| format!("{t:.0}")),
            ),
        );
        let l = &self.latency;
        row(
            &mut out,
            "latency",
            format!(
                "p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms  (submit to block head, {} samples)",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
            ),
        );
        let b = &self.blocks;
        let fee = |f: Option<f64>| match f {
            None => "-".to_owned(),
            Some(gwei) if gwei < 0.001 => format!("{:.0} wei", gwei * 1e9),
            Some(gwei) => format!("{gwei:.3} gwei"),
        };
        row(
            &mut out,
            "blocks",
            format!(
                "{} ({} with ours), {:.0} txs/block, fill mean {:.1}% max {:.1}%, base fee {} -> {}",
                b.count,
                b.with_our_txs,
                b.mean_txs,
                b.mean_fill * 100.0,
                b.max_fill * 100.0,
                fee(b.base_fee_first_gwei),
                fee(b.base_fee_last_gwei)
            ),
        );
        let verdict = if self.verdict.all_accepted_included_once {
            "OK: every accepted transaction was included exactly once".to_owned()
        } else {
            format!(
                "FAILED: {} lost, {} duplicate inclusions",
                self.verdict.lost, self.verdict.duplicates
            )
        };
        row(&mut out, "verdict", verdict);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(number: u64, ours: usize, fill: f64) -> BlockRecord {
        BlockRecord {
            number,
            observed_s: number as f64,
            timestamp: number,
            txs: ours + 1,
            ours,
            gas_used: (fill * 1000.0) as u64,
            gas_limit: 1000,
            fill,
            base_fee_gwei: Some(number as f64),
        }
    }

    #[test]
    fn steady_rate_skips_start_up_and_drain() {
        let at = |observed_s: f64, ours: usize| BlockRecord {
            observed_s,
            ..block(0, ours, 0.5)
        };
        // Heads at 1.0 (first with ours), 2.5, 3.0 and 4.5 s; sending ended at 4.0 s, so the
        // block at 4.5 s is drain. (300 + 200) / (3.0 - 1.0) = 250.
        let blocks = [
            at(0.2, 0),
            at(1.0, 100),
            at(2.5, 300),
            at(3.0, 200),
            at(4.5, 50),
        ];
        assert_eq!(steady_tps(&blocks, 4.0), Some(250.0));
        assert_eq!(
            steady_tps(&blocks[..2], 4.0),
            None,
            "one block with ours gives no interval"
        );
        assert_eq!(steady_tps(&blocks, 0.5), None);
        assert_eq!(steady_tps(&[], 10.0), None);
    }

    #[test]
    fn block_summary_spans_blocks_with_our_transactions() {
        let blocks = [
            block(1, 0, 0.9),
            block(2, 5, 0.5),
            block(3, 0, 0.0),
            block(4, 3, 0.25),
            block(5, 0, 1.0),
        ];
        let summary = BlockSummary::of(&blocks);
        assert_eq!(summary.count, 3);
        assert_eq!(summary.with_our_txs, 2);
        assert_eq!((summary.first, summary.last), (Some(2), Some(4)));
        assert_eq!(summary.mean_fill, 0.25);
        assert_eq!(summary.max_fill, 0.5);
        assert_eq!(summary.base_fee_last_gwei, Some(4.0));
        assert_eq!(
            BlockSummary::of(&[block(1, 0, 0.5)]),
            BlockSummary::default()
        );
    }
}
