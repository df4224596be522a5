//! Ethereum's Merkle Patricia Trie, written for this crate: node encoding and hashing exactly as
//! the Yellow Paper specifies (hex-prefix paths, branch/extension/leaf nodes, nodes under 32
//! bytes inlined into their parent), an incremental trie that loads nodes by path and rehashes
//! only what a batch of updates touched, and a one-pass builder over sorted leaves.

mod builder;
mod ethereum;
mod nibbles;
mod node;
mod rlp;
mod update;

pub use builder::{NodeSink, build_root};
pub(crate) use builder::{branch_over, build_subtrie};
pub use ethereum::{
    account_rlp, hashed_key, secure_root, state_root, state_root_of, storage_root,
    storage_value_rlp,
};
pub use update::TrieChanges;

pub(crate) use nibbles::{pack_path, unpack};
pub(crate) use node::{Node, NodeRef};
#[cfg(test)]
use update::prune_below;
pub(crate) use update::{IncrementalTrie, NibbleUpdate, prune_along};

use crate::StateError;
use alloy_primitives::{B256, b256};

/// Root hash of the empty trie: keccak256(rlp("")).
pub const EMPTY_ROOT_HASH: B256 =
    b256!("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Where an incremental trie loads its nodes from: the node RLP stored at a nibble path.
pub trait NodeSource: Sync {
    /// The RLP of the node stored at `path` (nibbles from the root), `None` if there is none.
    fn load(&self, path: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

/// A node source with no nodes, for tries that start empty and live in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNodes;

impl NodeSource for NoNodes {
    fn load(&self, _path: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }
}

static NO_NODES: NoNodes = NoNodes;

/// A Merkle Patricia Trie held entirely in memory, keyed by raw byte strings of any length
/// (hash the keys yourself for a secure trie). An empty value deletes, as in Ethereum.
pub struct MemoryTrie {
    inner: IncrementalTrie<'static, NoNodes>,
}

impl Default for MemoryTrie {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryTrie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTrie").finish_non_exhaustive()
    }
}

impl MemoryTrie {
    /// An empty trie.
    pub fn new() -> Self {
        Self {
            inner: IncrementalTrie::in_memory(&NO_NODES),
        }
    }

    /// Sets `key` to `value`; an empty `value` deletes the key.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        let value = (!value.is_empty()).then(|| value.to_vec());
        self.apply_all(&[NibbleUpdate::new(unpack(key), value)]);
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn remove(&mut self, key: &[u8]) {
        self.apply_all(&[NibbleUpdate::new(unpack(key), None)]);
    }

    /// Applies many changes at once: (key, `Some(value)` to set or `None` to delete). Later
    /// changes of the same key win.
    pub fn extend<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        changes: impl IntoIterator<Item = (K, Option<V>)>,
    ) {
        let mut updates: Vec<NibbleUpdate> = changes
            .into_iter()
            .map(|(key, value)| {
                let value = value.map(|v| v.as_ref().to_vec()).filter(|v| !v.is_empty());
                NibbleUpdate::new(unpack(key.as_ref()), value)
            })
            .collect();
        sort_dedup(&mut updates);
        self.apply_all(&updates);
    }

    /// The root hash.
    pub fn root_hash(&mut self) -> B256 {
        self.inner.root_hash()
    }

    fn apply_all(&mut self, updates: &[NibbleUpdate]) {
        // Nothing is ever loaded from `NoNodes`, so applying cannot fail.
        if let Err(error) = self.inner.apply(updates) {
            unreachable!("in-memory trie update failed: {error}");
        }
    }
}

/// Sorts updates by key keeping the last update of each key.
pub(crate) fn sort_dedup(updates: &mut Vec<NibbleUpdate>) {
    // A stable sort keeps same-key updates in input order; keep the last of each run.
    updates.sort_by(|a, b| a.key.cmp(&b.key));
    let mut deduped: Vec<NibbleUpdate> = Vec::with_capacity(updates.len());
    for update in updates.drain(..) {
        match deduped.last_mut() {
            Some(last) if last.key == update.key => *last = update,
            _ => deduped.push(update),
        }
    }
    *updates = deduped;
}

#[cfg(test)]
mod tests;
