//! In-memory trie nodes, their Ethereum RLP encoding and its decoding.

use super::nibbles::{decode_hex_prefix, hex_prefix_len, put_hex_prefix};
use super::rlp::{self, Item};
use crate::StateError;
use alloy_primitives::{B256, keccak256};

/// How a parent refers to a child: by hash when the child's RLP is 32 bytes or longer, else by
/// embedding the child's RLP itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeRef {
    /// keccak256 of the child's RLP.
    Hash(B256),
    /// The child's RLP, shorter than 32 bytes.
    Inline { len: u8, bytes: [u8; 31] },
}

impl NodeRef {
    /// The reference to a node whose RLP is `encoded`.
    pub(crate) fn of(encoded: &[u8]) -> Self {
        if encoded.len() < 32 {
            let mut bytes = [0u8; 31];
            bytes[..encoded.len()].copy_from_slice(encoded);
            Self::Inline {
                len: encoded.len() as u8,
                bytes,
            }
        } else {
            Self::Hash(keccak256(encoded))
        }
    }

    /// Length of this reference inside the parent's RLP.
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Self::Hash(_) => 33,
            Self::Inline { len, .. } => *len as usize,
        }
    }

    /// Appends this reference as it appears inside the parent's RLP.
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hash(hash) => {
                out.push(0xa0);
                out.extend_from_slice(hash.as_slice());
            }
            Self::Inline { len, bytes } => out.extend_from_slice(&bytes[..*len as usize]),
        }
    }

    /// The hash a root node with this reference has: roots are always hashed.
    pub(crate) fn root_hash(&self) -> B256 {
        match self {
            Self::Hash(hash) => *hash,
            Self::Inline { len, bytes } => keccak256(&bytes[..*len as usize]),
        }
    }
}

/// Bookkeeping every loaded or built node carries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeMeta {
    /// The node's reference as last computed; `None` while the node is dirty (changed since).
    pub(crate) reference: Option<NodeRef>,
    /// Whether the node store holds this node at this node's path (it was loaded from there).
    /// When such a node is changed or removed, its path is recorded so that the stale stored
    /// copy is overwritten or deleted at commit.
    pub(crate) persisted: bool,
}

impl NodeMeta {
    /// Metadata of a node created in memory.
    pub(crate) const DIRTY: Self = Self {
        reference: None,
        persisted: false,
    };
}

/// A leaf: the rest of the key and the value.
#[derive(Debug)]
pub(crate) struct LeafNode {
    /// Remaining key nibbles below the leaf's position.
    pub(crate) key: Vec<u8>,
    /// The value stored under the key (already RLP encoded for account and storage tries).
    pub(crate) value: Vec<u8>,
    pub(crate) meta: NodeMeta,
}

/// An extension: a run of shared nibbles leading to a branch.
#[derive(Debug)]
pub(crate) struct ExtensionNode {
    /// The shared nibbles, at least one.
    pub(crate) key: Vec<u8>,
    /// The branch below (possibly not loaded yet).
    pub(crate) child: Node,
    pub(crate) meta: NodeMeta,
}

/// A branch: sixteen children and an optional value for a key ending here.
#[derive(Debug)]
pub(crate) struct BranchNode {
    pub(crate) children: [Node; 16],
    /// Value of the key ending at this branch (only non-secure tries have those).
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) meta: NodeMeta,
}

impl BranchNode {
    pub(crate) fn empty() -> Self {
        Self {
            children: Default::default(),
            value: None,
            meta: NodeMeta::DIRTY,
        }
    }
}

/// A trie node in memory.
#[derive(Debug, Default)]
pub(crate) enum Node {
    /// No node: an empty subtrie.
    #[default]
    Empty,
    /// A node referenced by hash that is in the node store but not loaded yet.
    Unloaded(B256),
    Leaf(Box<LeafNode>),
    Extension(Box<ExtensionNode>),
    Branch(Box<BranchNode>),
}

impl Node {
    pub(crate) fn leaf(key: Vec<u8>, value: Vec<u8>) -> Self {
        Self::Leaf(Box::new(LeafNode {
            key,
            value,
            meta: NodeMeta::DIRTY,
        }))
    }

    pub(crate) fn extension(key: Vec<u8>, child: Node) -> Self {
        debug_assert!(!key.is_empty());
        Self::Extension(Box::new(ExtensionNode {
            key,
            child,
            meta: NodeMeta::DIRTY,
        }))
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// The node's reference if it is known without hashing.
    pub(crate) fn cached_reference(&self) -> Option<NodeRef> {
        match self {
            Self::Empty => None,
            Self::Unloaded(hash) => Some(NodeRef::Hash(*hash)),
            Self::Leaf(leaf) => leaf.meta.reference,
            Self::Extension(ext) => ext.meta.reference,
            Self::Branch(branch) => branch.meta.reference,
        }
    }
}

/// Encoding of an empty child slot or an empty value.
pub(crate) const EMPTY_STRING: u8 = 0x80;

/// Appends the RLP of a leaf node.
pub(crate) fn encode_leaf(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let payload = path_rlp_len(key.len()) + rlp::string_len(value);
    rlp::put_list_header(payload, out);
    put_path(key, true, out);
    rlp::put_string(value, out);
}

/// Appends the RLP of an extension node.
pub(crate) fn encode_extension(key: &[u8], child: &NodeRef, out: &mut Vec<u8>) {
    let payload = path_rlp_len(key.len()) + child.encoded_len();
    rlp::put_list_header(payload, out);
    put_path(key, false, out);
    child.put(out);
}

/// Appends the RLP of a branch node.
pub(crate) fn encode_branch(
    children: &[Option<NodeRef>; 16],
    value: Option<&[u8]>,
    out: &mut Vec<u8>,
) {
    let children_len: usize = children
        .iter()
        .map(|c| c.map_or(1, |r| r.encoded_len()))
        .sum();
    let payload = children_len + value.map_or(1, rlp::string_len);
    rlp::put_list_header(payload, out);
    for child in children {
        match child {
            Some(reference) => reference.put(out),
            None => out.push(EMPTY_STRING),
        }
    }
    match value {
        Some(value) => rlp::put_string(value, out),
        None => out.push(EMPTY_STRING),
    }
}

fn put_path(key: &[u8], leaf: bool, out: &mut Vec<u8>) {
    // A one-byte hex-prefix (empty or single-nibble path) starts with a flag below 0x40, so
    // it is its own RLP encoding; longer ones (at most 33 bytes) take a one-byte header.
    let len = hex_prefix_len(key.len());
    if len > 1 {
        out.push(0x80 + len as u8);
    }
    put_hex_prefix(key, leaf, out);
}

/// Length of the RLP string holding the hex-prefix encoding of `nibbles` nibbles.
fn path_rlp_len(nibbles: usize) -> usize {
    let len = hex_prefix_len(nibbles);
    if len == 1 { 1 } else { 1 + len }
}

/// Decodes a stored node. `meta` is what the loaded node should carry; inline children get
/// their own reference and are not persisted on their own.
pub(crate) fn decode_node(encoded: &[u8], meta: NodeMeta) -> Result<Node, StateError> {
    let mut cursor = encoded;
    let Item::List { payload, .. } = rlp::next_item(&mut cursor)? else {
        return Err(StateError::corruption("trie node is not an RLP list"));
    };
    if !cursor.is_empty() {
        return Err(StateError::corruption("trailing bytes after trie node"));
    }
    decode_list(payload, meta)
}

fn decode_list(payload: &[u8], meta: NodeMeta) -> Result<Node, StateError> {
    let mut items = Vec::with_capacity(17);
    let mut cursor = payload;
    while !cursor.is_empty() {
        items.push(rlp::next_item(&mut cursor)?);
    }
    match items.len() {
        2 => {
            let Item::String(encoded_path) = items[0] else {
                return Err(StateError::corruption("trie node path is not a string"));
            };
            let (key, leaf) = decode_hex_prefix(encoded_path)
                .ok_or_else(|| StateError::corruption("bad hex-prefix path in trie node"))?;
            if leaf {
                let Item::String(value) = items[1] else {
                    return Err(StateError::corruption("leaf value is not a string"));
                };
                Ok(Node::Leaf(Box::new(LeafNode {
                    key,
                    value: value.to_vec(),
                    meta,
                })))
            } else {
                if key.is_empty() {
                    return Err(StateError::corruption("extension with an empty path"));
                }
                let child = decode_child(items[1])?;
                if child.is_empty() {
                    return Err(StateError::corruption("extension without a child"));
                }
                Ok(Node::Extension(Box::new(ExtensionNode {
                    key,
                    child,
                    meta,
                })))
            }
        }
        17 => {
            let mut branch = BranchNode::empty();
            branch.meta = meta;
            for (slot, item) in branch.children.iter_mut().zip(&items[..16]) {
                *slot = decode_child(*item)?;
            }
            branch.value = match items[16] {
                Item::String([]) => None,
                Item::String(value) => Some(value.to_vec()),
                Item::List { .. } => {
                    return Err(StateError::corruption("branch value is a list"));
                }
            };
            Ok(Node::Branch(Box::new(branch)))
        }
        n => Err(StateError::corruption(format!("trie node with {n} items"))),
    }
}

fn decode_child(item: Item<'_>) -> Result<Node, StateError> {
    match item {
        Item::String([]) => Ok(Node::Empty),
        Item::String(hash) if hash.len() == 32 => Ok(Node::Unloaded(B256::from_slice(hash))),
        Item::String(_) => Err(StateError::corruption("child reference of bad length")),
        Item::List { payload, raw } => {
            if raw.len() >= 32 {
                return Err(StateError::corruption("inline child of 32 bytes or more"));
            }
            let meta = NodeMeta {
                reference: Some(NodeRef::of(raw)),
                persisted: false,
            };
            decode_list(payload, meta)
        }
    }
}
