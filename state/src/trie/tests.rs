use super::*;
use crate::StateError;
use alloy_primitives::keccak256;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A node store in a hash map, standing in for the database's trie column family.
#[derive(Default)]
struct MapStore(HashMap<Vec<u8>, Vec<u8>>);

impl NodeSource for MapStore {
    fn load(&self, path: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.0.get(path).cloned())
    }
}

impl MapStore {
    fn apply(&mut self, changes: TrieChanges) {
        for path in changes.deletes {
            self.0.remove(&path);
        }
        for (path, node) in changes.writes {
            self.0.insert(path, node);
        }
    }
}

/// Everything the builder would store for `entries`: the exact node set of the latest trie.
fn built_nodes(entries: &BTreeMap<Vec<u8>, Vec<u8>>) -> (B256, HashMap<Vec<u8>, Vec<u8>>) {
    let sorted: Vec<(&Vec<u8>, &Vec<u8>)> = entries.iter().collect();
    let nodes = Mutex::new(HashMap::new());
    let sink = |path: &[u8], node: &[u8]| {
        nodes.lock().unwrap().insert(path.to_vec(), node.to_vec());
    };
    let root = build_root(&sorted, Some(&sink));
    (root, nodes.into_inner().unwrap())
}

fn random_key(rng: &mut StdRng, secure: bool) -> Vec<u8> {
    if secure {
        keccak256(rng.random::<u16>().to_be_bytes()).to_vec()
    } else {
        // Short keys from a tiny alphabet: many shared prefixes and keys that are prefixes of
        // others, so branch values and every collapse case occur.
        let len = rng.random_range(1..4);
        (0..len).map(|_| rng.random_range(0..3u8) * 0x11).collect()
    }
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    // Sizes around the 32-byte inlining threshold.
    let len = rng.random_range(1..40);
    (0..len).map(|_| rng.random()).collect()
}

/// Random batches applied to a persisted trie: after each commit, the root equals a rebuild
/// and the store holds exactly the rebuilt trie's nodes (nothing stale, nothing missing).
fn persisted_trie_matches_rebuild(secure: bool, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = MapStore::default();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut root = EMPTY_ROOT_HASH;
    // The previous round's nodes kept in memory (pruned to a random depth), as commits do.
    let mut resident: Option<Node> = None;
    // Fixed per run, as in a database: pruning along paths relies on earlier rounds having
    // pruned to the same depth.
    let max_depth = rng.random_range(0..6);
    for round in 0..60 {
        let mut updates = Vec::new();
        for _ in 0..rng.random_range(1..30) {
            let key = if !model.is_empty() && rng.random_bool(0.4) {
                model
                    .keys()
                    .nth(rng.random_range(0..model.len()))
                    .unwrap()
                    .clone()
            } else {
                random_key(&mut rng, secure)
            };
            let value = rng.random_bool(0.6).then(|| random_value(&mut rng));
            // The current value as a caller might know it (or get wrong): lets updates
            // recognise leaves by hash instead of loading them.
            let old_value = match rng.random_range(0..10) {
                0..7 => model.get(&key).cloned(),
                7 => Some(random_value(&mut rng)),
                _ => None,
            };
            match &value {
                Some(v) => model.insert(key.clone(), v.clone()),
                None => model.remove(&key),
            };
            updates.push(NibbleUpdate {
                key: unpack(&key),
                value,
                old_value,
            });
        }
        sort_dedup(&mut updates);
        let mut trie = match resident.take() {
            Some(node) => IncrementalTrie::from_node(&store, node),
            None => IncrementalTrie::open(&store, root),
        };
        trie.apply(&updates).unwrap();
        let mut applied = updates.clone();
        if rng.random_bool(0.3) {
            // An intermediate hash must not leave stale writes behind.
            trie.root_hash();
            let mut more = vec![NibbleUpdate::new(
                unpack(&random_key(&mut rng, secure)),
                None,
            )];
            for u in &mut more {
                model.remove(&pack_bytes(&u.key));
            }
            sort_dedup(&mut more);
            trie.apply(&more).unwrap();
            applied.extend(more);
            applied.sort_by(|a, b| a.key.cmp(&b.key));
        }
        let (new_root, changes, mut node) = trie.commit_keeping_nodes();
        store.apply(changes);
        if rng.random_bool(0.7) {
            if rng.random_bool(0.5) {
                prune_below(&mut node, 0, max_depth, &mut Vec::new());
            } else {
                prune_along(&mut node, 0, max_depth, &applied, &mut Vec::new());
            }
            if let Some(path) = find_loaded_below(&node, &mut Vec::new(), max_depth) {
                panic!(
                    "seed {seed} round {round}: node at {path:?} stayed loaded (max depth {max_depth})"
                );
            }
            resident = Some(node);
        }
        let (expected_root, expected_nodes) = built_nodes(&model);
        assert_eq!(new_root, expected_root, "seed {seed} round {round}");
        assert_eq!(
            store.0, expected_nodes,
            "seed {seed} round {round}: stored nodes"
        );
        root = new_root;
    }
}

/// The path of a node stored by hash that is still loaded at `max_depth` or deeper, if any.
fn find_loaded_below(node: &Node, path: &mut Vec<u8>, max_depth: usize) -> Option<Vec<u8>> {
    if path.len() >= max_depth
        && !matches!(node, Node::Unloaded(_) | Node::Empty)
        && matches!(node.cached_reference(), Some(super::node::NodeRef::Hash(_)))
    {
        return Some(path.clone());
    }
    match node {
        Node::Branch(branch) => {
            for (i, child) in branch.children.iter().enumerate() {
                path.push(i as u8);
                let found = find_loaded_below(child, path, max_depth);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Node::Extension(ext) => {
            let depth = path.len();
            path.extend_from_slice(&ext.key);
            let found = find_loaded_below(&ext.child, path, max_depth);
            path.truncate(depth);
            found
        }
        _ => None,
    }
}

fn pack_bytes(nibbles: &[u8]) -> Vec<u8> {
    nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

#[test]
fn persisted_secure_trie_matches_rebuild() {
    for seed in 0..12 {
        persisted_trie_matches_rebuild(true, seed);
    }
}

#[test]
fn persisted_raw_trie_with_prefix_keys_matches_rebuild() {
    for seed in 100..130 {
        persisted_trie_matches_rebuild(false, seed);
    }
}

#[test]
fn memory_trie_agrees_with_builder_under_random_edits() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut trie = MemoryTrie::new();
    let mut model = BTreeMap::new();
    for _ in 0..2000 {
        let key = random_key(&mut rng, false);
        if rng.random_bool(0.35) {
            trie.remove(&key);
            model.remove(&key);
        } else {
            let value = random_value(&mut rng);
            trie.insert(&key, &value);
            model.insert(key, value);
        }
        if rng.random_bool(0.2) {
            assert_eq!(trie.root_hash(), built_nodes(&model).0);
        }
    }
    assert_eq!(trie.root_hash(), built_nodes(&model).0);
}

#[test]
fn empty_trie_root_is_keccak_of_rlp_empty_string() {
    assert_eq!(EMPTY_ROOT_HASH, keccak256([0x80]));
    assert_eq!(MemoryTrie::new().root_hash(), EMPTY_ROOT_HASH);
    let empty: [(&[u8], &[u8]); 0] = [];
    assert_eq!(build_root(&empty, None), EMPTY_ROOT_HASH);
}

#[test]
fn deleting_everything_returns_to_the_empty_root_and_empty_store() {
    let mut store = MapStore::default();
    let keys: Vec<Vec<u8>> = (0u32..500)
        .map(|i| keccak256(i.to_be_bytes()).to_vec())
        .collect();
    let mut updates: Vec<NibbleUpdate> = keys
        .iter()
        .map(|k| NibbleUpdate::new(unpack(k), Some(k.clone())))
        .collect();
    sort_dedup(&mut updates);
    let mut trie = IncrementalTrie::open(&store, EMPTY_ROOT_HASH);
    trie.apply(&updates).unwrap();
    let (root, changes) = trie.commit();
    store.apply(changes);
    assert!(!store.0.is_empty());
    for u in &mut updates {
        u.value = None;
    }
    let mut trie = IncrementalTrie::open(&store, root);
    trie.apply(&updates).unwrap();
    let (root, changes) = trie.commit();
    store.apply(changes);
    assert_eq!(root, EMPTY_ROOT_HASH);
    assert!(store.0.is_empty(), "{} stale nodes", store.0.len());
}

#[test]
fn missing_node_is_a_corruption_error() {
    let store = MapStore::default();
    let mut trie = IncrementalTrie::open(&store, B256::repeat_byte(1));
    let update = NibbleUpdate::new(vec![1; 64], Some(vec![1]));
    assert!(matches!(
        trie.apply(&[update]),
        Err(StateError::Corruption(_))
    ));
}

/// Counts loads, to see which nodes an update reads.
struct CountingStore<'a>(&'a MapStore, std::sync::atomic::AtomicUsize);

impl NodeSource for CountingStore<'_> {
    fn load(&self, path: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.load(path)
    }
}

#[test]
fn leaves_with_a_known_old_value_are_not_loaded() {
    let mut store = MapStore::default();
    let keys: Vec<Vec<u8>> = (0u32..64)
        .map(|i| keccak256(i.to_be_bytes()).to_vec())
        .collect();
    let value = |i: usize, round: u8| vec![round; 40 + i % 3];
    let mut updates: Vec<NibbleUpdate> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| NibbleUpdate::new(unpack(k), Some(value(i, 1))))
        .collect();
    sort_dedup(&mut updates);
    let mut trie = IncrementalTrie::open(&store, EMPTY_ROOT_HASH);
    trie.apply(&updates).unwrap();
    let (root, changes) = trie.commit();
    store.apply(changes);

    let loads = |with_old: bool| {
        let counting = CountingStore(&store, Default::default());
        let update = NibbleUpdate {
            key: unpack(&keys[5]),
            value: Some(value(5, 2)),
            old_value: with_old.then(|| value(5, 1)),
        };
        let mut trie = IncrementalTrie::open(&counting, root);
        trie.apply(&[update]).unwrap();
        let (new_root, _) = trie.commit();
        (counting.1.into_inner(), new_root)
    };
    let (loads_without, root_without) = loads(false);
    let (loads_with, root_with) = loads(true);
    assert_eq!(root_with, root_without);
    assert_eq!(loads_with + 1, loads_without, "the leaf itself is not read");
}
