//! Staking end to end: a real `chaind dev` process, a second dev account joining the validator
//! set with `chaind stake join`, its deposit moving to the staking escrow (eth_getBalance), its
//! ledger entry (chaind_stakingAccount), and the validator set (chaind_validators) taking it in
//! at the epoch boundary; bad input is refused with JSON-RPC errors.

use alloy_primitives::{Address, U256};
use alloy_provider::{Provider, ProviderBuilder};
use chaind::node::staking::{STAKING_ESCROW, WEI_PER_STAKE_UNIT};
use serde_json::Value;
#[path = "support/dev_node.rs"]
mod dev_node;
use dev_node::DevNode;
use std::time::{Duration, Instant};

/// The second key of the test mnemonic, funded with 10,000 ETH by `chaind dev`.
const JOINER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const JOINER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn quantity(value: &Value) -> u64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a quantity: {value}"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn members(view: &Value, field: &str) -> Vec<(Address, u64)> {
    view[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} missing from {view}"))
        .iter()
        .map(|member| {
            (
                member["address"].as_str().unwrap().parse().unwrap(),
                quantity(&member["stake"]),
            )
        })
        .collect()
}

fn stake_cli(node: &DevNode, key_file: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chaind"))
        .arg("stake")
        .args(args)
        .arg("--key-file")
        .arg(key_file)
        .args(["--rpc", &node.url()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chaind stake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_validator_joins_through_the_cli() {
    let datadir = tempfile::tempdir().unwrap();
    let node = DevNode::start(datadir.path());
    let url = node.url().parse().unwrap();
    let provider = ProviderBuilder::new().connect_http(url);
    let started = Instant::now();
    loop {
        match provider.get_block_number().await {
            Ok(number) if number >= 1 => break,
            Ok(_) => {}
            Err(error) => assert!(
                started.elapsed() < Duration::from_secs(60),
                "node did not answer: {error}"
            ),
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no block");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let joiner: Address = JOINER.parse().unwrap();
    let genesis_validator: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        .parse()
        .unwrap();
    let before = provider.get_balance(joiner).await.unwrap();
    assert_eq!(
        provider.get_balance(STAKING_ESCROW).await.unwrap(),
        U256::ZERO
    );
    let view: Value = provider
        .raw_request("chaind_validators".into(), ())
        .await
        .unwrap();
    assert_eq!(
        members(&view, "current"),
        vec![(genesis_validator, 32_000_000_000)],
        "{view}"
    );

    // Bad input: JSON-RPC errors, and the node keeps running.
    let garbage: Result<Value, _> = provider
        .raw_request("chaind_sendStakingOp".into(), ["0xc30102"])
        .await;
    let error = garbage.unwrap_err().to_string();
    assert!(
        error.contains("-32602") || error.contains("malformed"),
        "{error}"
    );

    let key_file = datadir.path().join("joiner.key");
    std::fs::write(&key_file, JOINER_KEY).unwrap();
    let stake: u64 = 1_000_000_000; // 1 ETH
    let output = stake_cli(&node, &key_file, &["join", "--stake", &stake.to_string()]);
    assert!(
        output.status.success(),
        "chaind stake join failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("submitted staking operation 0x"),
        "{stdout}"
    );

    // The deposit moves into the escrow once a block includes the join.
    let deposit = U256::from(stake) * U256::from(WEI_PER_STAKE_UNIT);
    let started = Instant::now();
    while provider.get_balance(STAKING_ESCROW).await.unwrap() != deposit {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the deposit never reached the escrow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        provider.get_balance(joiner).await.unwrap(),
        before - deposit
    );
    let ledger: Value = provider
        .raw_request("chaind_stakingAccount".into(), (joiner, "latest"))
        .await
        .unwrap();
    assert_eq!(quantity(&ledger["nonce"]), 1, "{ledger}");
    assert_eq!(quantity(&ledger["bonded"]), stake, "{ledger}");
    assert_eq!(ledger["slashed"], Value::Bool(false));

    // A second join of the same validator is refused (it is one now), with a clear message.
    let again = stake_cli(&node, &key_file, &["join", "--stake", "5"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already a validator"), "{stderr}");

    // Consensus takes the stake in at the next epoch boundary (32 slots of 200 ms): the
    // joiner is requested first, then in the next epoch's set, then in the current one.
    let started = Instant::now();
    let mut seen_next = false;
    loop {
        let view: Value = provider
            .raw_request("chaind_validators".into(), ())
            .await
            .unwrap();
        let next = members(&view, "next");
        let current = members(&view, "current");
        if next.contains(&(joiner, stake)) {
            seen_next = true;
        }
        if current.contains(&(joiner, stake)) {
            assert!(next.contains(&(joiner, stake)), "{view}");
            assert!(
                current.contains(&(genesis_validator, 32_000_000_000)),
                "{view}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the joiner never entered the validator set: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen_next,
        "the joiner was never seen in the next epoch's set first"
    );
    // The chain goes on with a second validator that never proposes: its slots stay empty,
    // and the genesis validator's 32/33 of stake still finalizes.
    let head = provider.get_block_number().await.unwrap();
    let started = Instant::now();
    while provider.get_block_number().await.unwrap() < head + 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the chain stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
