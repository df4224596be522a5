//! `chain-loadtest`: the load generator of chaind (binary `loadgen`). It derives the
//! load-test accounts that `chaind dev --prefund-loadgen` funds ([`accounts::Account`]), sets
//! up a workload's contracts ([`setup::run_setup`]), pre-signs every transaction of the
//! measured phase ([`runner::presign`]), sends them over HTTP batches or WebSocket at an
//! open-loop rate or with a closed-loop window ([`rate::SendMode`]), and matches the receipts
//! of every new head against them in an [`tracker::InclusionTracker`], which yields inclusion
//! latency percentiles, included TPS and gas/s, block fill, rejections by reason, and the
//! lost/duplicate check. [`report::Report`] is the JSON and table of a run,
//! [`plot::write_svg`] its plot; [`app::run_load`] runs the whole thing from
//! [`config::LoadOptions`]. The node is reached through the [`rpc::NodeRpc`] trait, so the
//! accounting is tested against an in-process fake node.

/// Sending accounts, fees and transaction signing.
pub mod accounts;
/// A whole run, from options to report.
pub mod app;
/// Run options and duration parsing.
pub mod config;
/// The crate's error type.
pub mod error;
/// The SVG plot of a run.
pub mod plot;
/// The live progress line.
pub mod progress;
/// Open-loop schedules, closed-loop windows and what bounded the rate.
pub mod rate;
/// The JSON report and the human table.
pub mod report;
/// The node's JSON-RPC interface as the generator uses it.
pub mod rpc;
/// Pre-signing and the measured phase: sending, watching blocks, draining.
pub mod runner;
/// The unmeasured setup phase: funding, deployments, mints, approvals.
pub mod setup;
/// Percentiles and latency summaries.
pub mod stats;
/// Inclusion accounting: latency, lost and duplicate transactions.
pub mod tracker;
/// What each measured transaction does.
pub mod workload;

pub use error::LoadgenError;
