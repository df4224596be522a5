//! The incremental trie: applies a sorted batch of key updates to a trie whose nodes are loaded
//! on demand from a [`NodeSource`], then rehashes only the nodes the batch changed.
//!
//! Nodes are addressed by their path (the nibbles from the root to the node), so a changed node
//! overwrites its previous version in the store and a removed one deletes it: the store holds
//! exactly the latest trie, with no garbage keyed by stale hashes.

use super::nibbles::common_prefix;
use super::node::{
    BranchNode, ExtensionNode, LeafNode, Node, NodeMeta, NodeRef, decode_node, encode_branch,
    encode_extension, encode_leaf,
};
use super::{EMPTY_ROOT_HASH, NodeSource};
use crate::StateError;
use alloy_primitives::map::HashSet;
use alloy_primitives::{B256, keccak256};
use rayon::prelude::*;

/// Paths of stored nodes changed or removed by an update.
type Touched = Vec<Vec<u8>>;

/// Nodes to store: (nibble path, node RLP).
pub(crate) type NodeWrites = Vec<(Vec<u8>, Vec<u8>)>;

/// Batches at least this large are split across the root branch's children in parallel.
const PARALLEL_UPDATES: usize = 64;

/// One change to a trie: set `key` (nibbles) to `value`, or delete it when `value` is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NibbleUpdate {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
    /// The key's current value if the caller knows it (from the flat state). It lets the
    /// update recognise the key's leaf by its hash instead of loading it from the store.
    pub(crate) old_value: Option<Vec<u8>>,
}

impl NibbleUpdate {
    /// An update without knowledge of the current value.
    pub(crate) fn new(key: Vec<u8>, value: Option<Vec<u8>>) -> Self {
        Self {
            key,
            value,
            old_value: None,
        }
    }
}

/// The node-store changes of one trie commit. Paths are nibble paths from the trie's root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrieChanges {
    /// Nodes to store: (path, node RLP).
    pub writes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Paths whose stored node no longer exists.
    pub deletes: Vec<Vec<u8>>,
}

/// Applies `updates` (sorted by key, one per key, all keys starting with `path`) to `node`,
/// the subtrie at `path`. Paths of stored nodes that were changed or removed are appended to
/// `touched`.
pub(crate) fn update<S: NodeSource + ?Sized>(
    node: Node,
    path: &mut Vec<u8>,
    updates: &[NibbleUpdate],
    source: &S,
    touched: &mut Vec<Vec<u8>>,
) -> Result<Node, StateError> {
    if updates.is_empty() {
        return Ok(node);
    }
    let depth = path.len();
    match node {
        Node::Unloaded(hash) => {
            let loaded = match known_leaf(hash, path, updates) {
                Some(leaf) => leaf,
                None => load(source, path, hash)?,
            };
            update(loaded, path, updates, source, touched)
        }
        Node::Empty => {
            let inserts: Vec<(&[u8], &[u8])> = updates
                .iter()
                .filter_map(|u| u.value.as_deref().map(|v| (&u.key[..], v)))
                .collect();
            Ok(build_fresh(depth, &inserts))
        }
        Node::Leaf(leaf) => {
            let leaf_key_matches = |u: &NibbleUpdate| u.key[depth..] == leaf.key[..];
            if updates
                .iter()
                .all(|u| u.value.is_none() && !leaf_key_matches(u))
            {
                // Only deletions of keys that are not here: nothing changes.
                return Ok(Node::Leaf(leaf));
            }
            touch(&leaf.meta, path, touched);
            let mut full_key = path.clone();
            full_key.extend_from_slice(&leaf.key);
            let mut entries: Vec<(&[u8], &[u8])> = Vec::with_capacity(updates.len() + 1);
            let mut leaf_pending = !updates.iter().any(leaf_key_matches);
            for u in updates {
                if leaf_pending && full_key[..] < u.key[..] {
                    entries.push((&full_key, &leaf.value));
                    leaf_pending = false;
                }
                if let Some(value) = &u.value {
                    entries.push((&u.key, value));
                }
            }
            if leaf_pending {
                entries.push((&full_key, &leaf.value));
            }
            Ok(build_fresh(depth, &entries))
        }
        Node::Extension(ext) => update_extension(ext, path, updates, source, touched),
        Node::Branch(branch) => update_branch(branch, path, updates, source, touched),
    }
}

/// The unloaded node `hash` at `path` rebuilt without reading the store, when it is the leaf
/// of the only key updated below it: that leaf's encoding follows from the key and its
/// current value, and the hash confirms it is the node (anything else hashes differently).
fn known_leaf(hash: B256, path: &[u8], updates: &[NibbleUpdate]) -> Option<Node> {
    let [update] = updates else { return None };
    let old_value = update.old_value.as_ref()?;
    let key = &update.key[path.len()..];
    let mut encoded = Vec::with_capacity(40 + key.len() / 2 + old_value.len());
    encode_leaf(key, old_value, &mut encoded);
    // Only the root is stored (and referenced by hash) whatever its size.
    if (encoded.len() < 32 && !path.is_empty()) || keccak256(&encoded) != hash {
        return None;
    }
    let meta = NodeMeta {
        reference: Some(NodeRef::Hash(hash)),
        persisted: true,
    };
    Some(Node::Leaf(Box::new(LeafNode {
        key: key.to_vec(),
        value: old_value.clone(),
        meta,
    })))
}

fn update_extension<S: NodeSource + ?Sized>(
    ext: Box<ExtensionNode>,
    path: &mut Vec<u8>,
    updates: &[NibbleUpdate],
    source: &S,
    touched: &mut Vec<Vec<u8>>,
) -> Result<Node, StateError> {
    let depth = path.len();
    // Where the first inserted key leaves the extension's path, if one does.
    let split_at = updates
        .iter()
        .filter(|u| u.value.is_some())
        .map(|u| common_prefix(&u.key[depth..], &ext.key))
        .filter(|&shared| shared < ext.key.len())
        .min();
    match split_at {
        None => {
            // Updates below the extension form one contiguous run, the keys being sorted;
            // deletions of keys elsewhere change nothing.
            let below = |u: &NibbleUpdate| u.key[depth..].starts_with(&ext.key);
            let Some(start) = updates.iter().position(below) else {
                return Ok(Node::Extension(ext));
            };
            let end = start + updates[start..].iter().take_while(|u| below(u)).count();
            touch(&ext.meta, path, touched);
            let ExtensionNode { key, child, .. } = *ext;
            path.extend_from_slice(&key);
            let child = update(child, path, &updates[start..end], source, touched);
            path.truncate(depth);
            join_extension(key, child?, path, touched)
        }
        Some(split_at) => {
            // Restructure into extension(key[..split]) -> branch -> rest, then apply the
            // updates to the new (dirty, not stored) structure.
            touch(&ext.meta, path, touched);
            let ExtensionNode { mut key, child, .. } = *ext;
            let lower_key = key.split_off(split_at + 1);
            let branch_nibble = key.pop().expect("split point lies inside the key");
            let lower = if lower_key.is_empty() {
                child
            } else {
                Node::extension(lower_key, child)
            };
            let mut branch = BranchNode::empty();
            branch.children[branch_nibble as usize] = lower;
            let restructured = if key.is_empty() {
                Node::Branch(Box::new(branch))
            } else {
                Node::extension(key, Node::Branch(Box::new(branch)))
            };
            update(restructured, path, updates, source, touched)
        }
    }
}

fn update_branch<S: NodeSource + ?Sized>(
    mut branch: Box<BranchNode>,
    path: &mut Vec<u8>,
    updates: &[NibbleUpdate],
    source: &S,
    touched: &mut Vec<Vec<u8>>,
) -> Result<Node, StateError> {
    let depth = path.len();
    touch(&branch.meta, path, touched);
    branch.meta = NodeMeta::DIRTY;

    // A key ending exactly here is a prefix of every other key below, so it sorts first.
    let mut rest = updates;
    while let Some((first, tail)) = rest.split_first() {
        if first.key.len() != depth {
            break;
        }
        branch.value = first.value.clone();
        rest = tail;
    }

    // Group the remaining updates by their next nibble.
    let mut groups: Vec<(usize, &[NibbleUpdate])> = Vec::new();
    while let Some(first) = rest.first() {
        let nibble = first.key[depth];
        let len = rest.iter().take_while(|u| u.key[depth] == nibble).count();
        groups.push((nibble as usize, &rest[..len]));
        rest = &rest[len..];
    }

    if depth == 0 && updates.len() >= PARALLEL_UPDATES && groups.len() > 1 {
        let mut jobs: Vec<(usize, Node, &[NibbleUpdate])> = groups
            .iter()
            .map(|&(nibble, group)| (nibble, std::mem::take(&mut branch.children[nibble]), group))
            .collect();
        let results: Vec<Result<(Node, Touched), StateError>> = jobs
            .par_iter_mut()
            .map(|(nibble, child, group)| {
                let mut child_path = vec![*nibble as u8];
                let mut child_touched = Vec::new();
                let node = std::mem::take(child);
                update(node, &mut child_path, group, source, &mut child_touched)
                    .map(|node| (node, child_touched))
            })
            .collect();
        for ((nibble, _, _), result) in jobs.iter().zip(results) {
            let (node, child_touched) = result?;
            branch.children[*nibble] = node;
            touched.extend(child_touched);
        }
    } else {
        for (nibble, group) in groups {
            let child = std::mem::take(&mut branch.children[nibble]);
            path.push(nibble as u8);
            let child = update(child, path, group, source, touched);
            path.pop();
            branch.children[nibble] = child?;
        }
    }
    collapse_branch(branch, path, source, touched)
}

/// Turns a branch left with fewer than two entries into the equivalent smaller node.
fn collapse_branch<S: NodeSource + ?Sized>(
    mut branch: Box<BranchNode>,
    path: &mut Vec<u8>,
    source: &S,
    touched: &mut Vec<Vec<u8>>,
) -> Result<Node, StateError> {
    let mut occupied = branch
        .children
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.is_empty());
    let only = match (occupied.next(), occupied.next()) {
        (Some(_), Some(_)) => return Ok(Node::Branch(branch)),
        (None, _) => {
            return Ok(match branch.value.take() {
                Some(value) => Node::leaf(Vec::new(), value),
                None => Node::Empty,
            });
        }
        (Some((nibble, _)), None) => nibble,
    };
    if branch.value.is_some() {
        return Ok(Node::Branch(branch));
    }
    let child = std::mem::take(&mut branch.children[only]);
    path.push(only as u8);
    let child = match child {
        Node::Unloaded(hash) => load(source, path, hash),
        other => Ok(other),
    };
    let merged = child.map(|child| prepend(only as u8, child, path, touched));
    path.pop();
    merged
}

/// The node for `key` followed by `child` (which sits at `path ++ key`).
fn join_extension(
    mut key: Vec<u8>,
    child: Node,
    path: &mut Vec<u8>,
    touched: &mut Vec<Vec<u8>>,
) -> Result<Node, StateError> {
    let depth = path.len();
    path.extend_from_slice(&key);
    let joined = match child {
        Node::Empty => Node::Empty,
        Node::Leaf(leaf) => {
            touch(&leaf.meta, path, touched);
            key.extend_from_slice(&leaf.key);
            Node::leaf(key, leaf.value)
        }
        Node::Extension(ext) => {
            touch(&ext.meta, path, touched);
            key.extend_from_slice(&ext.key);
            Node::extension(key, ext.child)
        }
        branch @ (Node::Branch(_) | Node::Unloaded(_)) => Node::extension(key, branch),
    };
    path.truncate(depth);
    Ok(joined)
}

/// The node for nibble `nibble` followed by `child`, merging leaves and extensions upwards.
/// `path` is the child's path.
fn prepend(nibble: u8, child: Node, path: &[u8], touched: &mut Vec<Vec<u8>>) -> Node {
    match child {
        Node::Leaf(leaf) => {
            touch(&leaf.meta, path, touched);
            let LeafNode { key, value, .. } = *leaf;
            Node::leaf(prefixed(nibble, &key), value)
        }
        Node::Extension(ext) => {
            touch(&ext.meta, path, touched);
            let ExtensionNode { key, child, .. } = *ext;
            Node::extension(prefixed(nibble, &key), child)
        }
        other => Node::extension(vec![nibble], other),
    }
}

fn prefixed(nibble: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(nibble);
    out.extend_from_slice(key);
    out
}

fn touch(meta: &NodeMeta, path: &[u8], touched: &mut Vec<Vec<u8>>) {
    if meta.persisted {
        touched.push(path.to_vec());
    }
}

/// Loads the node stored at `path`, whose parent references it by `hash`.
pub(crate) fn load<S: NodeSource + ?Sized>(
    source: &S,
    path: &[u8],
    hash: B256,
) -> Result<Node, StateError> {
    let encoded = source.load(path)?.ok_or_else(|| {
        StateError::corruption(format!("missing trie node {hash} at path {path:x?}"))
    })?;
    decode_node(
        &encoded,
        NodeMeta {
            reference: Some(NodeRef::Hash(hash)),
            persisted: true,
        },
    )
}

/// Builds the subtrie at depth `depth` holding `entries` (sorted, distinct keys, all sharing
/// the first `depth` nibbles).
fn build_fresh(depth: usize, entries: &[(&[u8], &[u8])]) -> Node {
    match entries {
        [] => Node::Empty,
        [(key, value)] => Node::leaf(key[depth..].to_vec(), value.to_vec()),
        [(first, _), .., (last, _)] => {
            let shared = common_prefix(&first[depth..], &last[depth..]);
            let branch = build_branch(depth + shared, entries);
            if shared == 0 {
                branch
            } else {
                Node::extension(first[depth..depth + shared].to_vec(), branch)
            }
        }
    }
}

fn build_branch(depth: usize, mut entries: &[(&[u8], &[u8])]) -> Node {
    let mut branch = BranchNode::empty();
    if let Some(((key, value), rest)) = entries.split_first()
        && key.len() == depth
    {
        branch.value = Some(value.to_vec());
        entries = rest;
    }
    while let Some((first, _)) = entries.first() {
        let nibble = first[depth];
        let len = entries
            .iter()
            .take_while(|(k, _)| k[depth] == nibble)
            .count();
        branch.children[nibble as usize] = build_fresh(depth + 1, &entries[..len]);
        entries = &entries[len..];
    }
    Node::Branch(Box::new(branch))
}

/// Computes the references of all dirty nodes below and including `node` (at `path`),
/// appending the nodes the store must hold to `writes` when `writes` is given.
pub(crate) fn hash_node(
    node: &mut Node,
    path: &mut Vec<u8>,
    writes: &mut Option<NodeWrites>,
) -> Option<NodeRef> {
    if let Some(reference) = node.cached_reference() {
        return Some(reference);
    }
    // Branches with hashed children take 532 bytes; allocate once.
    let capacity = match node {
        Node::Branch(_) => 560,
        Node::Leaf(leaf) => 40 + leaf.key.len() / 2 + leaf.value.len(),
        _ => 72,
    };
    let mut encoded = Vec::with_capacity(capacity);
    let meta = match node {
        Node::Empty => return None,
        Node::Unloaded(_) => unreachable!("unloaded nodes always have a reference"),
        Node::Leaf(leaf) => {
            encode_leaf(&leaf.key, &leaf.value, &mut encoded);
            &mut leaf.meta
        }
        Node::Extension(ext) => {
            let depth = path.len();
            path.extend_from_slice(&ext.key);
            let child = hash_node(&mut ext.child, path, writes);
            path.truncate(depth);
            let child = child.expect("an extension always has a child");
            encode_extension(&ext.key, &child, &mut encoded);
            &mut ext.meta
        }
        Node::Branch(branch) => {
            let mut references = [None; 16];
            let dirty_children = branch
                .children
                .iter()
                .filter(|c| !c.is_empty() && c.cached_reference().is_none())
                .count();
            if path.is_empty() && dirty_children > 1 {
                hash_children_in_parallel(branch, &mut references, writes);
            } else {
                for (nibble, child) in branch.children.iter_mut().enumerate() {
                    path.push(nibble as u8);
                    references[nibble] = hash_node(child, path, writes);
                    path.pop();
                }
            }
            encode_branch(&references, branch.value.as_deref(), &mut encoded);
            &mut branch.meta
        }
    };
    let reference = NodeRef::of(&encoded);
    meta.reference = Some(reference);
    // Roots are stored whatever their size; other nodes only when referenced by hash
    // (smaller ones live inside their parent).
    if let Some(writes) = writes
        && (path.is_empty() || matches!(reference, NodeRef::Hash(_)))
    {
        // From now on the store holds this node here, so changing it must be recorded.
        meta.persisted = true;
        writes.push((path.clone(), encoded));
    }
    Some(reference)
}

fn hash_children_in_parallel(
    branch: &mut BranchNode,
    references: &mut [Option<NodeRef>; 16],
    writes: &mut Option<NodeWrites>,
) {
    let collect = writes.is_some();
    let results: Vec<(Option<NodeRef>, Option<NodeWrites>)> = branch
        .children
        .par_iter_mut()
        .enumerate()
        .map(|(nibble, child)| {
            let mut child_writes = collect.then(Vec::new);
            let reference = hash_node(child, &mut vec![nibble as u8], &mut child_writes);
            (reference, child_writes)
        })
        .collect();
    for (nibble, (reference, child_writes)) in results.into_iter().enumerate() {
        references[nibble] = reference;
        if let (Some(writes), Some(child_writes)) = (writes.as_mut(), child_writes) {
            writes.extend(child_writes);
        }
    }
}

/// Unloads the nodes at paths of `max_depth` nibbles or more below `node` (at `depth`),
/// replacing each by its hash, so that what stays in memory is bounded. Only clean nodes
/// referenced by hash are unloaded: they are stored at their path and load back from there.
/// The unloaded subtrees go to `unloaded` (so that the caller chooses when to free them).
pub(crate) fn prune_below(
    node: &mut Node,
    depth: usize,
    max_depth: usize,
    unloaded: &mut Vec<Node>,
) {
    if depth >= max_depth
        && !matches!(node, Node::Unloaded(_))
        && let Some(NodeRef::Hash(hash)) = node.cached_reference()
    {
        unloaded.push(std::mem::replace(node, Node::Unloaded(hash)));
        return;
    }
    match node {
        Node::Branch(branch) => {
            for child in branch.children.iter_mut() {
                prune_below(child, depth + 1, max_depth, unloaded);
            }
        }
        Node::Extension(ext) => {
            let child_depth = depth + ext.key.len();
            prune_below(&mut ext.child, child_depth, max_depth, unloaded);
        }
        Node::Empty | Node::Unloaded(_) | Node::Leaf(_) => {}
    }
}

/// [`prune_below`] restricted to the paths of `keys` (sorted, the batch just applied): only
/// nodes on those paths, and children of branches on them (which collapses may have loaded),
/// can have been loaded since the trie was last pruned, so only those need visiting.
pub(crate) fn prune_along(
    node: &mut Node,
    depth: usize,
    max_depth: usize,
    keys: &[NibbleUpdate],
    unloaded: &mut Vec<Node>,
) {
    if keys.is_empty() {
        return;
    }
    if depth >= max_depth {
        prune_below(node, depth, max_depth, unloaded);
        return;
    }
    match node {
        Node::Branch(branch) if depth + 1 >= max_depth => {
            for child in branch.children.iter_mut() {
                prune_below(child, depth + 1, max_depth, unloaded);
            }
        }
        Node::Branch(branch) => {
            let mut rest = keys;
            while let Some(first) = rest.first() {
                if first.key.len() > depth {
                    let nibble = first.key[depth];
                    let len = rest
                        .iter()
                        .take_while(|u| u.key.len() > depth && u.key[depth] == nibble)
                        .count();
                    let child = &mut branch.children[nibble as usize];
                    prune_along(child, depth + 1, max_depth, &rest[..len], unloaded);
                    rest = &rest[len..];
                } else {
                    rest = &rest[1..];
                }
            }
        }
        Node::Extension(ext) => {
            let child_depth = depth + ext.key.len();
            prune_along(&mut ext.child, child_depth, max_depth, keys, unloaded);
        }
        Node::Empty | Node::Unloaded(_) | Node::Leaf(_) => {}
    }
}

/// A trie being updated: its root node (loaded lazily from `source`), the stored paths changed
/// so far, and the nodes hashed so far that the store must receive.
pub(crate) struct IncrementalTrie<'s, S: ?Sized> {
    root: Node,
    source: &'s S,
    touched: Vec<Vec<u8>>,
    writes: NodeWrites,
    /// Whether hashing collects the nodes to store (false for tries that live in memory only).
    collect_writes: bool,
}

impl<'s, S: NodeSource + ?Sized> IncrementalTrie<'s, S> {
    /// The trie whose root hash is `root`, its nodes in `source`.
    pub(crate) fn open(source: &'s S, root: B256) -> Self {
        let root = if root == EMPTY_ROOT_HASH {
            Node::Empty
        } else {
            Node::Unloaded(root)
        };
        Self {
            root,
            source,
            touched: Vec::new(),
            writes: Vec::new(),
            collect_writes: true,
        }
    }

    /// The trie whose root node is already (partly) in memory, from an earlier commit.
    pub(crate) fn from_node(source: &'s S, root: Node) -> Self {
        Self {
            root,
            source,
            touched: Vec::new(),
            writes: Vec::new(),
            collect_writes: true,
        }
    }

    /// An empty trie that is never persisted: hashing collects no node writes.
    pub(crate) fn in_memory(source: &'s S) -> Self {
        Self {
            root: Node::Empty,
            source,
            touched: Vec::new(),
            writes: Vec::new(),
            collect_writes: false,
        }
    }

    /// Applies a batch of updates, sorted by key with one update per key.
    pub(crate) fn apply(&mut self, updates: &[NibbleUpdate]) -> Result<(), StateError> {
        debug_assert!(
            updates.windows(2).all(|w| w[0].key < w[1].key),
            "unsorted updates"
        );
        let root = std::mem::take(&mut self.root);
        let touched_before = self.touched.len();
        self.root = update(
            root,
            &mut Vec::new(),
            updates,
            self.source,
            &mut self.touched,
        )?;
        if !self.writes.is_empty() && self.touched.len() > touched_before {
            // Nodes written by an earlier hashing pass and changed since are stale.
            let stale: HashSet<&[u8]> = self.touched[touched_before..]
                .iter()
                .map(|p| &p[..])
                .collect();
            self.writes.retain(|(path, _)| !stale.contains(&path[..]));
        }
        Ok(())
    }

    /// The current root hash, hashing what changed since the last call.
    pub(crate) fn root_hash(&mut self) -> B256 {
        let mut writes = self
            .collect_writes
            .then(|| std::mem::take(&mut self.writes));
        let root = hash_node(&mut self.root, &mut Vec::new(), &mut writes);
        self.writes = writes.unwrap_or_default();
        root.map_or(EMPTY_ROOT_HASH, |r| r.root_hash())
    }

    /// Hashes what changed and returns the root with the store changes that persist it.
    pub(crate) fn commit(self) -> (B256, TrieChanges) {
        let (root, changes, _) = self.commit_keeping_nodes();
        (root, changes)
    }

    /// [`IncrementalTrie::commit`], also returning the (now clean) root node for reuse.
    pub(crate) fn commit_keeping_nodes(mut self) -> (B256, TrieChanges, Node) {
        let root = self.root_hash();
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        if !self.touched.is_empty() {
            let written: HashSet<&[u8]> = self.writes.iter().map(|(path, _)| &path[..]).collect();
            deletes = self
                .touched
                .iter()
                .filter(|p| !written.contains(&p[..]))
                .cloned()
                .collect();
            deletes.sort_unstable();
            deletes.dedup();
        }
        (
            root,
            TrieChanges {
                writes: self.writes,
                deletes,
            },
            self.root,
        )
    }
}
