//! chaind, the node: a proof-of-stake, EVM-compatible chain whose blocks execute in parallel
//! with Block-STM. This library is the `chaind` binary minus its argument parsing: the
//! [`node`] (database, block production and import, the RPC-facing [`node::Node`]), its
//! [`config`] file, the [`dev`] chain, the execution benchmark ([`bench`]), the state-test
//! runner ([`statetest`]), the staking client ([`stake`]) and the binary's allocator
//! ([`alloc`]).

/// The global allocator, with optional peak-memory accounting.
pub mod alloc;
/// `chaind bench`: execution benchmarks.
pub mod bench;
/// The node's configuration file.
pub mod config;
/// `chaind dev`: the one-command dev chain.
pub mod dev;
/// The node: database, block production and import, RPC.
pub mod node;
/// Starting and stopping a node with its RPC server.
pub mod run;
/// `chaind stake`: signing and submitting staking operations.
pub mod stake;
/// `chaind statetest`: the GeneralStateTests runner.
pub mod statetest;
