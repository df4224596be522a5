//! eth_* methods over a real HTTP connection against the mock chain: state by block tag,
//! blocks, transactions, receipts, logs, eth_call / eth_estimateGas, fees, net/web3/txpool.

mod support;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use chain_executor::workload;
use serde_json::{Value, json};
use support::*;

fn token_transfer(to: Address, amount: u64) -> String {
    workload::erc20_transfer_calldata(to, U256::from(amount)).to_string()
}

fn balance_of(owner: Address) -> String {
    workload::erc20_balance_of_calldata(owner).to_string()
}

fn word(n: u64) -> String {
    B256::from(U256::from(n)).to_string()
}

#[tokio::test]
async fn chain_identity_and_node_methods() {
    let h = Harness::fixture().await;
    assert_eq!(h.ok("eth_chainId", json!([])).await, json!("0x7a69"));
    assert_eq!(h.ok("eth_blockNumber", json!([])).await, json!("0x3"));
    assert_eq!(h.ok("net_version", json!([])).await, json!("31337"));
    assert_eq!(h.ok("net_listening", json!([])).await, json!(true));
    assert_eq!(h.ok("net_peerCount", json!([])).await, json!("0x3"));
    assert_eq!(
        h.ok("web3_clientVersion", json!([])).await,
        json!("chaind/v0.1.0-test")
    );
    assert_eq!(
        h.ok("web3_sha3", json!(["0x68656c6c6f20776f726c64"])).await,
        json!("0x47173285a8d7341e5e972fc677286384f802f8ef42a5ec5f03bbfa254cb01fad")
    );
    assert_eq!(h.ok("eth_syncing", json!([])).await, json!(false));
    h.chain.set_syncing(Some(chain_rpc::SyncStatus {
        starting_block: 1,
        current_block: 3,
        highest_block: 9,
    }));
    assert_eq!(
        h.ok("eth_syncing", json!([])).await,
        json!({"startingBlock": "0x1", "currentBlock": "0x3", "highestBlock": "0x9"})
    );
    let accounts = h.ok("eth_accounts", json!([])).await;
    assert_eq!(accounts.as_array().unwrap().len(), 2);
    assert_eq!(
        accounts[0].as_str().unwrap().to_lowercase(),
        format!("{DEV:#x}")
    );
    assert_eq!(h.ok("eth_mining", json!([])).await, json!(false));
}

#[tokio::test]
async fn state_reads_follow_block_tags() {
    let h = Harness::fixture().await;
    let bob = json!(BOB);
    let genesis_balance = U256::from(10_000 * ETH);
    let after_block_1 = genesis_balance + U256::from(ETH);
    let at = |tag: Value| json!([bob.clone(), tag]);

    let latest = h.ok("eth_getBalance", at(json!("latest"))).await;
    assert_eq!(latest, json!(after_block_1 + U256::from(1000)));
    assert_eq!(
        h.ok("eth_getBalance", json!([bob])).await,
        latest,
        "block defaults to latest"
    );
    assert_eq!(
        h.ok("eth_getBalance", at(json!("earliest"))).await,
        json!(genesis_balance)
    );
    assert_eq!(
        h.ok("eth_getBalance", at(json!("0x1"))).await,
        json!(after_block_1)
    );
    assert_eq!(h.ok("eth_getBalance", at(json!("pending"))).await, latest);
    // safe and finalized trail the head by one block in the mock
    assert_eq!(
        h.ok("eth_getBalance", at(json!("safe"))).await,
        json!(after_block_1 + U256::from(1000))
    );
    let hash1 = h.chain.block(1).block.hash();
    assert_eq!(
        h.ok("eth_getBalance", at(json!(hash1))).await,
        json!(after_block_1)
    );
    assert_eq!(
        h.ok(
            "eth_getBalance",
            at(json!({"blockHash": hash1, "requireCanonical": true}))
        )
        .await,
        json!(after_block_1)
    );
    assert_eq!(
        h.ok("eth_getBalance", at(json!({"blockNumber": "0x0"})))
            .await,
        json!(genesis_balance)
    );

    let beyond = h.err("eth_getBalance", at(json!("0x64"))).await;
    assert_eq!(beyond["code"], -32000);
    assert_eq!(beyond["message"], "header not found");
    let unknown = h
        .err("eth_getBalance", at(json!(B256::repeat_byte(9))))
        .await;
    assert_eq!(unknown["message"], "header for hash not found");

    // nonces: DEV sent 4 transactions, 2 in block 1
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([DEV, "latest"]))
            .await,
        json!("0x4")
    );
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([DEV, "0x1"])).await,
        json!("0x2")
    );
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([POOR, "latest"]))
            .await,
        json!("0x0")
    );

    // code and storage
    let code = h.ok("eth_getCode", json!([TOKEN, "latest"])).await;
    assert_eq!(code, json!(workload::erc20_runtime()));
    assert_eq!(
        h.ok("eth_getCode", json!([BOB, "latest"])).await,
        json!("0x")
    );
    let total_supply = h
        .ok("eth_getStorageAt", json!([TOKEN, "0x2", "latest"]))
        .await;
    assert_eq!(total_supply, json!(B256::from(U256::from(1_000_000 * ETH))));
    let padded = format!("0x{:064x}", 2);
    assert_eq!(
        h.ok("eth_getStorageAt", json!([TOKEN, padded, "latest"]))
            .await,
        total_supply
    );
    let alice_slot = B256::from(workload::erc20_balance_slot(ALICE));
    assert_eq!(
        h.ok("eth_getStorageAt", json!([TOKEN, alice_slot, "0x1"]))
            .await,
        json!(word(100))
    );
    assert_eq!(
        h.ok("eth_getStorageAt", json!([TOKEN, alice_slot, "latest"]))
            .await,
        json!(word(107))
    );
}

#[tokio::test]
async fn pending_nonce_counts_pool_transactions() {
    let h = Harness::fixture().await;
    let dev = signer(DEV_KEY);
    for nonce in [4, 5] {
        let tx = sign_1559(
            &dev,
            nonce,
            BOB,
            U256::from(1),
            Bytes::new(),
            21_000,
            2_000_000_000,
        );
        let hash = h.ok("eth_sendRawTransaction", json!([raw_hex(&tx)])).await;
        assert_eq!(hash, json!(tx.tx_hash()));
    }
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([DEV, "pending"]))
            .await,
        json!("0x6")
    );
    assert_eq!(
        h.ok("eth_getTransactionCount", json!([DEV, "latest"]))
            .await,
        json!("0x4")
    );
    let status = h.ok("txpool_status", json!([])).await;
    assert_eq!(status, json!({"pending": "0x2", "queued": "0x0"}));
    let content = h.ok("txpool_content", json!([])).await;
    let by_sender = &content["pending"][DEV.to_checksum(None)];
    assert_eq!(by_sender["4"]["nonce"], "0x4");
    assert_eq!(by_sender["5"]["blockHash"], Value::Null);
    assert_eq!(content["queued"], json!({}));
}

#[tokio::test]
async fn send_raw_transaction_passes_pool_errors_through() {
    let h = Harness::fixture().await;
    let dev = signer(DEV_KEY);
    let tx = sign_1559(
        &dev,
        4,
        BOB,
        U256::from(1),
        Bytes::new(),
        21_000,
        2_000_000_000,
    );
    h.ok("eth_sendRawTransaction", json!([raw_hex(&tx)])).await;
    let again = h.err("eth_sendRawTransaction", json!([raw_hex(&tx)])).await;
    assert_eq!(again, json!({"code": -32000, "message": "already known"}));
    let stale = sign_1559(
        &dev,
        0,
        BOB,
        U256::from(1),
        Bytes::new(),
        21_000,
        2_000_000_000,
    );
    let low = h
        .err("eth_sendRawTransaction", json!([raw_hex(&stale)]))
        .await;
    assert_eq!(low["message"], "nonce too low");
    let garbage = h.err("eth_sendRawTransaction", json!(["0x02c0"])).await;
    assert_eq!(garbage["code"], -32602);
    let no_prefix = h.err("eth_sendRawTransaction", json!(["02c0"])).await;
    assert_eq!(
        no_prefix["message"],
        "invalid argument 0: hex string without 0x prefix"
    );
}

#[tokio::test]
async fn block_objects_carry_every_field_clients_need() {
    let h = Harness::fixture().await;
    let block = h.ok("eth_getBlockByNumber", json!(["0x2", false])).await;
    let required = [
        "number",
        "hash",
        "parentHash",
        "nonce",
        "sha3Uncles",
        "logsBloom",
        "transactionsRoot",
        "stateRoot",
        "receiptsRoot",
        "miner",
        "difficulty",
        "totalDifficulty",
        "extraData",
        "size",
        "gasLimit",
        "gasUsed",
        "timestamp",
        "transactions",
        "uncles",
        "baseFeePerGas",
        "mixHash",
    ];
    for field in required {
        assert!(
            block.get(field).is_some_and(|v| !v.is_null()),
            "block lacks {field}: {block}"
        );
    }
    let stored = h.chain.block(2);
    assert_eq!(block["hash"], json!(stored.block.hash()));
    assert_eq!(block["parentHash"], json!(h.chain.block(1).block.hash()));
    assert_eq!(block["number"], "0x2");
    assert_eq!(block["totalDifficulty"], "0x0");
    assert_eq!(block["size"], json!(hex(stored.size as u64)));
    assert_eq!(
        block["miner"].as_str().unwrap(),
        format!("{BENEFICIARY:#x}")
    );
    assert_eq!(block["baseFeePerGas"], json!(hex(BASE_FEE)));
    assert_eq!(block["uncles"], json!([]));
    assert_eq!(block["transactions"], json!(stored.tx_hashes));
    assert_eq!(block["gasUsed"], json!(hex(stored.block.header().gas_used)));

    let full = h.ok("eth_getBlockByNumber", json!(["0x2", true])).await;
    let txs = full["transactions"].as_array().unwrap();
    assert_eq!(txs.len(), 3);
    assert_eq!(txs[0]["hash"], json!(stored.tx_hashes[0]));
    assert_eq!(txs[0]["blockHash"], json!(stored.block.hash()));
    assert_eq!(txs[1]["transactionIndex"], "0x1");
    assert_eq!(txs[2]["type"], "0x0");
    assert_eq!(txs[2]["from"].as_str().unwrap(), format!("{ALICE:#x}"));

    let by_hash = h
        .ok("eth_getBlockByHash", json!([stored.block.hash(), false]))
        .await;
    assert_eq!(by_hash, block);
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["earliest", false]))
            .await["number"],
        "0x0"
    );
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["latest", false])).await["number"],
        "0x3"
    );
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["pending", false]))
            .await["number"],
        "0x3"
    );
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["finalized", false]))
            .await["number"],
        "0x2"
    );
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["safe", false])).await["number"],
        "0x2"
    );
    assert_eq!(
        h.ok("eth_getBlockByNumber", json!(["0x63", false])).await,
        Value::Null
    );
    assert_eq!(
        h.ok("eth_getBlockByHash", json!([B256::repeat_byte(1), false]))
            .await,
        Value::Null
    );

    assert_eq!(
        h.ok("eth_getBlockTransactionCountByNumber", json!(["0x2"]))
            .await,
        "0x3"
    );
    assert_eq!(
        h.ok(
            "eth_getBlockTransactionCountByHash",
            json!([stored.block.hash()])
        )
        .await,
        "0x3"
    );
    assert_eq!(
        h.ok("eth_getBlockTransactionCountByNumber", json!(["0x63"]))
            .await,
        Value::Null
    );
    assert_eq!(
        h.ok("eth_getUncleCountByBlockNumber", json!(["0x2"])).await,
        "0x0"
    );
    assert_eq!(
        h.ok("eth_getUncleByBlockNumberAndIndex", json!(["0x2", "0x0"]))
            .await,
        Value::Null
    );
}

#[tokio::test]
async fn transactions_mined_and_pending() {
    let h = Harness::fixture().await;
    let block = h.chain.block(1);
    let hash = block.tx_hashes[0];
    let tx = h.ok("eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(tx["hash"], json!(hash));
    assert_eq!(tx["blockHash"], json!(block.block.hash()));
    assert_eq!(tx["blockNumber"], "0x1");
    assert_eq!(tx["transactionIndex"], "0x0");
    assert_eq!(tx["from"].as_str().unwrap(), format!("{DEV:#x}"));
    assert_eq!(tx["to"].as_str().unwrap(), format!("{TOKEN:#x}"));
    assert_eq!(tx["type"], "0x2");
    assert_eq!(tx["chainId"], "0x7a69");
    assert_eq!(tx["nonce"], "0x0");
    assert_eq!(tx["maxFeePerGas"], json!(hex(2_000_000_000)));
    assert_eq!(tx["maxPriorityFeePerGas"], json!(hex(1_000_000_000)));
    // effective price: min(max fee, base fee + tip) = 2 gwei
    assert_eq!(tx["gasPrice"], json!(hex(2_000_000_000)));
    assert_eq!(tx["accessList"], json!([]));
    for field in ["v", "r", "s", "yParity", "input", "gas", "value"] {
        assert!(tx.get(field).is_some(), "transaction lacks {field}: {tx}");
    }
    let by_index = h
        .ok(
            "eth_getTransactionByBlockNumberAndIndex",
            json!(["0x1", "0x0"]),
        )
        .await;
    assert_eq!(by_index, tx);
    let by_hash_index = h
        .ok(
            "eth_getTransactionByBlockHashAndIndex",
            json!([block.block.hash(), "0x0"]),
        )
        .await;
    assert_eq!(by_hash_index, tx);
    assert_eq!(
        h.ok(
            "eth_getTransactionByBlockNumberAndIndex",
            json!(["0x1", "0x9"])
        )
        .await,
        Value::Null
    );
    let raw = h.ok("eth_getRawTransactionByHash", json!([hash])).await;
    assert_eq!(raw, json!(raw_hex(&block.block.block().transactions[0])));

    // pending: in the pool, no block fields, no receipt
    let dev = signer(DEV_KEY);
    let pending = sign_1559(
        &dev,
        4,
        BOB,
        U256::from(7),
        Bytes::new(),
        21_000,
        3_000_000_000,
    );
    let pending_hash = h
        .ok("eth_sendRawTransaction", json!([raw_hex(&pending)]))
        .await;
    let tx = h
        .ok("eth_getTransactionByHash", json!([pending_hash]))
        .await;
    assert_eq!(tx["blockHash"], Value::Null);
    assert_eq!(tx["blockNumber"], Value::Null);
    assert_eq!(tx["transactionIndex"], Value::Null);
    assert_eq!(
        tx["gasPrice"],
        json!(hex(3_000_000_000)),
        "pending gasPrice is the fee cap"
    );
    assert_eq!(
        h.ok("eth_getTransactionReceipt", json!([pending_hash]))
            .await,
        Value::Null
    );
    assert_eq!(
        h.ok("eth_getTransactionByHash", json!([B256::repeat_byte(3)]))
            .await,
        Value::Null
    );

    // once mined, the receipt appears
    h.chain.produce(vec![pending]);
    let receipt = h
        .ok("eth_getTransactionReceipt", json!([pending_hash]))
        .await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["blockNumber"], "0x4");
}

#[tokio::test]
async fn receipts_number_logs_across_the_block() {
    let h = Harness::fixture().await;
    let block = h.chain.block(2);
    let receipts = h.chain.receipts_of(2);
    let second = h
        .ok("eth_getTransactionReceipt", json!([block.tx_hashes[1]]))
        .await;
    assert_eq!(second["status"], "0x1");
    assert_eq!(second["type"], "0x2");
    assert_eq!(second["transactionIndex"], "0x1");
    assert_eq!(second["transactionHash"], json!(block.tx_hashes[1]));
    assert_eq!(second["blockHash"], json!(block.block.hash()));
    assert_eq!(second["blockNumber"], "0x2");
    assert_eq!(second["from"].as_str().unwrap(), format!("{DEV:#x}"));
    assert_eq!(second["to"].as_str().unwrap(), format!("{TOKEN:#x}"));
    assert_eq!(second["contractAddress"], Value::Null);
    assert_eq!(second["gasUsed"], json!(hex(receipts[1].gas_used)));
    assert_eq!(
        second["cumulativeGasUsed"],
        json!(hex(receipts[1].cumulative_gas_used))
    );
    assert_eq!(
        second["effectiveGasPrice"],
        json!(hex(receipts[1].effective_gas_price as u64))
    );
    assert_eq!(second["logsBloom"], json!(receipts[1].bloom()));
    let logs = second["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log["logIndex"], "0x1", "the block's second log");
    assert_eq!(log["transactionIndex"], "0x1");
    assert_eq!(log["transactionHash"], json!(block.tx_hashes[1]));
    assert_eq!(log["blockHash"], json!(block.block.hash()));
    assert_eq!(log["blockNumber"], "0x2");
    assert_eq!(log["removed"], false);
    assert_eq!(log["address"].as_str().unwrap(), format!("{TOKEN:#x}"));
    assert_eq!(log["topics"][0], json!(workload::TRANSFER_TOPIC));
    assert_eq!(log["topics"][2], json!(ALICE.into_word()));
    assert_eq!(log["data"], json!(word(7)));

    let legacy = h
        .ok("eth_getTransactionReceipt", json!([block.tx_hashes[2]]))
        .await;
    assert_eq!(legacy["type"], "0x0");
    assert_eq!(legacy["logs"], json!([]));
    assert_eq!(legacy["effectiveGasPrice"], json!(hex(5_000_000_000)));

    let all = h.ok("eth_getBlockReceipts", json!(["0x2"])).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[1], second);
    assert_eq!(
        h.ok("eth_getBlockReceipts", json!([block.block.hash()]))
            .await,
        all
    );
    assert_eq!(
        h.ok("eth_getBlockReceipts", json!(["0x63"])).await,
        Value::Null
    );
}

#[tokio::test]
async fn contract_creation_receipt_has_contract_address() {
    let h = Harness::fixture().await;
    let dev = signer(DEV_KEY);
    let creation = workload::with_constructor_args(
        &workload::erc20_creation(),
        &[U256::from(1000).to_be_bytes()],
    );
    let tx = sign_1559_tip(
        &dev,
        4,
        alloy_primitives::TxKind::Create,
        U256::ZERO,
        creation,
        2_000_000,
        2_000_000_000,
        1,
    );
    h.chain.produce(vec![tx.clone()]);
    let receipt = h
        .ok("eth_getTransactionReceipt", json!([tx.tx_hash()]))
        .await;
    let expected = DEV.create(4);
    assert_eq!(
        receipt["contractAddress"].as_str().unwrap(),
        format!("{expected:#x}")
    );
    assert_eq!(receipt["to"], Value::Null);
    let code = h.ok("eth_getCode", json!([expected, "latest"])).await;
    assert_eq!(code, json!(workload::erc20_runtime()));
}

fn transfer_topic() -> String {
    workload::TRANSFER_TOPIC.to_string()
}

fn topic_of(address: Address) -> String {
    address.into_word().to_string()
}

async fn log_count(h: &Harness, filter: Value) -> usize {
    h.ok("eth_getLogs", json!([filter]))
        .await
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn get_logs_filters_by_address_topics_and_range() {
    let h = Harness::fixture().await;
    // three Transfer logs: block 1 DEV→ALICE, block 2 DEV→BOB and DEV→ALICE
    let all = h
        .ok(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
        )
        .await;
    let logs = all.as_array().unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0]["blockNumber"], "0x1");
    assert_eq!(logs[0]["logIndex"], "0x0");
    assert_eq!(logs[2]["logIndex"], "0x1");
    assert_eq!(logs[2]["blockTimestamp"], json!(hex(GENESIS_TIME + 4)));

    let range = |from: &str, to: &str| json!({"fromBlock": from, "toBlock": to});
    assert_eq!(log_count(&h, range("0x1", "0x1")).await, 1);
    assert_eq!(log_count(&h, range("0x2", "0x3")).await, 2);
    assert_eq!(
        log_count(&h, json!({})).await,
        0,
        "default range is the (empty) latest block"
    );
    assert_eq!(log_count(&h, range("earliest", "finalized")).await, 3);

    let base = |extra: Value| {
        let mut filter = range("0x0", "latest");
        filter
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        filter
    };
    assert_eq!(log_count(&h, base(json!({"address": TOKEN}))).await, 3);
    assert_eq!(
        log_count(&h, base(json!({"address": [BOB, TOKEN]}))).await,
        3
    );
    assert_eq!(log_count(&h, base(json!({"address": REVERTER}))).await, 0);
    assert_eq!(
        log_count(&h, base(json!({"topics": [transfer_topic()]}))).await,
        3
    );
    // to ALICE (topic 2)
    assert_eq!(
        log_count(&h, base(json!({"topics": [null, null, topic_of(ALICE)]}))).await,
        2
    );
    // to ALICE or BOB
    assert_eq!(
        log_count(
            &h,
            base(json!({"topics": [null, null, [topic_of(ALICE), topic_of(BOB)]]}))
        )
        .await,
        3
    );
    // from DEV to BOB
    assert_eq!(
        log_count(
            &h,
            base(json!({"topics": [transfer_topic(), topic_of(DEV), topic_of(BOB)]}))
        )
        .await,
        1
    );
    // a null among alternatives is a wildcard
    assert_eq!(
        log_count(
            &h,
            base(json!({"topics": [null, null, [topic_of(BOB), null]]}))
        )
        .await,
        3
    );
    // more positions than the logs have topics: nothing
    assert_eq!(
        log_count(&h, base(json!({"topics": [null, null, null, null]}))).await,
        0
    );
    assert_eq!(
        log_count(&h, base(json!({"topics": [B256::repeat_byte(5)]}))).await,
        0
    );

    let block2 = h.chain.block(2).block.hash();
    assert_eq!(log_count(&h, json!({"blockHash": block2})).await, 2);
    assert_eq!(
        log_count(
            &h,
            json!({"blockHash": block2, "topics": [null, null, topic_of(BOB)]})
        )
        .await,
        1
    );
    let unknown = h
        .err("eth_getLogs", json!([{"blockHash": B256::repeat_byte(4)}]))
        .await;
    assert_eq!(unknown["message"], "unknown block");
    let both = h
        .err(
            "eth_getLogs",
            json!([{"blockHash": block2, "fromBlock": "0x1"}]),
        )
        .await;
    assert_eq!(
        both["message"],
        "invalid argument 0: cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
    );

    let reversed = h.err("eth_getLogs", json!([range("0x2", "0x1")])).await;
    assert_eq!(
        reversed,
        json!({"code": -32602, "message": "invalid block range params"})
    );
    let future = h.err("eth_getLogs", json!([range("0x2", "0x9")])).await;
    assert_eq!(
        future["message"],
        "block range extends beyond current head block"
    );
    let future_from = h.err("eth_getLogs", json!([range("0x9", "latest")])).await;
    assert_eq!(future_from["message"], "invalid block range params");
    let topics = h
        .err(
            "eth_getLogs",
            json!([base(json!({"topics": [null, null, null, null, null]}))]),
        )
        .await;
    assert_eq!(topics["message"], "exceed max topics");
    let bad_topic = h
        .err("eth_getLogs", json!([base(json!({"topics": [[1]]}))]))
        .await;
    assert_eq!(bad_topic["code"], -32602);
}

#[tokio::test]
async fn get_logs_limits_range_and_results() {
    let config = chain_rpc::RpcConfig {
        logs_max_block_range: 2,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let wide = h
        .err(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x2"}]),
        )
        .await;
    assert_eq!(
        wide,
        json!({"code": -32005, "message": "exceed maximum block range: 2"})
    );
    assert_eq!(
        log_count(&h, json!({"fromBlock": "0x1", "toBlock": "0x2"})).await,
        3
    );

    let config = chain_rpc::RpcConfig {
        logs_max_results: 1,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let many = h
        .err(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest"}]),
        )
        .await;
    assert_eq!(many["code"], -32005);
    assert!(
        many["message"]
            .as_str()
            .unwrap()
            .starts_with("query returned more than 1 results"),
        "{many}"
    );
    assert_eq!(
        log_count(&h, json!({"fromBlock": "0x1", "toBlock": "0x1"})).await,
        1
    );
}

#[tokio::test]
async fn eth_call_reads_and_reverts_like_geth() {
    let h = Harness::fixture().await;
    let balance = h
        .ok(
            "eth_call",
            json!([{"to": TOKEN, "data": balance_of(ALICE)}, "latest"]),
        )
        .await;
    assert_eq!(balance, json!(word(107)));
    let with_input = h
        .ok(
            "eth_call",
            json!([{"to": TOKEN, "input": balance_of(ALICE)}, "0x1"]),
        )
        .await;
    assert_eq!(with_input, json!(word(100)), "input field, at block 1");
    let same = h
        .ok(
            "eth_call",
            json!([{"to": TOKEN, "input": balance_of(ALICE), "data": balance_of(ALICE)}]),
        )
        .await;
    assert_eq!(same, json!(word(107)));
    let differ = h
        .err(
            "eth_call",
            json!([{"to": TOKEN, "input": balance_of(ALICE), "data": balance_of(BOB)}]),
        )
        .await;
    assert_eq!(differ["code"], -32602);

    let reverted = h
        .err(
            "eth_call",
            json!([{"to": REVERTER, "data": "0x"}, "latest"]),
        )
        .await;
    assert_eq!(reverted["code"], 3);
    assert_eq!(reverted["message"], "execution reverted: nope");
    assert_eq!(reverted["data"], json!(nope_revert_data()));

    let poor_transfer = h
        .err(
            "eth_call",
            json!([{"from": POOR, "to": TOKEN, "data": token_transfer(BOB, 1)}]),
        )
        .await;
    assert_eq!(poor_transfer["code"], 3);
    assert_eq!(
        poor_transfer["message"],
        "execution reverted: ERC20: insufficient balance"
    );

    // a contract can be the sender (EIP-3607 is not applied to calls)
    let from_contract = h
        .ok(
            "eth_call",
            json!([{"from": TOKEN, "to": TOKEN, "data": balance_of(ALICE)}]),
        )
        .await;
    assert_eq!(from_contract, json!(word(107)));

    // value without funds: refused, not minted
    let no_funds = h
        .err(
            "eth_call",
            json!([{"from": POOR, "to": BOB, "value": "0x1"}]),
        )
        .await;
    assert_eq!(no_funds["code"], -32000);
    assert!(
        no_funds["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient funds for gas * price + value")
    );
    // with a gas price the call pays for gas
    let priced = h
        .err(
            "eth_call",
            json!([{"from": POOR, "to": BOB, "gasPrice": hex(BASE_FEE), "gas": "0x5208"}]),
        )
        .await;
    assert!(
        priced["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient funds for gas * price + value"),
        "{priced}"
    );
    let below_base_fee = h
        .err(
            "eth_call",
            json!([{"from": DEV, "to": BOB, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1"}]),
        )
        .await;
    assert!(
        below_base_fee["message"]
            .as_str()
            .unwrap()
            .starts_with("max fee per gas less than block base fee")
    );
    let wrong_chain = h
        .err("eth_call", json!([{"to": BOB, "chainId": "0x1"}]))
        .await;
    assert_eq!(
        wrong_chain["message"],
        "chainId does not match node's (have=1, want=31337)"
    );
}

#[tokio::test]
async fn eth_call_state_overrides_and_pending_environment() {
    let h = Harness::fixture().await;
    let probe = Address::repeat_byte(0x77);
    let overrides = json!({ probe.to_string(): {"code": block_number_code()} });
    let latest = h
        .ok("eth_call", json!([{"to": probe}, "latest", overrides]))
        .await;
    assert_eq!(latest, json!(word(3)), "latest runs in the head block");
    let pending = h
        .ok("eth_call", json!([{"to": probe}, "pending", overrides]))
        .await;
    assert_eq!(pending, json!(word(4)), "pending runs in the next block");
    let past = h
        .ok("eth_call", json!([{"to": probe}, "0x1", overrides]))
        .await;
    assert_eq!(past, json!(word(1)));

    // reverter code planted on an empty address
    let planted = h
        .err(
            "eth_call",
            json!([{"to": probe}, "latest", { probe.to_string(): {"code": reverter_code()} }]),
        )
        .await;
    assert_eq!(planted["message"], "execution reverted: nope");

    // storage override: give POOR a token balance
    let slot = B256::from(workload::erc20_balance_slot(POOR));
    let diff = json!({ TOKEN.to_string(): {"stateDiff": { slot.to_string(): word(42) }} });
    assert_eq!(
        h.ok(
            "eth_call",
            json!([{"to": TOKEN, "data": balance_of(POOR)}, "latest", diff])
        )
        .await,
        json!(word(42))
    );
    // full state replacement wipes the other slots
    let state = json!({ TOKEN.to_string(): {"state": { slot.to_string(): word(1) }} });
    assert_eq!(
        h.ok(
            "eth_call",
            json!([{"to": TOKEN, "data": balance_of(ALICE)}, "latest", state])
        )
        .await,
        json!(word(0))
    );
    let both = json!({ TOKEN.to_string(): {"state": {}, "stateDiff": {}} });
    assert_eq!(
        h.err("eth_call", json!([{"to": TOKEN}, "latest", both]))
            .await["code"],
        -32602
    );
    // balance override funds a value call
    let funded = json!({ POOR.to_string(): {"balance": "0x10"} });
    assert_eq!(
        h.ok(
            "eth_call",
            json!([{"from": POOR, "to": BOB, "value": "0x1"}, "latest", funded])
        )
        .await,
        "0x"
    );
    let block_override = h
        .err(
            "eth_call",
            json!([{"to": BOB}, "latest", null, {"number": "0x1"}]),
        )
        .await;
    assert_eq!(
        block_override["message"],
        "block overrides are not supported"
    );
}

#[tokio::test]
async fn eth_call_times_out() {
    let config = chain_rpc::RpcConfig {
        call_timeout: std::time::Duration::from_millis(1),
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let probe = Address::repeat_byte(0x66);
    let overrides = json!({ probe.to_string(): {"code": infinite_loop_code()} });
    let timeout = h
        .err("eth_call", json!([{"to": probe}, "latest", overrides]))
        .await;
    assert_eq!(
        timeout,
        json!({"code": -32000, "message": "execution aborted (timeout = 1ms)"})
    );
    // the server is still responsive
    assert_eq!(h.ok("eth_blockNumber", json!([])).await, "0x3");
}

#[tokio::test]
async fn eth_call_respects_the_gas_cap() {
    let config = chain_rpc::RpcConfig {
        gas_cap: 100_000,
        ..test_config()
    };
    let h = Harness::start(MockChain::fixture(), config).await;
    let probe = Address::repeat_byte(0x66);
    let overrides = json!({ probe.to_string(): {"code": infinite_loop_code()} });
    let out_of_gas = h
        .err(
            "eth_call",
            json!([{"to": probe, "gas": "0xffffffff"}, "latest", overrides]),
        )
        .await;
    assert_eq!(out_of_gas, json!({"code": -32000, "message": "out of gas"}));
}

#[tokio::test]
async fn estimate_gas_finds_a_limit_that_succeeds() {
    let h = Harness::fixture().await;
    let transfer = h
        .ok(
            "eth_estimateGas",
            json!([{"from": DEV, "to": BOB, "value": "0x1"}]),
        )
        .await;
    assert_eq!(transfer, "0x5208");

    let call = json!({"from": DEV, "to": TOKEN, "data": token_transfer(POOR, 3)});
    let estimate = quantity(&h.ok("eth_estimateGas", json!([call])).await) as u64;
    assert!(
        estimate > 30_000 && estimate < 100_000,
        "estimate {estimate}"
    );
    // eth_call at the estimate succeeds
    let mut at_estimate = call.clone();
    at_estimate["gas"] = json!(hex(estimate));
    assert_eq!(h.ok("eth_call", json!([at_estimate])).await, json!(word(1)));
    // a tenth less runs out of gas: the search is tight
    let mut too_low = call.clone();
    too_low["gas"] = json!(hex(estimate * 9 / 10));
    assert_eq!(
        h.err("eth_call", json!([too_low])).await["message"],
        "out of gas"
    );
    // and a transaction with exactly that limit succeeds when mined
    let tx = sign_1559(
        &signer(DEV_KEY),
        4,
        TOKEN,
        U256::ZERO,
        workload::erc20_transfer_calldata(POOR, U256::from(3)),
        estimate,
        2_000_000_000,
    );
    h.chain.produce(vec![tx.clone()]);
    let receipt = h
        .ok("eth_getTransactionReceipt", json!([tx.tx_hash()]))
        .await;
    assert_eq!(receipt["status"], "0x1");

    // creation
    let creation = workload::with_constructor_args(
        &workload::erc20_creation(),
        &[U256::from(5).to_be_bytes()],
    );
    let create_estimate = quantity(
        &h.ok("eth_estimateGas", json!([{"from": DEV, "data": creation}]))
            .await,
    );
    assert!(create_estimate > 100_000, "{create_estimate}");
}

#[tokio::test]
async fn estimate_gas_reports_geth_errors() {
    let h = Harness::fixture().await;
    let reverted = h
        .err("eth_estimateGas", json!([{"from": DEV, "to": REVERTER}]))
        .await;
    assert_eq!(reverted["code"], 3);
    assert_eq!(reverted["message"], "execution reverted: nope");
    assert_eq!(reverted["data"], json!(nope_revert_data()));

    let poor = h
        .err(
            "eth_estimateGas",
            json!([{"from": POOR, "to": TOKEN, "data": token_transfer(BOB, 1)}]),
        )
        .await;
    assert_eq!(
        poor["message"],
        "execution reverted: ERC20: insufficient balance"
    );

    let no_funds = h
        .err(
            "eth_estimateGas",
            json!([{"from": POOR, "to": BOB, "value": "0x1", "gasPrice": hex(BASE_FEE)}]),
        )
        .await;
    assert_eq!(
        no_funds,
        json!({"code": -32000, "message": "insufficient funds for transfer"})
    );

    let probe = Address::repeat_byte(0x66);
    let overrides = json!({ probe.to_string(): {"code": infinite_loop_code()} });
    let config = chain_rpc::RpcConfig {
        gas_cap: 60_000,
        ..test_config()
    };
    let capped = Harness::start(MockChain::fixture(), config).await;
    let exceeded = capped
        .err(
            "eth_estimateGas",
            json!([{"from": DEV, "to": probe}, "latest", overrides]),
        )
        .await;
    assert_eq!(
        exceeded["message"],
        "gas required exceeds allowance (60000)"
    );
    let token = capped
        .ok(
            "eth_estimateGas",
            json!([{"from": DEV, "to": TOKEN, "data": token_transfer(BOB, 1)}]),
        )
        .await;
    assert!(quantity(&token) <= 60_000);
    let tight = Harness::start(
        MockChain::fixture(),
        chain_rpc::RpcConfig {
            gas_cap: 30_000,
            ..test_config()
        },
    )
    .await;
    let short = tight
        .err(
            "eth_estimateGas",
            json!([{"from": DEV, "to": TOKEN, "data": token_transfer(BOB, 1)}]),
        )
        .await;
    assert_eq!(short["message"], "gas required exceeds allowance (30000)");
}

#[tokio::test]
async fn fee_methods() {
    let chain = MockChain::fixture();
    let dev = signer(DEV_KEY);
    // block 4: tips 1, 2 and 3 gwei; every transfer uses 21000 gas
    chain.produce(
        (0..3u64)
            .map(|i| {
                let tip = u128::from(i + 1) * 1_000_000_000;
                sign_1559_tip(
                    &dev,
                    4 + i,
                    alloy_primitives::TxKind::Call(BOB),
                    U256::from(1),
                    Bytes::new(),
                    21_000,
                    10_000_000_000,
                    tip,
                )
            })
            .collect(),
    );
    let h = Harness::start(chain, test_config()).await;
    let history = h
        .ok("eth_feeHistory", json!(["0x2", "latest", [0, 50, 100]]))
        .await;
    assert_eq!(history["oldestBlock"], "0x3");
    assert_eq!(
        history["baseFeePerGas"],
        json!([hex(BASE_FEE), hex(BASE_FEE), hex(BASE_FEE)])
    );
    assert_eq!(history["gasUsedRatio"][0], 0.0);
    assert!(
        (history["gasUsedRatio"][1].as_f64().unwrap() - 63_000.0 / GAS_LIMIT as f64).abs() < 1e-12
    );
    assert_eq!(history["reward"][0], json!(["0x0", "0x0", "0x0"]));
    assert_eq!(
        history["reward"][1],
        json!([hex(1_000_000_000), hex(2_000_000_000), hex(3_000_000_000)])
    );
    let decimal = h.ok("eth_feeHistory", json!([2, "0x4"])).await;
    assert_eq!(decimal["oldestBlock"], "0x3");
    assert!(decimal.get("reward").is_none());
    let clipped = h.ok("eth_feeHistory", json!(["0x64", "0x1"])).await;
    assert_eq!(clipped["oldestBlock"], "0x0");
    assert_eq!(clipped["gasUsedRatio"].as_array().unwrap().len(), 2);

    let bad = h
        .err("eth_feeHistory", json!(["0x2", "latest", [50, 10]]))
        .await;
    assert_eq!(
        bad["message"],
        "invalid reward percentile: #0:50.000000 >= #1:10.000000"
    );
    let beyond = h.err("eth_feeHistory", json!(["0x2", "0x9"])).await;
    assert_eq!(
        beyond["message"],
        "request beyond head block: requested 9, head 4"
    );

    // oracle: lowest three tips per block; empty blocks sample the default (1 gwei)
    let tip = quantity(&h.ok("eth_maxPriorityFeePerGas", json!([])).await);
    assert!((1_000_000_000..=3_000_000_000).contains(&tip), "{tip}");
    let price = quantity(&h.ok("eth_gasPrice", json!([])).await);
    assert_eq!(price, tip + u128::from(BASE_FEE));
}

#[test]
fn keccak_of_fixture_names_is_stable() {
    // guards the hand-written selector in the fixture against typos
    assert_eq!(
        &keccak256("transfer(address,uint256)")[..4],
        &workload::TRANSFER_SELECTOR
    );
}
