//! A real `chaind dev` process under load, killed with SIGKILL at random moments and
//! restarted: every block it reported as committed must still be there with the same hash.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, TxKind, U256, hex};
use alloy_signer::SignerSync;
use chaind::dev::dev_signers;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One JSON-RPC call over a fresh HTTP/1.1 connection (enough for a test, no client crate).
fn rpc(port: u16, method: &str, params: &str) -> Option<serde_json::Value> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let json = response.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(json).ok()
}

fn start(datadir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chaind"))
        .args([
            "dev",
            "--block-time",
            "200ms",
            "--print-blocks",
            "--http.port",
            &port.to_string(),
        ])
        .arg("--datadir")
        .arg(datadir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chaind starts")
}

fn wait_for_rpc(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if rpc(port, "eth_blockNumber", "[]").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("RPC did not come up");
}

#[test]
fn sigkill_under_load_loses_no_reported_block() {
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("data");
    let signers = dev_signers().unwrap();
    let mut reported: Vec<(u64, B256)> = Vec::new();
    let mut nonces = vec![0u64; signers.len()];
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next_random = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for round in 0..5 {
        let port = free_port();
        let mut child = start(&datadir, port);
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<(u64, B256)>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut words = line.split_whitespace();
                    if words.next() == Some("block") {
                        let number = words.next().and_then(|n| n.parse().ok());
                        let hash = words.next().and_then(|h| h.parse().ok());
                        if let (Some(number), Some(hash)) = (number, hash) {
                            lines.lock().unwrap().push((number, hash));
                        }
                    }
                }
            })
        };
        wait_for_rpc(port);
        // Nonces continue from the chain (a killed node may have lost pool transactions).
        for (i, signer) in signers.iter().enumerate() {
            let count = rpc(
                port,
                "eth_getTransactionCount",
                &format!(r#"["{}","latest"]"#, signer.address()),
            )
            .unwrap();
            nonces[i] = u64::from_str_radix(
                count["result"].as_str().unwrap().trim_start_matches("0x"),
                16,
            )
            .unwrap();
        }
        // Load: transfers from every dev account until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let stop = stop.clone();
            let signers = signers.clone();
            let mut nonces = nonces.clone();
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (i, signer) in signers.iter().enumerate() {
                        let tx = TxEip1559 {
                            chain_id: 31337,
                            nonce: nonces[i],
                            gas_limit: 21_000,
                            max_fee_per_gas: 100_000_000_000,
                            max_priority_fee_per_gas: 1_000_000_000,
                            to: TxKind::Call(Address::repeat_byte(0x77)),
                            value: U256::from(1),
                            ..Default::default()
                        };
                        let signature = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
                        let raw = hex::encode_prefixed(
                            TxEnvelope::from(tx.into_signed(signature)).encoded_2718(),
                        );
                        if rpc(port, "eth_sendRawTransaction", &format!(r#"["{raw}"]"#)).is_some() {
                            nonces[i] += 1;
                            sent += 1;
                        }
                    }
                }
                sent
            })
        };
        std::thread::sleep(Duration::from_millis(800 + next_random() % 2500));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        reader.join().unwrap();
        let new = lines.lock().unwrap().clone();
        assert!(!new.is_empty(), "round {round}: the node reported no block");
        reported.extend(new);

        // Restart and check every block ever reported.
        let port = free_port();
        let mut child = start(&datadir, port);
        wait_for_rpc(port);
        for (number, hash) in &reported {
            let block = rpc(
                port,
                "eth_getBlockByNumber",
                &format!(r#"["0x{number:x}",false]"#),
            )
            .unwrap();
            let stored: B256 = block["result"]["hash"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .unwrap_or_default();
            assert_eq!(
                stored, *hash,
                "round {round}: block {number} changed or vanished after SIGKILL"
            );
        }
        child.kill().unwrap();
        let _ = child.wait();
        println!(
            "round {round}: {} blocks reported so far, {sent} transactions sent this round",
            reported.len()
        );
    }
}
