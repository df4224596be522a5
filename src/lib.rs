//! chaind, the node: a proof-of-stake, EVM-compatible chain whose blocks execute in parallel
//! with Block-STM. This library holds the parts of the `chaind` binary that tests and
//! benchmarks reach directly: the execution benchmark ([`bench`]), the state-test runner
//! ([`statetest`]) and the binary's allocator ([`alloc`]).

/// The global allocator, with optional peak-memory accounting.
pub mod alloc;
/// `chaind bench`: execution benchmarks.
pub mod bench;
/// `chaind statetest`: the GeneralStateTests runner.
pub mod statetest;
