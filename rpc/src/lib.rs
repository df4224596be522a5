//! chaind's JSON-RPC server: geth's `eth_*`, `net_*`, `web3_*` and `txpool_*` methods over
//! HTTP and WebSocket on one port (jsonrpsee), with polling filters, `eth_subscribe`,
//! `GET /health` and `GET /metrics`, so that viem, ethers, web3.py, foundry's cast and MetaMask
//! work against chaind unchanged.
//!
//! The node implements [`ChainApi`] (blocks, receipts, state, pool, head events) and calls
//! [`start`] with an [`RpcConfig`]; the returned [`RpcHandle`] keeps the server running.
//! Parameters are decoded as geth decodes them (strict hex, EIP-1898 block ids) and answers use
//! alloy's RPC types, which serialize as geth does. [`RpcError`] is the start-up failure;
//! errors of calls are JSON-RPC errors with geth's codes and messages.
//!
//! Beside geth's namespaces, `chaind_*` methods serve what is chaind's own: staking
//! (`chaind_sendStakingOp`, `chaind_stakingAccount`) and the validator set
//! (`chaind_validators`).

/// What the server needs from the node.
pub mod api;
mod call;
/// Server configuration and limits.
pub mod config;
mod convert;
/// Start-up errors and JSON-RPC error codes.
pub mod error;
mod fees;
mod filters;
mod logs;
mod methods;
mod pubsub;
/// Starting and stopping the server.
pub mod server;
mod wire;

pub use api::{
    ApiError, ChainApi, HeadEvent, Health, IndexedBlock, PoolContent, PoolRejection,
    PoolTransaction, StakingAccountView, SyncStatus, ValidatorStake, ValidatorsView,
};
pub use config::{MetricsRenderer, RpcConfig};
pub use error::RpcError;
pub use server::{RpcHandle, start};
