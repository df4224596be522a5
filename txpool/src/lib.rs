//! The transaction pool of chaind: [`TxPool`] takes raw transactions from RPC and gossip,
//! validates them ([`PoolError`] names each refusal and gives geth's message for it), keeps
//! each sender's transactions as pending (executable: contiguous nonces from the account
//! nonce) or queued, handles fee-bump replacement, per-account and pool-wide limits with
//! eviction of the cheapest, and hands the block builder its transactions through
//! [`BestTransactions`]: best effective tip first, nonce order within a sender.
//!
//! A pooled transaction is an `Arc<`[`PooledTx`]`>`: the decoded `alloy_consensus::TxEnvelope`
//! with its hash, its sender recovered once (in parallel on rayon for batches, never under the
//! pool's lock) and the fields the pool ranks by. [`PoolConfig`] holds the chain rules and
//! limits (geth's defaults, or [`PoolConfig::load_test`]). The pool reads nonces and balances
//! through [`chain_primitives::StateReader`].
//!
//! Policy, in brief. A sender's pending run is the longest gap-free run of nonces from its
//! account nonce that its balance covers, at most [`PoolConfig::account_slots`] long; the rest
//! of its transactions are queued (at most [`PoolConfig::account_queue`]). Pending and queued
//! transactions have pool-wide limits of their own; when one is full, a newcomer must outbid
//! the cheapest transaction of that kind from another sender (by effective tip at the current
//! base fee), which is then evicted. Only a sender's last pending or last queued transaction
//! is ever evicted, so eviction never opens a gap in a pending run; when both kinds are over
//! their limits the queue is trimmed first. A replacement (same sender and nonce) must raise
//! both fee cap and tip by [`PoolConfig::price_bump_percent`].

/// The best-transactions iterator for the block builder.
pub mod best;
/// Pool limits and chain rules.
pub mod config;
/// Why the pool refuses a transaction.
pub mod error;
/// The pool itself.
pub mod pool;
mod sender;
/// Pooled transactions.
pub mod tx;
/// Stateless checks: intrinsic gas, calldata floor, signature recovery.
pub mod validation;

pub use best::BestTransactions;
pub use config::{MAX_TX_GAS_OSAKA, PoolConfig};
pub use error::PoolError;
pub use pool::{PoolContent, PoolStatus, PoolUpdate, TxPool};
pub use tx::PooledTx;
