//! A real `chaind dev` process driven by alloy's provider, as a dapp's Rust backend would:
//! deploy an ERC-20, transfer, read balances, find the Transfer event with `eth_getLogs` and a
//! log filter, estimate gas, and call a reverting function and read the revert reason.

use alloy_network::{EthereumWallet, ReceiptResponse, TransactionBuilder};
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use chain_executor::workload;
#[path = "support/dev_node.rs"]
mod dev_node;
use dev_node::DevNode;
use std::time::{Duration, Instant};

/// The first key of the test mnemonic, funded by `chaind dev`.
const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn word(value: U256) -> Bytes {
    Bytes::from(value.to_be_bytes::<32>().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_provider_deploys_transfers_and_reads_events() {
    let datadir = tempfile::tempdir().unwrap();
    let node = DevNode::start(datadir.path());
    let signer: PrivateKeySigner = DEV_KEY.parse().unwrap();
    let me = signer.address();
    let url = node.url().parse().unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url);

    let started = Instant::now();
    let chain_id = loop {
        match provider.get_chain_id().await {
            Ok(id) => break id,
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "node did not answer: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(chain_id, 31337);

    // Deploy with a supply of 1,000,000 tokens minted to the deployer.
    let supply = U256::from(1_000_000u64);
    let creation =
        workload::with_constructor_args(&workload::erc20_creation(), &[supply.to_be_bytes()]);
    let deploy = TransactionRequest::default().with_deploy_code(creation);
    let receipt = provider
        .send_transaction(deploy)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "deployment failed: {receipt:?}");
    let token = receipt
        .contract_address()
        .expect("contract address in the receipt");
    assert!(!provider.get_code_at(token).await.unwrap().is_empty());

    let balance_of = |owner: Address| {
        TransactionRequest::default()
            .with_to(token)
            .with_input(workload::erc20_balance_of_calldata(owner))
    };
    assert_eq!(provider.call(balance_of(me)).await.unwrap(), word(supply));

    // Transfer 250 tokens, with the gas limit alloy estimates.
    let recipient = Address::repeat_byte(0x42);
    let transfer =
        TransactionRequest::default()
            .with_to(token)
            .with_input(workload::erc20_transfer_calldata(
                recipient,
                U256::from(250),
            ));
    let estimate = provider.estimate_gas(transfer.clone()).await.unwrap();
    assert!((21_000..200_000).contains(&estimate), "estimate {estimate}");
    let receipt = provider
        .send_transaction(transfer)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert!(receipt.gas_used() <= estimate);
    assert_eq!(
        provider.call(balance_of(recipient)).await.unwrap(),
        word(U256::from(250))
    );
    assert_eq!(
        provider.call(balance_of(me)).await.unwrap(),
        word(supply - U256::from(250))
    );

    // The Transfer event, through eth_getLogs and through a polled log filter.
    let block = receipt.block_number().unwrap();
    let filter = Filter::new()
        .address(token)
        .event_signature(workload::TRANSFER_TOPIC)
        .topic2(B256::left_padding_from(recipient.as_slice()))
        .from_block(block)
        .to_block(block);
    let logs = provider.get_logs(&filter).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].transaction_hash, Some(receipt.transaction_hash()));
    assert_eq!(logs[0].data().data, word(U256::from(250)));

    let watched = provider
        .new_filter(&Filter::new().address(token).from_block(block + 1))
        .await
        .unwrap();
    let second = TransactionRequest::default()
        .with_to(token)
        .with_input(workload::erc20_transfer_calldata(recipient, U256::from(5)));
    let second = provider
        .send_transaction(second)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let changes: Vec<alloy_rpc_types_eth::Log> =
        provider.get_filter_changes(watched).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].transaction_hash, Some(second.transaction_hash()));

    // A transfer beyond the balance reverts: eth_call answers with geth's error and the data.
    let too_much = TransactionRequest::default()
        .with_from(recipient)
        .with_to(token)
        .with_input(workload::erc20_transfer_calldata(me, U256::from(1_000_000)));
    let error = provider
        .call(too_much)
        .await
        .expect_err("the call must revert");
    let response = error.as_error_resp().expect("a JSON-RPC error response");
    assert_eq!(response.code, 3, "{response:?}");
    assert!(
        response.message.contains("execution reverted"),
        "{response:?}"
    );
    assert!(
        response.message.contains("ERC20: insufficient balance"),
        "{response:?}"
    );
    let data = response.as_revert_data().expect("revert data");
    assert_eq!(
        &data[..4],
        &[0x08, 0xc3, 0x79, 0xa0],
        "Error(string) selector"
    );
}
