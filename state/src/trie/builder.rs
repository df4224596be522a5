//! Building a whole trie from sorted leaves in one pass, without materialising nodes: the
//! from-scratch root computation used for genesis-sized inputs, snapshot import, verification
//! of the incremental trie, and `InMemoryState`.

use super::EMPTY_ROOT_HASH;
use super::nibbles::nibble_at;
use super::node::{NodeRef, encode_branch, encode_extension, encode_leaf};
use alloy_primitives::B256;
use rayon::prelude::*;

/// Inputs at least this large have the root's subtries built in parallel.
const PARALLEL_ENTRIES: usize = 4096;

/// Where built nodes go: called with (nibble path, node RLP) for every node a node store holds
/// (nodes referenced by hash, and the root). Called from several threads.
pub type NodeSink<'a> = &'a (dyn Fn(&[u8], &[u8]) + Sync);

/// Computes the root of the trie holding `entries`, which must be sorted by key with distinct
/// keys (byte strings; any length). Every node to store is passed to `sink` if given.
pub fn build_root<K, V>(entries: &[(K, V)], sink: Option<NodeSink<'_>>) -> B256
where
    K: AsRef<[u8]> + Sync,
    V: AsRef<[u8]> + Sync,
{
    debug_assert!(
        entries
            .windows(2)
            .all(|w| w[0].0.as_ref() < w[1].0.as_ref()),
        "unsorted"
    );
    if entries.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    let mut path = Vec::new();
    build_subtrie(entries, 0, &mut path, sink).root_hash()
}

/// The branch without a value at `path` over `children` (at least two, built at `path` plus
/// their nibble), stored through `sink` as [`build_root`] stores a branch there.
pub(crate) fn branch_over(
    children: &[Option<NodeRef>; 16],
    path: &[u8],
    sink: Option<NodeSink<'_>>,
) -> NodeRef {
    debug_assert!(children.iter().flatten().count() >= 2, "not a branch");
    let mut encoded = Vec::with_capacity(532);
    encode_branch(children, None, &mut encoded);
    stored(path, &encoded, sink)
}

/// The reference to the node `encoded` at `path`, passing it to `sink` if a node store holds
/// it: the root, and nodes referenced by hash (smaller ones live inside their parent).
fn stored(path: &[u8], encoded: &[u8], sink: Option<NodeSink<'_>>) -> NodeRef {
    let reference = NodeRef::of(encoded);
    if let Some(sink) = sink
        && (path.is_empty() || matches!(reference, NodeRef::Hash(_)))
    {
        sink(path, encoded);
    }
    reference
}

fn nibble_len<K: AsRef<[u8]>>(key: &K) -> usize {
    key.as_ref().len() * 2
}

fn key_nibbles(key: &[u8], from: usize, to: usize) -> Vec<u8> {
    (from..to).map(|i| nibble_at(key, i)).collect()
}

/// The node of the subtrie at `path` (of `depth` nibbles) holding `entries` (sorted, distinct,
/// not empty, every key starting with `path`), with every node to store passed to `sink`.
/// [`branch_over`] joins subtries built on their own.
pub(crate) fn build_subtrie<K, V>(
    entries: &[(K, V)],
    depth: usize,
    path: &mut Vec<u8>,
    sink: Option<NodeSink<'_>>,
) -> NodeRef
where
    K: AsRef<[u8]> + Sync,
    V: AsRef<[u8]> + Sync,
{
    let mut encoded = Vec::with_capacity(128);
    match entries {
        [] => unreachable!("subtries are never empty"),
        [(key, value)] => {
            let key = key.as_ref();
            let rest = key_nibbles(key, depth, key.len() * 2);
            encode_leaf(&rest, value.as_ref(), &mut encoded);
        }
        [(first, _), .., (last, _)] => {
            let (first, last) = (first.as_ref(), last.as_ref());
            let max = first.len().min(last.len()) * 2;
            let shared = (depth..max)
                .take_while(|&i| nibble_at(first, i) == nibble_at(last, i))
                .count();
            if shared == 0 {
                build_branch(entries, depth, path, sink, &mut encoded);
            } else {
                let ext_key = key_nibbles(first, depth, depth + shared);
                let mut branch = Vec::with_capacity(128);
                path.extend_from_slice(&ext_key);
                build_branch(entries, depth + shared, path, sink, &mut branch);
                let child = NodeRef::of(&branch);
                if let (Some(sink), NodeRef::Hash(_)) = (sink, child) {
                    sink(path, &branch);
                }
                path.truncate(depth);
                encode_extension(&ext_key, &child, &mut encoded);
            }
        }
    }
    stored(path, &encoded, sink)
}

/// Appends the RLP of the branch at `depth` over `entries` (at least two, or one ending here
/// plus others); stores children as they are built.
fn build_branch<K, V>(
    mut entries: &[(K, V)],
    depth: usize,
    path: &mut Vec<u8>,
    sink: Option<NodeSink<'_>>,
    out: &mut Vec<u8>,
) where
    K: AsRef<[u8]> + Sync,
    V: AsRef<[u8]> + Sync,
{
    let mut value = None;
    if let Some(((key, v), rest)) = entries.split_first()
        && nibble_len(key) == depth
    {
        value = Some(v.as_ref());
        entries = rest;
    }
    let mut groups: Vec<(usize, &[(K, V)])> = Vec::with_capacity(16);
    while let Some((first, _)) = entries.first() {
        let nibble = nibble_at(first.as_ref(), depth);
        let len = entries
            .iter()
            .take_while(|(k, _)| nibble_at(k.as_ref(), depth) == nibble)
            .count();
        groups.push((nibble as usize, &entries[..len]));
        entries = &entries[len..];
    }
    let mut references = [None; 16];
    let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
    if depth <= 1 && total >= PARALLEL_ENTRIES {
        let built: Vec<(usize, NodeRef)> = groups
            .par_iter()
            .map(|&(nibble, group)| {
                let mut child_path = path.clone();
                child_path.push(nibble as u8);
                (
                    nibble,
                    build_subtrie(group, depth + 1, &mut child_path, sink),
                )
            })
            .collect();
        for (nibble, reference) in built {
            references[nibble] = Some(reference);
        }
    } else {
        for (nibble, group) in groups {
            path.push(nibble as u8);
            references[nibble] = Some(build_subtrie(group, depth + 1, path, sink));
            path.pop();
        }
    }
    encode_branch(&references, value, out);
}
