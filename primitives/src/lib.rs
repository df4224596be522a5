//! Shared chain types for chaind: [`Block`]s with Ethereum-shaped headers and a
//! [`ConsensusSeal`] beside them, [`StoredReceipt`]s and the transactions/receipts roots, the
//! [`ChainGenesis`] file format, accounts, the read-only [`StateReader`] trait that the
//! executor reads committed state through, the [`StateDiff`] a block produces and the state
//! commits, and an in-memory [`InMemoryState`] used as the reference state in tests and
//! benchmarks.
//!
//! This crate sits at the bottom of the workspace: it depends on nothing of ours, and every
//! other crate may depend on it.

/// Account records as stored in the state: nonce, balance, code hash.
pub mod account;
/// Blocks, headers and consensus seals.
pub mod block;
/// Deterministic keys of dev and load-test accounts.
pub mod dev;
/// The state diff that block execution produces and the state commits.
pub mod diff;
/// Errors of this crate.
pub mod error;
/// Genesis files: geth's format plus a consensus section.
pub mod genesis;
/// An in-memory state behind [`StateReader`], for tests, benchmarks and the statetest runner.
pub mod memory;
/// The read-only committed-state interface.
pub mod reader;
/// Stored receipts and the receipts and transactions roots.
pub mod receipt;

pub use account::{Account, KECCAK_EMPTY};
pub use alloy_consensus::{Header, TxEnvelope};
pub use block::{Block, ConsensusSeal, SealedBlock};
pub use diff::{AccountUpdate, StateDiff};
pub use error::PrimitivesError;
pub use genesis::{ChainGenesis, ConsensusGenesis, GenesisValidator};
pub use memory::InMemoryState;
pub use reader::StateReader;
pub use receipt::{StoredReceipt, receipts_root, transactions_root};

pub use alloy_primitives::{Address, B256, Bytes, U256};
