//! ethereum/tests TransactionTests through the pool's decoding and sender recovery.
//!
//! Each fixture gives raw bytes and, per fork, either the valid transaction's `hash` and
//! `sender` or an `exception`. We take the latest fork a fixture lists (Prague, else Cancun,
//! else the newest present) and run the bytes through [`PooledTx::decode`] configured for
//! chain 1 with that fork's rules: valid ones must decode to the fixture's sender and hash,
//! invalid ones must be refused.

use alloy_primitives::{Address, B256, Bytes};
use chain_txpool::{PoolConfig, PoolError, PooledTx};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Forks oldest to newest, as the fixtures name them.
const FORKS: &[&str] = &[
    "Frontier",
    "Homestead",
    "EIP150",
    "EIP158",
    "Byzantium",
    "Constantinople",
    "ConstantinopleFix",
    "Istanbul",
    "Berlin",
    "London",
    "Paris",
    "Merge",
    "Shanghai",
    "Cancun",
    "Prague",
    "Osaka",
];

fn fixture_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("fixtures at {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fixture_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
}

/// The pool's configuration under `fork`'s rules, with no pool policy in the way: the
/// fixtures test validity, so no size, gas-limit or replay-protection policy applies.
fn config_for(fork: &str) -> PoolConfig {
    let index = FORKS.iter().position(|f| *f == fork).expect("known fork");
    let at_least = |name: &str| index >= FORKS.iter().position(|f| *f == name).unwrap();
    let mut config = PoolConfig::new(1, u64::MAX);
    config.max_tx_size = usize::MAX;
    config.allow_unprotected = true;
    config.calldata_floor = at_least("Prague");
    config.max_tx_gas = at_least("Osaka").then_some(chain_txpool::MAX_TX_GAS_OSAKA);
    config
}

/// Whether the pool refused for the reason the fixture names, so that a fixture refused by
/// accident (say, a policy check) does not pass.
fn refusal_matches(exception: &str, err: &PoolError) -> bool {
    let kind = exception.trim_start_matches("TransactionException.");
    match kind {
        "NONCE_TOO_BIG" => *err == PoolError::NonceMax,
        // A chain id we do not run, or a `v` no chain id produces.
        "INVALID_CHAINID" => {
            matches!(
                err,
                PoolError::InvalidChainId { .. } | PoolError::Decode { .. }
            )
        }
        "INTRINSIC_GAS_TOO_LOW" => matches!(err, PoolError::IntrinsicGasTooLow { .. }),
        "INTRINSIC_GAS_BELOW_FLOOR_GAS_COST" => matches!(err, PoolError::FloorDataGasTooLow { .. }),
        "INITCODE_SIZE_EXCEEDED" => matches!(err, PoolError::MaxInitCodeSizeExceeded { .. }),
        "PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS" => matches!(err, PoolError::TipAboveFeeCap { .. }),
        "INVALID_SIGNATURE_VRS" => {
            matches!(err, PoolError::InvalidSignature | PoolError::Decode { .. })
        }
        // Values wider than their field: the decoder refuses them, or the cost overflows.
        kind if kind.ends_with("OVERFLOW") => {
            matches!(err, PoolError::Decode { .. } | PoolError::CostOverflow)
        }
        kind if kind.starts_with("RLP_") => matches!(err, PoolError::Decode { .. }),
        kind if kind.starts_with("TYPE_") => matches!(err, PoolError::UnsupportedTxType { .. }),
        _ => true,
    }
}

#[test]
fn transaction_tests_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/TransactionTests");
    let mut files = Vec::new();
    fixture_files(&root, &mut files);
    assert!(!files.is_empty(), "no fixtures under {}", root.display());

    let (mut valid, mut invalid, mut failures) = (0, 0, Vec::new());
    for file in &files {
        let json: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (name, test) in json.as_object().expect("object of tests") {
            let raw: Bytes = test["txbytes"]
                .as_str()
                .expect("txbytes")
                .parse()
                .expect("hex");
            let results = test["result"].as_object().expect("result");
            let fork = FORKS
                .iter()
                .rev()
                .find(|fork| results.contains_key(**fork))
                .unwrap_or_else(|| panic!("{name}: no known fork in {:?}", results.keys()));
            let expected = &results[*fork];
            let outcome = PooledTx::decode(raw, &config_for(fork));
            match (expected.get("exception"), outcome) {
                (Some(exception), Err(err)) => {
                    let exception = exception.as_str().unwrap_or_default();
                    if !refusal_matches(exception, &err) {
                        failures.push(format!("{name} ({fork}): {exception} refused as {err:?}"));
                    }
                    invalid += 1;
                }
                (Some(exception), Ok(tx)) => failures.push(format!(
                    "{name} ({fork}): accepted (sender {}), expected {exception}",
                    tx.sender()
                )),
                (None, Ok(tx)) => {
                    let sender: Address = expected["sender"].as_str().unwrap().parse().unwrap();
                    let hash: B256 = expected["hash"].as_str().unwrap().parse().unwrap();
                    if tx.sender() != sender || tx.hash() != hash {
                        failures.push(format!(
                            "{name} ({fork}): got {} / {}, expected {sender} / {hash}",
                            tx.sender(),
                            tx.hash()
                        ));
                    }
                    valid += 1;
                }
                (None, Err(err)) => {
                    failures.push(format!("{name} ({fork}): refused valid: {err:?}"))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(valid + invalid, files.len(), "one test per fixture file");
    eprintln!("TransactionTests: {valid} valid, {invalid} invalid, all as expected");
}
