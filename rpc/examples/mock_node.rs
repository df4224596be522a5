//! Serves the test suite's in-memory chain (genesis with the test mnemonic's first accounts
//! funded), producing a block of the pool's transactions every 500 ms, so that client smoke tests (`tests/clients/`) can run against the
//! RPC server without the full node: `cargo run -p chain-rpc --example mock_node`.
//! `RPC_ADDR` sets the listen address (default 127.0.0.1:8545).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("RPC_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8545".to_owned())
        .parse()?;
    let chain = support::MockChain::new();
    let config = chain_rpc::RpcConfig {
        http_addr: addr,
        allowed_hosts: vec!["*".to_owned()],
        ..Default::default()
    };
    let handle = chain_rpc::start(config, chain.clone()).await?;
    println!(
        "mock node: http://{0} and ws://{0} (chain id {1})",
        handle.http_addr(),
        support::CHAIN_ID
    );
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let block = chain.mine_pool();
        if !block.tx_hashes.is_empty() {
            println!(
                "block {} with {} transactions",
                block.block.number(),
                block.tx_hashes.len()
            );
        }
    }
}
