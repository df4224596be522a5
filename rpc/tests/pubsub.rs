//! Polling filters (changes, reorgs, expiry) and WebSocket subscriptions (newHeads, logs with
//! removed logs, pending transactions, limits, slow subscribers).

mod support;

use alloy_primitives::{B256, Bytes, U256};
use chain_executor::workload;
use jsonrpsee::core::{
    client::{ClientT, Error as ClientError, Subscription, SubscriptionClientT, SubscriptionKind},
    rpc_params,
};
use jsonrpsee_ws_client::{WsClient, WsClientBuilder, types::SubscriptionId};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

fn token_transfer_tx(
    nonce: u64,
    to: alloy_primitives::Address,
    amount: u64,
) -> alloy_consensus::TxEnvelope {
    sign_1559(
        &signer(DEV_KEY),
        nonce,
        TOKEN,
        U256::ZERO,
        workload::erc20_transfer_calldata(to, U256::from(amount)),
        100_000,
        2_000_000_000,
    )
}

fn ether_tx(nonce: u64) -> alloy_consensus::TxEnvelope {
    sign_1559(
        &signer(DEV_KEY),
        nonce,
        BOB,
        U256::from(1),
        Bytes::new(),
        21_000,
        2_000_000_000,
    )
}

async fn ws(h: &Harness) -> WsClient {
    WsClientBuilder::default()
        .build(&h.ws_url)
        .await
        .expect("websocket connects")
}

async fn next(sub: &mut Subscription<Value>) -> Value {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("notification in time")
        .expect("open")
        .expect("valid")
}

async fn nothing_within(sub: &mut Subscription<Value>, wait: Duration) {
    if let Ok(Some(item)) = tokio::time::timeout(wait, sub.next()).await {
        panic!("unexpected notification: {item:?}");
    }
}

fn call_error(error: ClientError) -> (i32, String) {
    match error {
        ClientError::Call(e) => (e.code(), e.message().to_owned()),
        other => panic!("expected a call error, got {other}"),
    }
}

#[tokio::test]
async fn block_filter_collects_new_heads_between_polls() {
    let h = Harness::fixture().await;
    let id = h.ok("eth_newBlockFilter", json!([])).await;
    let text = id.as_str().unwrap();
    assert!(
        text.starts_with("0x") && text.len() <= 34 && !text[2..].starts_with('0'),
        "geth's format, no leading zeros: {id}"
    );
    assert_eq!(h.ok("eth_getFilterChanges", json!([id])).await, json!([]));
    // Clients that hold the id as a number may send it back padded or in capitals.
    let padded = format!("0x{:0>32}", text[2..].to_ascii_uppercase());
    assert_eq!(
        h.ok("eth_getFilterChanges", json!([padded])).await,
        json!([])
    );
    let a = h.chain.produce(vec![]);
    let b = h.chain.produce(vec![]);
    let changes = wait_for_changes(&h, &id, 2).await;
    assert_eq!(changes, json!([a.block.hash(), b.block.hash()]));
    assert_eq!(
        h.ok("eth_getFilterChanges", json!([id])).await,
        json!([]),
        "delivered once"
    );
    let not_logs = h.err("eth_getFilterLogs", json!([id])).await;
    assert_eq!(not_logs["message"], "filter not found");
    assert_eq!(h.ok("eth_uninstallFilter", json!([id])).await, json!(true));
    assert_eq!(h.ok("eth_uninstallFilter", json!([id])).await, json!(false));
    let gone = h.err("eth_getFilterChanges", json!([id])).await;
    assert_eq!(gone, json!({"code": -32000, "message": "filter not found"}));
}

/// Polls until `count` items arrived (the filter feed runs on its own task).
async fn wait_for_changes(h: &Harness, id: &Value, count: usize) -> Value {
    let mut collected = Vec::new();
    for _ in 0..200 {
        let changes = h.ok("eth_getFilterChanges", json!([id])).await;
        collected.extend(changes.as_array().unwrap().iter().cloned());
        if collected.len() >= count {
            return Value::Array(collected);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "only {} of {count} changes arrived: {collected:?}",
        collected.len()
    );
}

#[tokio::test]
async fn log_filter_changes_include_removed_logs_on_reorg() {
    let h = Harness::fixture().await;
    let id = h
        .ok(
            "eth_newFilter",
            json!([{"address": TOKEN, "topics": [workload::TRANSFER_TOPIC]}]),
        )
        .await;
    let mined = h
        .chain
        .produce(vec![ether_tx(4), token_transfer_tx(5, ALICE, 9)]);
    let changes = wait_for_changes(&h, &id, 1).await;
    let log = &changes[0];
    assert_eq!(log["blockHash"], json!(mined.block.hash()));
    assert_eq!(log["transactionHash"], json!(mined.tx_hashes[1]));
    assert_eq!(log["transactionIndex"], "0x1");
    assert_eq!(log["logIndex"], "0x0");
    assert_eq!(log["removed"], false);

    h.chain.revert_head();
    let removed = wait_for_changes(&h, &id, 1).await;
    assert_eq!(removed[0]["removed"], true);
    assert_eq!(removed[0]["transactionHash"], json!(mined.tx_hashes[1]));

    let replacement = h.chain.produce(vec![token_transfer_tx(4, BOB, 1)]);
    let again = wait_for_changes(&h, &id, 1).await;
    assert_eq!(again[0]["blockHash"], json!(replacement.block.hash()));
    assert_eq!(again[0]["removed"], false);

    // eth_getFilterLogs runs the filter's criteria over its range (latest block by default)
    let all = h.ok("eth_getFilterLogs", json!([id])).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let ranged = h
        .ok(
            "eth_newFilter",
            json!([{"fromBlock": "0x0", "address": TOKEN}]),
        )
        .await;
    assert_eq!(
        h.ok("eth_getFilterLogs", json!([ranged]))
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn pending_transaction_filter() {
    let h = Harness::fixture().await;
    let id = h.ok("eth_newPendingTransactionFilter", json!([])).await;
    let tx = ether_tx(4);
    h.ok("eth_sendRawTransaction", json!([raw_hex(&tx)])).await;
    assert_eq!(wait_for_changes(&h, &id, 1).await, json!([tx.tx_hash()]));
}

#[tokio::test]
async fn filters_expire_without_polling() {
    let config = chain_rpc::RpcConfig {
        filter_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let idle = h.ok("eth_newBlockFilter", json!([])).await;
    let polled = h.ok("eth_newBlockFilter", json!([])).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.ok("eth_getFilterChanges", json!([polled])).await;
    }
    assert_eq!(
        h.err("eth_getFilterChanges", json!([idle])).await["message"],
        "filter not found"
    );
    h.ok("eth_getFilterChanges", json!([polled])).await;
}

#[tokio::test]
async fn new_heads_subscription() {
    let h = Harness::fixture().await;
    let client = ws(&h).await;
    let mut heads: Subscription<Value> = client
        .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("subscribe");
    match heads.kind() {
        SubscriptionKind::Subscription(id) => {
            let SubscriptionId::Str(id) = id else {
                panic!("numeric id {id:?}")
            };
            assert!(
                id.starts_with("0x") && id.len() <= 34 && !id[2..].starts_with('0'),
                "{id}"
            );
        }
        other => panic!("{other:?}"),
    }
    let block = h.chain.produce(vec![ether_tx(4)]);
    let header = next(&mut heads).await;
    assert_eq!(header["hash"], json!(block.block.hash()));
    assert_eq!(header["number"], "0x4");
    assert_eq!(header["parentHash"], json!(h.chain.block(3).block.hash()));
    assert!(
        header.get("transactions").is_none(),
        "a header, not a block: {header}"
    );
    assert_eq!(header["baseFeePerGas"], json!(hex(BASE_FEE)));

    // a removed block is not a new head; its replacement is
    h.chain.revert_head();
    let replacement = h.chain.produce(vec![]);
    assert_eq!(
        next(&mut heads).await["hash"],
        json!(replacement.block.hash())
    );
    heads.unsubscribe().await.expect("unsubscribe");
}

#[tokio::test]
async fn logs_subscription_sends_removed_logs_on_reorg() {
    let h = Harness::fixture().await;
    let client = ws(&h).await;
    let filter =
        json!({"address": TOKEN, "topics": [null, null, [ALICE.into_word(), BOB.into_word()]]});
    let mut logs: Subscription<Value> = client
        .subscribe(
            "eth_subscribe",
            rpc_params!["logs", filter],
            "eth_unsubscribe",
        )
        .await
        .expect("subscribe");
    let block = h.chain.produce(vec![
        token_transfer_tx(4, ALICE, 1),
        ether_tx(5),
        token_transfer_tx(6, POOR, 2),
        token_transfer_tx(7, BOB, 3),
    ]);
    let first = next(&mut logs).await;
    let second = next(&mut logs).await;
    assert_eq!(first["transactionHash"], json!(block.tx_hashes[0]));
    assert_eq!(first["logIndex"], "0x0");
    assert_eq!(first["removed"], false);
    assert_eq!(second["transactionHash"], json!(block.tx_hashes[3]));
    assert_eq!(
        second["logIndex"], "0x2",
        "block-wide index skips the POOR transfer's log"
    );
    assert_eq!(second["data"], json!(B256::from(U256::from(3))));

    h.chain.revert_head();
    let removed_first = next(&mut logs).await;
    let removed_second = next(&mut logs).await;
    assert_eq!(removed_first["removed"], true);
    assert_eq!(removed_first["transactionHash"], json!(block.tx_hashes[0]));
    assert_eq!(removed_second["removed"], true);
    assert_eq!(removed_second["logIndex"], "0x2");
    nothing_within(&mut logs, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn pending_transaction_subscriptions() {
    let h = Harness::fixture().await;
    let client = ws(&h).await;
    let mut hashes: Subscription<Value> = client
        .subscribe(
            "eth_subscribe",
            rpc_params!["newPendingTransactions"],
            "eth_unsubscribe",
        )
        .await
        .expect("subscribe");
    let mut full: Subscription<Value> = client
        .subscribe(
            "eth_subscribe",
            rpc_params!["newPendingTransactions", true],
            "eth_unsubscribe",
        )
        .await
        .expect("subscribe");
    let tx = ether_tx(4);
    h.ok("eth_sendRawTransaction", json!([raw_hex(&tx)])).await;
    assert_eq!(next(&mut hashes).await, json!(tx.tx_hash()));
    let object = next(&mut full).await;
    assert_eq!(object["hash"], json!(tx.tx_hash()));
    assert_eq!(
        object["from"].as_str().unwrap().to_lowercase(),
        format!("{DEV:#x}")
    );
    assert_eq!(object["blockHash"], Value::Null);
}

#[tokio::test]
async fn subscription_errors_and_limits() {
    let config = chain_rpc::RpcConfig {
        max_subscriptions_per_connection: 1,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let client = ws(&h).await;
    let unknown = client
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["bananas"], "eth_unsubscribe")
        .await
        .expect_err("unknown kind");
    assert_eq!(
        call_error(unknown),
        (
            -32601,
            "no \"bananas\" subscription in eth namespace".to_owned()
        )
    );
    let bad_filter = client
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", json!({"address": "0x12"})],
            "eth_unsubscribe",
        )
        .await
        .expect_err("bad filter");
    assert_eq!(call_error(bad_filter).0, -32602);

    let first: Subscription<Value> = client
        .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("first");
    let second = client
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect_err("over the cap");
    assert_eq!(call_error(second).0, -32006);

    // eth_unsubscribe answers true for a live subscription
    let SubscriptionKind::Subscription(id) = first.kind().clone() else {
        panic!("subscription kind")
    };
    let id = match id {
        SubscriptionId::Str(s) => s.into_owned(),
        other => panic!("{other:?}"),
    };
    let unsubscribed: bool = client
        .request("eth_unsubscribe", rpc_params![id])
        .await
        .expect("unsubscribe");
    assert!(unsubscribed);

    // HTTP has no notifications
    let over_http = h.call("eth_subscribe", json!(["newHeads"])).await;
    assert!(over_http.get("error").is_some(), "{over_http}");
}

/// A WebSocket client that subscribes and then never reads.
async fn stalled_subscriber(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    let handshake = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream
            .read_exact(&mut byte)
            .await
            .expect("handshake response");
        response.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    let payload = br#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    // masked text frame with an all-zero mask: the payload goes as is
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await.expect("subscribe frame");
    stream
}

/// Reads whatever the server sends until it has been quiet for `quiet`.
async fn drain(stream: &mut tokio::net::TcpStream, quiet: Duration) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buffer[..n]);
    }
    all
}

#[tokio::test]
async fn slow_subscribers_are_dropped_without_stalling_others() {
    const FLOOD: usize = 8000;
    let config = chain_rpc::RpcConfig {
        ws_message_buffer: 4,
        subscription_send_timeout: Duration::from_millis(1000),
        ..test_config()
    };
    let h = Harness::start(MockChain::with_capacity(16_384), config).await;
    h.chain.produce(vec![]);
    let mut stalled = stalled_subscriber(h.handle.http_addr()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let client = ws(&h).await;
    let mut heads: Subscription<Value> = client
        .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("subscribe");
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<usize>();
    let reader = tokio::spawn(async move {
        let mut count = 0usize;
        while let Ok(Some(Ok(header))) = tokio::time::timeout(WAIT, heads.next()).await {
            count += 1;
            if header["number"] == "0x2" {
                break;
            }
        }
        let _ = seen_tx.send(count);
    });

    // flood: more heads than the kernel's socket buffers hold (4 MiB on Linux), paced so that a
    // reading subscriber keeps up
    let event = h.chain.head_event();
    for i in 0..FLOOD {
        h.chain.publish(event.clone());
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(
        h.ok("eth_blockNumber", json!([])).await,
        "0x1",
        "the server answers during the flood"
    );
    h.chain.produce(vec![]);
    let seen = tokio::time::timeout(WAIT, seen_rx)
        .await
        .expect("reader finished")
        .expect("count");
    assert_eq!(seen, FLOOD + 1, "the reading subscriber got every head");
    reader.await.expect("reader");

    // the stalled subscriber was dropped once its send timeout passed: after its backlog is
    // drained, new heads do not reach it
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let backlog = drain(&mut stalled, Duration::from_millis(500)).await;
    let backlog = String::from_utf8_lossy(&backlog);
    assert!(
        backlog.contains("\"eth_subscription\""),
        "the stalled client had subscribed: {:?}",
        &backlog[..backlog.len().min(400)]
    );
    assert!(
        backlog.len() < FLOOD * 500,
        "the stalled client got only a bounded backlog: {}",
        backlog.len()
    );
    let after = h.chain.produce(vec![]);
    let late = drain(&mut stalled, Duration::from_millis(500)).await;
    let late = String::from_utf8_lossy(&late);
    assert!(
        !late.contains(&after.block.hash().to_string()),
        "dropped subscriber still notified"
    );
}
