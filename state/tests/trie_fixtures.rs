//! The ethereum/tests TrieTests vectors: every case's root, computed by inserting and deleting
//! in the given order through the incremental trie and (for order-free cases) by the one-pass
//! builder.

use alloy_primitives::{B256, keccak256};
use chain_state::trie::{MemoryTrie, build_root, secure_root};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> serde_json::Map<String, Value> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "shared",
        "fixtures",
        "TrieTests",
        name,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).expect("fixture is JSON") {
        Value::Object(cases) => cases,
        other => panic!("unexpected fixture shape {other}"),
    }
}

/// "0x..." is hex, anything else the string's UTF-8 bytes.
fn bytes_of(text: &str) -> Vec<u8> {
    match text.strip_prefix("0x") {
        Some(hex_digits) => alloy_primitives::hex::decode(hex_digits).expect("fixture hex"),
        None => text.as_bytes().to_vec(),
    }
}

fn expected_root(case: &Value) -> B256 {
    case["root"]
        .as_str()
        .expect("root")
        .parse()
        .expect("root hash")
}

/// The case's operations in order: (key, value), `None` deleting.
fn operations(case: &Value) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let value_of = |v: &Value| v.as_str().map(bytes_of);
    match &case["in"] {
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| (bytes_of(pair[0].as_str().expect("key")), value_of(&pair[1])))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (bytes_of(k), value_of(v)))
            .collect(),
        other => panic!("unexpected 'in' {other}"),
    }
}

fn run(file: &str, secure: bool) {
    let cases = fixture(file);
    assert!(!cases.is_empty());
    for (name, case) in &cases {
        let mut trie = MemoryTrie::new();
        for (key, value) in operations(case) {
            let key = if secure {
                keccak256(&key).to_vec()
            } else {
                key
            };
            match value {
                Some(value) => trie.insert(&key, &value),
                None => trie.remove(&key),
            }
        }
        assert_eq!(
            trie.root_hash(),
            expected_root(case),
            "{file} {name}: incremental"
        );
    }
}

fn run_any_order(file: &str, secure: bool) {
    run(file, secure);
    for (name, case) in &fixture(file) {
        let ops = operations(case);
        let root = if secure {
            secure_root(
                ops.iter()
                    .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())),
            )
        } else {
            let mut leaves: Vec<(Vec<u8>, Vec<u8>)> = ops
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            leaves.sort();
            build_root(&leaves, None)
        };
        assert_eq!(root, expected_root(case), "{file} {name}: builder");

        // The same leaves in reverse order, all at once, through the incremental trie.
        let mut trie = MemoryTrie::new();
        let ops = operations(case);
        trie.extend(ops.into_iter().rev().map(|(k, v)| {
            let k = if secure { keccak256(&k).to_vec() } else { k };
            (k, v)
        }));
        assert_eq!(
            trie.root_hash(),
            expected_root(case),
            "{file} {name}: batch"
        );
    }
}

#[test]
fn trietest() {
    run("trietest.json", false);
}

#[test]
fn trietest_secure_trie() {
    run("trietest_secureTrie.json", true);
}

#[test]
fn trieanyorder() {
    run_any_order("trieanyorder.json", false);
}

#[test]
fn trieanyorder_secure_trie() {
    run_any_order("trieanyorder_secureTrie.json", true);
}

#[test]
fn hex_encoded_securetrie_test() {
    run_any_order("hex_encoded_securetrie_test.json", true);
}
