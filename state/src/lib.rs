//! The committed world state of chaind: Ethereum's Merkle Patricia Trie over a flat state in
//! RocksDB, with caches, history, pruning and snapshots.
//!
//! [`StateDb`] is the database: [`StateDb::commit_block`] applies a block's
//! [`StateDiff`](chain_primitives::StateDiff) atomically and returns the new state root,
//! rehashing only the touched trie paths (storage tries in parallel) and writing the account
//! trie's top levels, which stay in memory, only every few commits (a crash makes the next
//! open rebuild the account trie from the flat state, in bounded memory: `rebuild.rs`);
//! [`StateDb::revert_to`]
//! undoes blocks for reorgs; [`StateDb::reader`] gives a [`LatestReader`] and
//! [`StateDb::reader_at`] a [`HistoricalReader`], both implementing
//! [`StateReader`](chain_primitives::StateReader) with [`StateError`] as the error.
//! [`StateConfig`] sets retention and cache sizes; [`ChainColumn`] names the node's chain-data
//! column families. Snapshots of the latest state are written by
//! [`StateDb::export_snapshot`] and verified against their root by
//! [`StateDb::import_snapshot`]. The [`trie`] module is the trie itself, usable on its own
//! ([`trie::MemoryTrie`], [`trie::build_root`], [`trie::state_root_of`]).

mod codec;
/// Column families: the state's own and the node's chain data.
pub mod columns;
mod commit;
/// Configuration of a [`StateDb`].
pub mod config;
mod db;
/// Errors of this crate.
pub mod error;
mod filter;
mod history;
/// Readers of committed state: latest and historical.
pub mod reader;
mod rebuild;
/// Snapshots of the latest state: export, and verified import into an empty database.
pub mod snapshot;
/// Ethereum's Merkle Patricia Trie: incremental updates, one-pass building, state roots.
pub mod trie;

pub use codec::StoredAccount;
pub use columns::ChainColumn;
pub use config::{
    MAX_RESIDENT_TRIE_DEPTH, MAX_SMALL_STORAGE_SLOTS, MAX_TOP_WRITE_INTERVAL, StateConfig,
};
pub use db::{ChainWrite, StateDb, StateStats};
pub use error::StateError;
pub use reader::{HistoricalReader, LatestReader};
pub use snapshot::SnapshotInfo;
pub use trie::{EMPTY_ROOT_HASH, state_root_of};

use chain_primitives::{AccountUpdate, InMemoryState, StateDiff};

/// The diff that creates `state` from nothing: every account with its storage and code. Used
/// to commit a genesis or test state.
pub fn diff_of_state(state: &InMemoryState) -> StateDiff {
    let accounts = state
        .accounts()
        .iter()
        .map(|(address, account)| {
            let update = AccountUpdate {
                info: Some(account.info),
                storage_cleared: true,
                storage: account.storage.iter().map(|(k, v)| (*k, *v)).collect(),
            };
            (*address, update)
        })
        .collect();
    let codes = state
        .codes()
        .iter()
        .map(|(hash, code)| (*hash, code.clone()))
        .collect();
    StateDiff { accounts, codes }
}
