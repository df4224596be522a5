//! Inclusion accounting: [`InclusionTracker`] follows every measured transaction from
//! submission through the node's answer to the block that includes it, counts per second and in
//! total, and at the end ([`InclusionTracker::finish`]) says which accepted transactions were
//! never included (lost) and which were included more than once (duplicates).
//!
//! It is plain synchronous state with explicit timestamps, so it is tested without a node.

use crate::{
    rpc::{BlockHeader, SendOutcome, TxReceipt},
    stats::{LatencySummary, percentile},
};
use alloy_primitives::{B256, map::B256Map};
use std::{collections::BTreeMap, ops::Range, time::Duration};
use tokio::time::Instant;

/// Where a transaction stands as far as the sender knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendState {
    /// Not sent (yet).
    Unsent,
    /// Sent, no answer yet.
    InFlight,
    /// The node accepted it into its pool.
    Accepted,
    /// The node rejected it with an error.
    Rejected,
    /// The request failed at the transport level: the node may or may not have it.
    Unconfirmed,
}

#[derive(Clone, Copy, Debug)]
struct TxRecord {
    /// Microseconds since the start of the measured phase when it was sent.
    submitted_us: u64,
    state: SendState,
    /// Blocks that included it (saturating).
    inclusions: u8,
    /// Whether its closed-loop window slot has been given back.
    released: bool,
}

/// Counts of one second of the run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SecondStats {
    /// Seconds since the start of the measured phase (the bucket `[t, t+1)`).
    pub t: u64,
    /// Transactions sent.
    pub submitted: u64,
    /// Transactions the node accepted (by answer time).
    pub accepted: u64,
    /// Transactions the node rejected (by answer time).
    pub rejected: u64,
    /// Transactions included in blocks observed in this second.
    pub included: u64,
    /// Gas used by those.
    pub gas_used: u64,
    /// Median inclusion latency of those, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th-percentile inclusion latency of those, in milliseconds.
    pub p99_ms: Option<f64>,
    #[serde(skip)]
    pub(crate) latencies_us: Vec<u64>,
}

/// One block seen during the run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BlockRecord {
    /// Block number.
    pub number: u64,
    /// Seconds since the start of the measured phase when its head arrived.
    pub observed_s: f64,
    /// Block timestamp.
    pub timestamp: u64,
    /// All transactions in it.
    pub txs: usize,
    /// Those of this run.
    pub ours: usize,
    /// Gas used by all its transactions.
    pub gas_used: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// `gas_used / gas_limit`.
    pub fill: f64,
    /// Base fee in gwei.
    pub base_fee_gwei: Option<f64>,
}

/// What one block changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockUpdate {
    /// Transactions of this run included for the first time.
    pub newly_included: usize,
    /// Closed-loop window slots freed.
    pub released: usize,
}

/// Live figures for the progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveStats {
    /// Transactions sent.
    pub submitted: u64,
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Included.
    pub included: u64,
    /// Sent or accepted, not included, not rejected.
    pub pending: u64,
    /// Included per second over the last few complete seconds.
    pub recent_tps: f64,
    /// 99th-percentile latency over the last few complete seconds, in milliseconds.
    pub recent_p99_ms: Option<f64>,
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Totals {
    /// Pre-signed transactions of the measured phase.
    pub planned: u64,
    /// Sent to the node.
    pub submitted: u64,
    /// Accepted by the node.
    pub accepted: u64,
    /// Rejected by the node.
    pub rejected: u64,
    /// Rejections by reason (the error message up to its first `:`).
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Transactions whose request failed at the transport level.
    pub transport_errors: u64,
    /// Transport failures by message.
    pub transport_errors_by_reason: BTreeMap<String, u64>,
    /// Included at least once.
    pub included: u64,
    /// Included, with a failed (reverted) receipt.
    pub reverted: u64,
    /// Extra inclusions of transactions already included (should be 0).
    pub duplicates: u64,
    /// Accepted but not included by the end of the drain (should be 0).
    pub lost: u64,
    /// Up to 20 lost transaction hashes, to look up.
    pub lost_examples: Vec<B256>,
    /// Transport failures that were never included (the node may never have had them).
    pub unconfirmed_not_included: u64,
    /// Rejected, and included all the same (e.g. "already known" for a resubmission).
    pub included_after_rejection: u64,
    /// Accepted with a hash other than the one the generator computed (should be 0).
    pub hash_mismatches: u64,
    /// Transactions in observed blocks that are not from this run.
    pub foreign_txs: u64,
    /// Gas used by this run's included transactions.
    pub gas_used: u64,
}

/// The tracker's findings at the end of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrackerSummary {
    /// Counts.
    pub totals: Totals,
    /// Inclusion latency, submit to the arrival of the including block's head.
    pub latency: LatencySummary,
    /// Seconds from the start to the arrival of the last block with a transaction of this run.
    pub last_inclusion_s: Option<f64>,
    /// Per-second series.
    pub per_second: Vec<SecondStats>,
    /// Every block observed.
    pub blocks: Vec<BlockRecord>,
}

/// Accounting of the measured transactions; see the module documentation.
#[derive(Debug)]
pub struct InclusionTracker {
    start: Instant,
    index: B256Map<u32>,
    hashes: Vec<B256>,
    txs: Vec<TxRecord>,
    seconds: Vec<SecondStats>,
    blocks: Vec<BlockRecord>,
    pub(crate) latencies_us: Vec<u64>,
    totals: Totals,
    last_inclusion: Option<Duration>,
}

/// Seconds of history behind the live TPS and p99.
const LIVE_WINDOW_SECONDS: usize = 3;
/// Longest rejection reason kept as a key (messages are grouped by their head).
const MAX_REASON_CHARS: usize = 120;

/// Groups error messages that differ only in their details ("nonce too low: next nonce 5, tx
/// nonce 3" and "... 7, ... 2" are one reason).
pub fn reason_key(message: &str) -> String {
    let head = message.split(':').next().unwrap_or(message).trim();
    let head = if head.is_empty() {
        message.trim()
    } else {
        head
    };
    head.chars().take(MAX_REASON_CHARS).collect()
}

impl InclusionTracker {
    /// A tracker of the transactions with `hashes`, in send order; `start` is time zero.
    pub fn new(hashes: Vec<B256>, start: Instant) -> Self {
        let index = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32))
            .collect();
        let record = TxRecord {
            submitted_us: 0,
            state: SendState::Unsent,
            inclusions: 0,
            released: false,
        };
        let totals = Totals {
            planned: hashes.len() as u64,
            ..Totals::default()
        };
        Self {
            start,
            index,
            txs: vec![record; hashes.len()],
            hashes,
            seconds: Vec::new(),
            blocks: Vec::new(),
            latencies_us: Vec::new(),
            totals,
            last_inclusion: None,
        }
    }

    /// Time zero.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn elapsed(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    fn second(&mut self, at: Instant) -> &mut SecondStats {
        let t = self.elapsed(at).as_secs() as usize;
        while self.seconds.len() <= t {
            let next = self.seconds.len() as u64;
            self.seconds.push(SecondStats {
                t: next,
                ..SecondStats::default()
            });
        }
        &mut self.seconds[t]
    }

    /// Transactions `range` (send order) are being sent at `at`.
    pub fn mark_submitted(&mut self, range: Range<usize>, at: Instant) {
        let us = self.elapsed(at).as_micros() as u64;
        let count = range.len() as u64;
        for record in &mut self.txs[range] {
            record.submitted_us = us;
            record.state = SendState::InFlight;
        }
        self.totals.submitted += count;
        self.second(at).submitted += count;
    }

    fn release(&mut self, i: usize) -> bool {
        !std::mem::replace(&mut self.txs[i].released, true)
    }

    /// The node answered the batch `range` with `outcomes` (one per transaction) at `at`.
    /// Returns the closed-loop window slots freed (rejections).
    pub fn record_outcomes(
        &mut self,
        range: Range<usize>,
        outcomes: &[SendOutcome],
        at: Instant,
    ) -> usize {
        let mut released = 0;
        let (mut accepted, mut rejected) = (0, 0);
        for (i, outcome) in range.zip(outcomes) {
            match outcome {
                Ok(hash) => {
                    self.txs[i].state = SendState::Accepted;
                    accepted += 1;
                    if *hash != self.hashes[i] {
                        self.totals.hash_mismatches += 1;
                    }
                }
                Err(message) => {
                    self.txs[i].state = SendState::Rejected;
                    rejected += 1;
                    *self
                        .totals
                        .rejected_by_reason
                        .entry(reason_key(message))
                        .or_default() += 1;
                    released += usize::from(self.release(i));
                }
            }
        }
        self.totals.accepted += accepted;
        self.totals.rejected += rejected;
        let second = self.second(at);
        second.accepted += accepted;
        second.rejected += rejected;
        released
    }

    /// The request carrying `range` failed with `message`: its transactions are unconfirmed.
    /// Returns the closed-loop window slots freed.
    pub fn record_transport_error(&mut self, range: Range<usize>, message: &str) -> usize {
        let mut released = 0;
        for i in range.clone() {
            self.txs[i].state = SendState::Unconfirmed;
            released += usize::from(self.release(i));
        }
        self.totals.transport_errors += range.len() as u64;
        *self
            .totals
            .transport_errors_by_reason
            .entry(reason_key(message))
            .or_default() += range.len() as u64;
        released
    }

    /// A block and its receipts, whose head arrived at `observed`.
    pub fn record_block(
        &mut self,
        header: &BlockHeader,
        receipts: &[TxReceipt],
        observed: Instant,
    ) -> BlockUpdate {
        let observed_us = self.elapsed(observed).as_micros() as u64;
        let mut update = BlockUpdate::default();
        let mut ours = 0;
        let mut gas_ours = 0;
        let mut latencies = Vec::new();
        for receipt in receipts {
            let Some(&i) = self.index.get(&receipt.transaction_hash) else {
                self.totals.foreign_txs += 1;
                continue;
            };
            let i = i as usize;
            ours += 1;
            let record = &mut self.txs[i];
            record.inclusions = record.inclusions.saturating_add(1);
            if record.inclusions > 1 {
                self.totals.duplicates += 1;
                continue;
            }
            update.newly_included += 1;
            gas_ours += receipt.gas_used;
            if !receipt.status {
                self.totals.reverted += 1;
            }
            if record.state == SendState::Unsent {
                // Included before we sent it: someone else sent the same bytes. No latency.
                continue;
            }
            latencies.push(observed_us.saturating_sub(record.submitted_us));
            update.released += usize::from(self.release(i));
        }
        self.totals.included += update.newly_included as u64;
        self.totals.gas_used += gas_ours;
        if update.newly_included > 0 {
            self.last_inclusion = Some(self.elapsed(observed));
        }
        self.latencies_us.extend_from_slice(&latencies);
        let second = self.second(observed);
        second.included += update.newly_included as u64;
        second.gas_used += gas_ours;
        second.latencies_us.extend(latencies);
        self.blocks.push(BlockRecord {
            number: header.number,
            observed_s: observed_us as f64 / 1e6,
            timestamp: header.timestamp,
            txs: receipts.len(),
            ours,
            gas_used: header.gas_used,
            gas_limit: header.gas_limit,
            fill: if header.gas_limit == 0 {
                0.0
            } else {
                header.gas_used as f64 / header.gas_limit as f64
            },
            base_fee_gwei: header.base_fee_per_gas.map(|fee| fee as f64 / 1e9),
        });
        update
    }

    /// Accepted (or answer still awaited) and not yet included: what the drain waits for.
    /// Unconfirmed transactions are not waited for: the node may never have had them.
    pub fn awaiting_inclusion(&self) -> u64 {
        self.txs
            .iter()
            .filter(|r| {
                r.inclusions == 0 && matches!(r.state, SendState::InFlight | SendState::Accepted)
            })
            .count() as u64
    }

    /// Figures for the progress line at `now`.
    pub fn live(&self, now: Instant) -> LiveStats {
        let current = self.elapsed(now).as_secs() as usize;
        let from = current.saturating_sub(LIVE_WINDOW_SECONDS);
        let window = self
            .seconds
            .get(from..current.min(self.seconds.len()))
            .unwrap_or(&[]);
        let mut samples: Vec<u64> = window
            .iter()
            .flat_map(|s| s.latencies_us.iter().copied())
            .collect();
        samples.sort_unstable();
        let included: u64 = window.iter().map(|s| s.included).sum();
        LiveStats {
            submitted: self.totals.submitted,
            accepted: self.totals.accepted,
            rejected: self.totals.rejected,
            included: self.totals.included,
            pending: self
                .totals
                .submitted
                .saturating_sub(self.totals.included + self.totals.rejected),
            recent_tps: if window.is_empty() {
                0.0
            } else {
                included as f64 / window.len() as f64
            },
            recent_p99_ms: percentile(&samples, 99.0).map(|us| us as f64 / 1000.0),
        }
    }

    /// Final accounting: lost, duplicates, latency percentiles, per-second series.
    pub fn finish(mut self) -> TrackerSummary {
        let mut totals = std::mem::take(&mut self.totals);
        for (i, record) in self.txs.iter().enumerate() {
            match (record.state, record.inclusions) {
                (SendState::Accepted, 0) => {
                    totals.lost += 1;
                    if totals.lost_examples.len() < 20 {
                        totals.lost_examples.push(self.hashes[i]);
                    }
                }
                (SendState::Unconfirmed, 0) => totals.unconfirmed_not_included += 1,
                (SendState::Rejected, n) if n > 0 => totals.included_after_rejection += 1,
                _ => {}
            }
        }
        for second in &mut self.seconds {
            second.latencies_us.sort_unstable();
            second.p50_ms = percentile(&second.latencies_us, 50.0).map(|us| us as f64 / 1000.0);
            second.p99_ms = percentile(&second.latencies_us, 99.0).map(|us| us as f64 / 1000.0);
            second.latencies_us = Vec::new();
        }
        TrackerSummary {
            latency: LatencySummary::from_micros(&mut self.latencies_us),
            totals,
            last_inclusion_s: self.last_inclusion.map(|d| d.as_secs_f64()),
            per_second: self.seconds,
            blocks: self.blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> B256 {
        B256::left_padding_from(&i.to_be_bytes())
    }

    fn header(number: u64) -> BlockHeader {
        BlockHeader {
            number,
            hash: hash(1_000_000 + number),
            timestamp: number,
            gas_used: 15_000_000,
            gas_limit: 30_000_000,
            base_fee_per_gas: Some(1_000_000_000),
        }
    }

    fn receipt(h: B256) -> TxReceipt {
        TxReceipt {
            transaction_hash: h,
            gas_used: 21_000,
            status: true,
            contract_address: None,
        }
    }

    fn ms(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn matches_inclusions_and_measures_latency() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new((0..4).map(hash).collect(), start);
        tracker.mark_submitted(0..2, ms(start, 100));
        tracker.mark_submitted(2..4, ms(start, 600));
        assert_eq!(
            tracker.record_outcomes(0..2, &[Ok(hash(0)), Ok(hash(1))], ms(start, 110)),
            0
        );
        assert_eq!(
            tracker.record_outcomes(2..4, &[Ok(hash(2)), Ok(hash(3))], ms(start, 610)),
            0
        );

        let update = tracker.record_block(
            &header(1),
            &[receipt(hash(0)), receipt(hash(1))],
            ms(start, 1100),
        );
        assert_eq!(
            update,
            BlockUpdate {
                newly_included: 2,
                released: 2
            }
        );
        let update = tracker.record_block(
            &header(2),
            &[receipt(hash(3)), receipt(hash(2)), receipt(hash(99))],
            ms(start, 2100),
        );
        assert_eq!(update.newly_included, 2);
        assert_eq!(tracker.awaiting_inclusion(), 0);

        let summary = tracker.finish();
        assert_eq!(summary.totals.included, 4);
        assert_eq!(summary.totals.lost, 0);
        assert_eq!(summary.totals.duplicates, 0);
        assert_eq!(summary.totals.foreign_txs, 1);
        assert_eq!(summary.totals.gas_used, 4 * 21_000);
        // Latencies: 1000, 1000, 1500, 1500 ms.
        assert_eq!(summary.latency.p50_ms, 1000.0);
        assert_eq!(summary.latency.max_ms, 1500.0);
        assert_eq!(summary.per_second[0].submitted, 4);
        assert_eq!(summary.per_second[1].included, 2);
        assert_eq!(summary.per_second[2].included, 2);
        assert_eq!(summary.per_second[2].p99_ms, Some(1500.0));
        assert_eq!(summary.blocks.len(), 2);
        assert_eq!(summary.blocks[1].ours, 2);
        assert_eq!(summary.blocks[1].fill, 0.5);
        assert_eq!(summary.last_inclusion_s, Some(2.1));
    }

    #[test]
    fn detects_lost_and_duplicate_transactions() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new((0..3).map(hash).collect(), start);
        tracker.mark_submitted(0..3, start);
        tracker.record_outcomes(0..3, &[Ok(hash(0)), Ok(hash(1)), Ok(hash(2))], start);
        tracker.record_block(&header(1), &[receipt(hash(0))], ms(start, 1000));
        tracker.record_block(
            &header(2),
            &[receipt(hash(0)), receipt(hash(1))],
            ms(start, 2000),
        );
        assert_eq!(tracker.awaiting_inclusion(), 1);
        let summary = tracker.finish();
        assert_eq!(summary.totals.included, 2);
        assert_eq!(summary.totals.duplicates, 1);
        assert_eq!(summary.totals.lost, 1);
        assert_eq!(summary.totals.lost_examples, vec![hash(2)]);
        // The duplicate adds no latency sample.
        assert_eq!(summary.latency.count, 2);
    }

    #[test]
    fn separates_rejections_transport_errors_and_late_answers() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new((0..6).map(hash).collect(), start);
        tracker.mark_submitted(0..6, start);
        let outcomes = [
            Ok(hash(0)),
            Err("nonce too low: next nonce 5, tx nonce 3".to_owned()),
            Err("nonce too low: next nonce 9, tx nonce 1".to_owned()),
            Err("already known".to_owned()),
        ];
        assert_eq!(tracker.record_outcomes(0..4, &outcomes, ms(start, 5)), 3);
        assert_eq!(tracker.record_transport_error(4..6, "request timeout"), 2);
        // The rejected "already known" and one unconfirmed transaction make it into a block.
        let update = tracker.record_block(
            &header(1),
            &[receipt(hash(3)), receipt(hash(4))],
            ms(start, 900),
        );
        assert_eq!(
            update,
            BlockUpdate {
                newly_included: 2,
                released: 0
            }
        );
        assert_eq!(tracker.awaiting_inclusion(), 1);
        let summary = tracker.finish();
        let totals = &summary.totals;
        assert_eq!(totals.rejected, 3);
        assert_eq!(totals.rejected_by_reason.get("nonce too low"), Some(&2));
        assert_eq!(totals.rejected_by_reason.get("already known"), Some(&1));
        assert_eq!(totals.transport_errors, 2);
        assert_eq!(totals.unconfirmed_not_included, 1);
        assert_eq!(totals.included_after_rejection, 1);
        assert_eq!(totals.lost, 1, "hash(0) was accepted and never included");
    }

    #[test]
    fn inclusion_before_the_answer_counts_and_frees_the_slot_once() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new(vec![hash(0)], start);
        tracker.mark_submitted(0..1, start);
        let update = tracker.record_block(&header(1), &[receipt(hash(0))], ms(start, 500));
        assert_eq!(
            update,
            BlockUpdate {
                newly_included: 1,
                released: 1
            }
        );
        assert_eq!(
            tracker.record_outcomes(0..1, &[Ok(hash(0))], ms(start, 600)),
            0
        );
        let summary = tracker.finish();
        assert_eq!(summary.totals.lost, 0);
        assert_eq!(summary.latency.p50_ms, 500.0);
    }

    #[test]
    fn counts_hash_mismatches_and_reverts() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new(vec![hash(0)], start);
        tracker.mark_submitted(0..1, start);
        tracker.record_outcomes(0..1, &[Ok(hash(7))], start);
        let reverted = TxReceipt {
            status: false,
            ..receipt(hash(0))
        };
        tracker.record_block(&header(1), &[reverted], ms(start, 10));
        let totals = tracker.finish().totals;
        assert_eq!(totals.hash_mismatches, 1);
        assert_eq!(totals.reverted, 1);
        assert_eq!(totals.included, 1);
    }

    #[test]
    fn live_figures_cover_the_last_complete_seconds() {
        let start = Instant::now();
        let mut tracker = InclusionTracker::new((0..10).map(hash).collect(), start);
        tracker.mark_submitted(0..10, start);
        tracker.record_outcomes(
            0..10,
            &(0..10).map(|i| Ok(hash(i))).collect::<Vec<_>>(),
            start,
        );
        let receipts: Vec<TxReceipt> = (0..6).map(|i| receipt(hash(i))).collect();
        tracker.record_block(&header(1), &receipts, ms(start, 1500));
        let live = tracker.live(ms(start, 2500));
        assert_eq!(live.included, 6);
        assert_eq!(live.pending, 4);
        // Seconds 0 and 1 are complete: 6 included over 2 s.
        assert_eq!(live.recent_tps, 3.0);
        assert_eq!(live.recent_p99_ms, Some(1500.0));
    }

    #[test]
    fn reason_keys_group_by_message_head() {
        assert_eq!(
            reason_key("insufficient funds: balance 0"),
            "insufficient funds"
        );
        assert_eq!(reason_key("txpool is full"), "txpool is full");
        assert_eq!(reason_key(": odd"), ": odd");
        assert_eq!(reason_key(&"x".repeat(500)).len(), MAX_REASON_CHARS);
    }
}
