//! The transport: malformed input and its error codes, batches, every limit, CORS, host
//! filtering, `GET /health`, `GET /metrics`, the second listener.

mod support;

use serde_json::{Value, json};
use std::sync::OnceLock;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The process-wide Prometheus recorder (a global can be installed once per test binary).
fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.01, 0.1, 1.0])
                .expect("buckets")
                .install_recorder()
                .expect("recorder installs once")
        })
        .clone()
}

/// Sends a raw HTTP/1.1 request and returns the status code and body.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post_with_host(host: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn malformed_input_gets_standard_codes() {
    let h = Harness::fixture().await;
    let (status, bad_json) = h
        .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId""#)
        .await;
    assert_eq!(status, 200);
    assert_eq!(bad_json["error"]["code"], -32700, "{bad_json}");

    let (_, no_method) = h.post_raw(r#"{"jsonrpc":"2.0","id":7}"#).await;
    assert_eq!(no_method["error"]["code"], -32600, "{no_method}");
    let (_, wrong_version) = h
        .post_raw(r#"{"jsonrpc":"1.0","id":7,"method":"eth_chainId"}"#)
        .await;
    assert_eq!(wrong_version["error"]["code"], -32600, "{wrong_version}");

    let unknown = h.err("eth_doesNotExist", json!([])).await;
    assert_eq!(unknown["code"], -32601);

    let wrong_type = h.err("eth_getBalance", json!([12345, "latest"])).await;
    assert_eq!(wrong_type["code"], -32602);
    assert_eq!(
        wrong_type["message"],
        "invalid argument 0: json: cannot unmarshal number into Go value of type common.Address"
    );
    let no_prefix = h.err("eth_getBlockByNumber", json!(["10", false])).await;
    assert_eq!(
        no_prefix,
        json!({"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"})
    );
    let oversize = h
        .err(
            "eth_getTransactionByBlockNumberAndIndex",
            json!(["0x1", "0x10000000000000000"]),
        )
        .await;
    assert_eq!(
        oversize["message"],
        "invalid argument 1: hex number > 64 bits"
    );
    let leading_zero = h.err("eth_getBlockByNumber", json!(["0x01", false])).await;
    assert_eq!(
        leading_zero["message"],
        "invalid argument 0: hex number with leading zero digits"
    );
    let odd = h
        .err("eth_call", json!([{"to": BOB, "data": "0x123"}]))
        .await;
    assert_eq!(
        odd["message"],
        "invalid argument 0: hex string of odd length"
    );
    let short_address = h.err("eth_getBalance", json!(["0x1234", "latest"])).await;
    assert_eq!(
        short_address["message"],
        "invalid argument 0: hex string has length 4, want 40 for common.Address"
    );
    let missing = h.err("eth_getBalance", json!([])).await;
    assert_eq!(missing["message"], "missing value for required argument 0");
    let too_many = h.err("eth_blockNumber", json!(["latest"])).await;
    assert_eq!(too_many["message"], "too many arguments, want at most 0");
    let named = h.err("eth_getBalance", json!({"address": BOB})).await;
    assert_eq!(named["message"], "non-array args");
    let bad_tag = h.err("eth_getBalance", json!([BOB, "newest"])).await;
    assert_eq!(bad_tag["code"], -32602);
    let big_value = format!("0x1{}", "0".repeat(64));
    let big = h
        .err("eth_call", json!([{"to": BOB, "value": big_value}]))
        .await;
    assert_eq!(big["message"], "invalid argument 0: hex number > 256 bits");

    // the id is echoed, whatever its type
    let body = json!({"jsonrpc": "2.0", "id": "abc", "method": "eth_chainId", "params": []});
    let (_, echoed) = h.post_raw(body.to_string()).await;
    assert_eq!(echoed["id"], "abc");
    assert_eq!(echoed["result"], "0x7a69");
    // params may be omitted
    let (_, omitted) = h
        .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}"#)
        .await;
    assert_eq!(omitted["result"], "0x3");
}

#[tokio::test]
async fn batches_and_their_limit() {
    let config = chain_rpc::RpcConfig {
        max_batch_len: 3,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": ["0x12"]},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
    ]);
    let (status, answers) = h.post_raw(batch.to_string()).await;
    assert_eq!(status, 200);
    let answers = answers.as_array().expect("batch answer is an array");
    assert_eq!(answers.len(), 3);
    let by_id = |id: i64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .expect("answer per id")
    };
    assert_eq!(by_id(1)["result"], "0x7a69");
    assert_eq!(by_id(2)["error"]["code"], -32602, "errors stay per call");
    assert_eq!(by_id(3)["result"], "0x3");

    let too_long: Vec<Value> = (0..4)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
        .collect();
    let (_, refused) = h.post_raw(Value::Array(too_long).to_string()).await;
    assert_eq!(refused["error"]["code"], -32010, "{refused}");
    let (_, empty) = h.post_raw("[]").await;
    assert!(
        empty["error"]["code"] == -32600 || empty["error"]["code"] == -32700,
        "{empty}"
    );
    let (_, junk_entry) = h
        .post_raw(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}, 5]"#)
        .await;
    assert_eq!(junk_entry.as_array().map(Vec::len), Some(2), "{junk_entry}");
}

#[tokio::test]
async fn request_and_response_size_limits() {
    let config = chain_rpc::RpcConfig {
        max_request_body_size: 512,
        max_response_body_size: 2048,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let padding = "0".repeat(600);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": [format!("0x{padding}")]});
    let (status, too_big) = h.post_raw(body.to_string()).await;
    assert_eq!(status, 413);
    assert_eq!(too_big["error"]["code"], -32007, "{too_big}");

    let response = h.call("eth_getBlockByNumber", json!(["0x2", true])).await;
    assert_eq!(response["error"]["code"], -32008, "{response}");
    // small answers still flow
    assert_eq!(h.ok("eth_chainId", json!([])).await, "0x7a69");
}

#[tokio::test]
async fn connection_limit_answers_with_a_json_rpc_error() {
    let config = chain_rpc::RpcConfig {
        max_connections: 1,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let ws = jsonrpsee_ws_client::WsClientBuilder::default()
        .build(&h.ws_url)
        .await
        .expect("first connection");
    let (status, refused) = h
        .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#)
        .await;
    assert_eq!(status, 429);
    assert_eq!(refused["error"]["code"], -32005, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "too many connections (limit 1), try again later"
    );
    drop(ws);
    // the slot is released with the WebSocket
    let mut answered = false;
    for _ in 0..50 {
        let (status, _) = h
            .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#)
            .await;
        if status == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(answered, "connection slot never freed");
}

#[tokio::test]
async fn filter_count_limit() {
    let config = chain_rpc::RpcConfig {
        max_filters: 1,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    h.ok("eth_newBlockFilter", json!([])).await;
    let refused = h.err("eth_newBlockFilter", json!([])).await;
    assert_eq!(
        refused,
        json!({"code": -32005, "message": "too many filters installed (limit 1)"})
    );
}

#[tokio::test]
async fn filter_backlog_and_address_limits() {
    let config = chain_rpc::RpcConfig {
        max_filter_backlog: 2,
        logs_max_addresses: 1,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let id = h.ok("eth_newBlockFilter", json!([])).await;
    for _ in 0..3 {
        h.chain.produce(vec![]);
    }
    // the feed runs on its own task: give it time to see all three blocks, the third of which
    // overflows the backlog and removes the filter
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let gone = h.err("eth_getFilterChanges", json!([id])).await;
    assert_eq!(
        gone["message"], "filter not found",
        "an overflowing filter is removed"
    );

    let two = h
        .err("eth_getLogs", json!([{"address": [TOKEN, BOB]}]))
        .await;
    assert_eq!(
        two,
        json!({"code": -32602, "message": "exceed max addresses: 2 (limit 1)"})
    );
}

#[tokio::test]
async fn health_endpoint_reflects_the_node() {
    let h = Harness::fixture().await;
    let response = h
        .http
        .get(format!("{}/health", h.url))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["head"], 3);
    assert_eq!(body["ageMs"], 1500);
    h.chain.set_healthy(false);
    let response = h
        .http
        .get(format!("{}/health", h.url))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["healthy"], false);
    // other GET paths are not JSON-RPC
    let other = h
        .http
        .get(format!("{}/other", h.url))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status().as_u16(), 405);
}

#[tokio::test]
async fn metrics_endpoint_renders_per_method_latency() {
    let handle = prometheus();
    let without = Harness::fixture().await;
    let response = without
        .http
        .get(format!("{}/metrics", without.url))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        response.status().as_u16(),
        404,
        "metrics off unless a renderer is configured"
    );

    let h = Harness::start(MockChain::fixture(), test_config().with_prometheus(handle)).await;
    h.ok("eth_blockNumber", json!([])).await;
    h.err("eth_getBalance", json!([])).await;
    let response = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    assert!(
        text.contains("rpc_request_duration_seconds_bucket{method=\"eth_blockNumber\""),
        "{text}"
    );
    assert!(
        text.contains("rpc_requests_total{method=\"eth_getBalance\",status=\"error\"}"),
        "{text}"
    );
    assert!(text.contains("chain_head_block 3"), "{text}");
    assert!(text.contains("txpool_pending 0"), "{text}");
    assert!(text.contains("p2p_peers 3"), "{text}");
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let h = Harness::fixture().await;
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, &h.url)
        .header("origin", "http://dapp.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let post = h
        .http
        .post(&h.url)
        .header("origin", "http://dapp.example")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(post.headers()["access-control-allow-origin"], "*");

    let config = chain_rpc::RpcConfig {
        cors_origins: vec!["http://good.example".into()],
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let allowed = h
        .http
        .post(&h.url)
        .header("origin", "http://good.example")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://good.example"
    );
    let other = h
        .http
        .post(&h.url)
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#)
        .send()
        .await
        .expect("post");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn host_filtering_like_geth_vhosts() {
    let config = chain_rpc::RpcConfig {
        allowed_hosts: chain_rpc::RpcConfig::default().allowed_hosts,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let addr = h.handle.http_addr();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let (status, answer) = raw_http(
        addr,
        &post_with_host(&format!("localhost:{}", addr.port()), body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = raw_http(addr, &post_with_host(&addr.to_string(), body)).await;
    assert_eq!(status, 200);
    let (status, _) = raw_http(addr, &post_with_host("evil.example:8545", body)).await;
    assert_eq!(status, 403);
    // probes answer whatever the Host (load balancers use the pod address)
    let probe = "GET /health HTTP/1.1\r\nHost: 10.1.2.3:8545\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_http(addr, probe).await.0, 200);
}

#[tokio::test]
async fn optional_second_listener_serves_the_same_methods() {
    let config = chain_rpc::RpcConfig {
        ws_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let second = h.handle.ws_addr().expect("second listener");
    assert_ne!(second, h.handle.http_addr());
    let ws = jsonrpsee_ws_client::WsClientBuilder::default()
        .build(format!("ws://{second}"))
        .await
        .expect("ws");
    use jsonrpsee::core::client::ClientT;
    let number: String = ws
        .request("eth_blockNumber", jsonrpsee::core::rpc_params![])
        .await
        .expect("call");
    assert_eq!(number, "0x3");
}

#[tokio::test]
async fn start_fails_cleanly_on_a_taken_port() {
    let h = Harness::fixture().await;
    let config = chain_rpc::RpcConfig {
        http_addr: h.handle.http_addr(),
        ..test_config()
    };
    let error = chain_rpc::start(config, MockChain::new())
        .await
        .expect_err("port is taken");
    assert!(matches!(error, chain_rpc::RpcError::Bind { .. }), "{error}");
    let config = chain_rpc::RpcConfig {
        cors_origins: vec!["bad\norigin".into()],
        ..test_config()
    };
    let error = chain_rpc::start(config, MockChain::new())
        .await
        .expect_err("bad origin");
    assert!(
        matches!(error, chain_rpc::RpcError::InvalidCorsOrigin(_)),
        "{error}"
    );
}

/// The `chaind_*` staking methods on a node that does not stake (the trait's defaults): nulls,
/// a clear refusal, and -32602 for ill-typed parameters.
#[tokio::test]
async fn chaind_staking_methods_without_staking() {
    let h = Harness::fixture().await;
    assert_eq!(h.ok("chaind_validators", json!([])).await, Value::Null);
    let account = h
        .ok(
            "chaind_stakingAccount",
            json!(["0x0000000000000000000000000000000000000001", "latest"]),
        )
        .await;
    assert_eq!(account, Value::Null);
    let refused = h.err("chaind_sendStakingOp", json!(["0xc0"])).await;
    assert_eq!(refused["code"], -32000, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("does not accept staking operations"),
        "{refused}"
    );
    assert_eq!(
        h.err("chaind_sendStakingOp", json!([12])).await["code"],
        -32602
    );
    assert_eq!(
        h.err("chaind_sendStakingOp", json!(["not hex"])).await["code"],
        -32602
    );
    assert_eq!(
        h.err("chaind_stakingAccount", json!(["0x12"])).await["code"],
        -32602
    );
    assert_eq!(
        h.err(
            "chaind_stakingAccount",
            json!(["0x0000000000000000000000000000000000000001", "0xffffff"])
        )
        .await["message"],
        "header not found"
    );
}
