//! The node as the load generator sees it: the [`NodeRpc`] trait (the few eth_* calls it
//! makes), the block and receipt fields it reads, and [`JsonRpcNode`], the implementation over
//! jsonrpsee's HTTP and WebSocket clients. Tests implement [`NodeRpc`] with an in-process fake.

use crate::error::LoadgenError;
use alloy_primitives::{Address, B256, Bytes, U256};
use jsonrpsee::{
    core::{
        ClientError,
        client::{BatchResponse, ClientT, SubscriptionClientT},
        params::{ArrayParams, BatchRequestBuilder},
    },
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
    ws_client::{WsClient, WsClientBuilder},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use std::{future::Future, time::Duration};
use tokio::{sync::mpsc, time::Instant};

/// The node's answer to one transaction of an `eth_sendRawTransaction` batch: the hash it
/// accepted, or the message of the error object it rejected the transaction with.
pub type SendOutcome = Result<B256, String>;

/// A new head as announced by `eth_subscribe("newHeads")`, with the moment it arrived here.
pub type ObservedHead = (BlockHeader, Instant);

/// The header fields the load generator reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockHeader {
    /// Block number.
    #[serde(deserialize_with = "quantity")]
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// Seconds since the epoch.
    #[serde(deserialize_with = "quantity")]
    pub timestamp: u64,
    /// Gas used by all transactions of the block.
    #[serde(deserialize_with = "quantity")]
    pub gas_used: u64,
    /// The block gas limit.
    #[serde(deserialize_with = "quantity")]
    pub gas_limit: u64,
    /// EIP-1559 base fee, in wei.
    #[serde(default, deserialize_with = "optional_quantity")]
    pub base_fee_per_gas: Option<u64>,
}

/// The receipt fields the load generator reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxReceipt {
    /// Hash of the transaction.
    pub transaction_hash: B256,
    /// Gas used by this transaction alone.
    #[serde(deserialize_with = "quantity")]
    pub gas_used: u64,
    /// Whether it succeeded (`status` 1); a missing status (pre-Byzantium) counts as success.
    #[serde(default = "status_success", deserialize_with = "status")]
    pub status: bool,
    /// Address of the contract a creation deployed.
    #[serde(default)]
    pub contract_address: Option<Address>,
}

fn status_success() -> bool {
    true
}

fn parse_quantity(text: &str) -> Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| format!("quantity {text:?} lacks 0x"))?;
    u64::from_str_radix(digits, 16).map_err(|e| format!("quantity {text:?}: {e}"))
}

fn quantity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_quantity(&text).map_err(serde::de::Error::custom)
}

fn optional_quantity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|t| parse_quantity(&t))
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(optional_quantity(deserializer)?.is_none_or(|s| s == 1))
}

/// Formats a block number as a JSON-RPC quantity.
pub fn hex_quantity(value: u64) -> String {
    format!("{value:#x}")
}

/// The calls the load generator makes. Every method may be called concurrently.
pub trait NodeRpc: Send + Sync + 'static {
    /// `eth_chainId`.
    fn chain_id(&self) -> impl Future<Output = Result<u64, LoadgenError>> + Send;
    /// `eth_blockNumber`.
    fn block_number(&self) -> impl Future<Output = Result<u64, LoadgenError>> + Send;
    /// `eth_getBlockByNumber(number, false)`; `None` if there is no such block yet.
    fn header(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Option<BlockHeader>, LoadgenError>> + Send;
    /// `eth_getBlockReceipts(number)`; `None` if there is no such block yet.
    fn block_receipts(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Option<Vec<TxReceipt>>, LoadgenError>> + Send;
    /// `eth_getTransactionCount(address, "pending")` of each address, in one batch.
    fn pending_nonces(
        &self,
        addresses: &[Address],
    ) -> impl Future<Output = Result<Vec<u64>, LoadgenError>> + Send;
    /// `eth_getBalance(address, "latest")` of each address, in one batch.
    fn balances(
        &self,
        addresses: &[Address],
    ) -> impl Future<Output = Result<Vec<U256>, LoadgenError>> + Send;
    /// `eth_sendRawTransaction` of each encoded transaction, in one batch (one call if there is
    /// one transaction); one outcome per transaction, in order.
    fn send_raw_batch(
        &self,
        raws: &[Bytes],
    ) -> impl Future<Output = Result<Vec<SendOutcome>, LoadgenError>> + Send;
    /// `eth_subscribe("newHeads")`: the heads with their arrival times, until the channel closes.
    fn subscribe_heads(
        &self,
    ) -> impl Future<Output = Result<mpsc::Receiver<ObservedHead>, LoadgenError>> + Send;
}

/// Which client [`JsonRpcNode`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// HTTP POST; batches are JSON arrays.
    #[default]
    Http,
    /// One WebSocket connection, requests multiplexed on it.
    Ws,
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(Self::Http),
            "ws" => Ok(Self::Ws),
            other => Err(format!("unknown transport {other:?} (http, ws)")),
        }
    }
}

/// The WebSocket URL of a node given by its HTTP URL (chaind serves both on one port).
pub fn ws_url_of(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_owned()
    }
}

/// The HTTP URL of a node given by its WebSocket URL.
pub fn http_url_of(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        url.to_owned()
    }
}

enum Client {
    Http(HttpClient),
    Ws(WsClient),
}

/// A [`NodeRpc`] over one jsonrpsee client (HTTP or WebSocket).
pub struct JsonRpcNode {
    client: Client,
}

/// Generous limits: a batch of raw transactions or a block's receipts can be megabytes.
const MAX_MESSAGE_BYTES: u32 = 256 * 1024 * 1024;
/// A request still unanswered after this long is a transport error, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Heads buffered between the subscription and the watcher.
const HEAD_BUFFER: usize = 4096;

impl JsonRpcNode {
    /// Connects to `url` (`http://…` or `ws://…`; the scheme is adapted to `transport`).
    pub async fn connect(url: &str, transport: TransportKind) -> Result<Self, LoadgenError> {
        let connect_error = |e: ClientError| LoadgenError::Transport {
            method: "connect",
            message: format!("{url}: {e}"),
        };
        let client = match transport {
            TransportKind::Http => Client::Http(
                HttpClientBuilder::default()
                    .max_request_size(MAX_MESSAGE_BYTES)
                    .max_response_size(MAX_MESSAGE_BYTES)
                    .request_timeout(REQUEST_TIMEOUT)
                    .build(http_url_of(url))
                    .map_err(connect_error)?,
            ),
            TransportKind::Ws => Client::Ws(
                WsClientBuilder::default()
                    .max_request_size(MAX_MESSAGE_BYTES)
                    .max_response_size(MAX_MESSAGE_BYTES)
                    .request_timeout(REQUEST_TIMEOUT)
                    .max_concurrent_requests(16_384)
                    .max_buffer_capacity_per_subscription(HEAD_BUFFER)
                    .build(ws_url_of(url))
                    .await
                    .map_err(connect_error)?,
            ),
        };
        Ok(Self { client })
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: &'static str,
        params: ArrayParams,
    ) -> Result<R, LoadgenError> {
        let result = match &self.client {
            Client::Http(client) => client.request(method, params).await,
            Client::Ws(client) => client.request(method, params).await,
        };
        result.map_err(|e| client_error(method, e))
    }

    async fn batch<R: DeserializeOwned + std::fmt::Debug>(
        &self,
        method: &'static str,
        params: impl Iterator<Item = ArrayParams>,
    ) -> Result<Vec<Result<R, String>>, LoadgenError> {
        let mut batch = BatchRequestBuilder::new();
        for p in params {
            batch
                .insert(method, p)
                .map_err(|e| LoadgenError::Transport {
                    method,
                    message: e.to_string(),
                })?;
        }
        let response: BatchResponse<'_, R> = match &self.client {
            Client::Http(client) => client.batch_request(batch).await,
            Client::Ws(client) => client.batch_request(batch).await,
        }
        .map_err(|e| client_error(method, e))?;
        Ok(response
            .into_iter()
            .map(|entry| entry.map_err(|e| e.message().to_owned()))
            .collect())
    }

    /// A batch whose every entry must succeed.
    async fn batch_all<R: DeserializeOwned + std::fmt::Debug>(
        &self,
        method: &'static str,
        params: impl Iterator<Item = ArrayParams>,
        expected: usize,
    ) -> Result<Vec<R>, LoadgenError> {
        let entries = self.batch(method, params).await?;
        if entries.len() != expected {
            return Err(LoadgenError::BadResponse {
                method,
                message: format!("{} answers to a batch of {expected}", entries.len()),
            });
        }
        entries
            .into_iter()
            .map(|e| e.map_err(|message| LoadgenError::Rpc { method, message }))
            .collect()
    }
}

fn client_error(method: &'static str, error: ClientError) -> LoadgenError {
    match error {
        ClientError::Call(object) => LoadgenError::Rpc {
            method,
            message: object.message().to_owned(),
        },
        ClientError::ParseError(e) => LoadgenError::BadResponse {
            method,
            message: e.to_string(),
        },
        other => LoadgenError::Transport {
            method,
            message: other.to_string(),
        },
    }
}

/// Deserializes a quantity answer (`"0x…"`).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct Quantity(#[serde(deserialize_with = "quantity")] u64);

impl NodeRpc for JsonRpcNode {
    async fn chain_id(&self) -> Result<u64, LoadgenError> {
        Ok(self.call::<Quantity>("eth_chainId", rpc_params![]).await?.0)
    }

    async fn block_number(&self) -> Result<u64, LoadgenError> {
        Ok(self
            .call::<Quantity>("eth_blockNumber", rpc_params![])
            .await?
            .0)
    }

    async fn header(&self, number: u64) -> Result<Option<BlockHeader>, LoadgenError> {
        self.call(
            "eth_getBlockByNumber",
            rpc_params![hex_quantity(number), false],
        )
        .await
    }

    async fn block_receipts(&self, number: u64) -> Result<Option<Vec<TxReceipt>>, LoadgenError> {
        self.call("eth_getBlockReceipts", rpc_params![hex_quantity(number)])
            .await
    }

    async fn pending_nonces(&self, addresses: &[Address]) -> Result<Vec<u64>, LoadgenError> {
        let params = addresses.iter().map(|a| rpc_params![a, "pending"]);
        let nonces: Vec<Quantity> = self
            .batch_all("eth_getTransactionCount", params, addresses.len())
            .await?;
        Ok(nonces.into_iter().map(|q| q.0).collect())
    }

    async fn balances(&self, addresses: &[Address]) -> Result<Vec<U256>, LoadgenError> {
        let params = addresses.iter().map(|a| rpc_params![a, "latest"]);
        self.batch_all("eth_getBalance", params, addresses.len())
            .await
    }

    async fn send_raw_batch(&self, raws: &[Bytes]) -> Result<Vec<SendOutcome>, LoadgenError> {
        const METHOD: &str = "eth_sendRawTransaction";
        if let [raw] = raws {
            // A lone transaction goes as a plain call: some servers treat batches differently.
            return match self.call::<B256>(METHOD, rpc_params![raw]).await {
                Ok(hash) => Ok(vec![Ok(hash)]),
                Err(LoadgenError::Rpc { message, .. }) => Ok(vec![Err(message)]),
                Err(other) => Err(other),
            };
        }
        let outcomes = self
            .batch::<B256>(METHOD, raws.iter().map(|raw| rpc_params![raw]))
            .await?;
        if outcomes.len() != raws.len() {
            return Err(LoadgenError::BadResponse {
                method: METHOD,
                message: format!("{} answers to a batch of {}", outcomes.len(), raws.len()),
            });
        }
        Ok(outcomes)
    }

    async fn subscribe_heads(&self) -> Result<mpsc::Receiver<ObservedHead>, LoadgenError> {
        const METHOD: &str = "eth_subscribe";
        let Client::Ws(client) = &self.client else {
            return Err(LoadgenError::Config(
                "newHeads needs a WebSocket connection".into(),
            ));
        };
        let mut subscription = client
            .subscribe::<BlockHeader, _>(METHOD, rpc_params!["newHeads"], "eth_unsubscribe")
            .await
            .map_err(|e| client_error(METHOD, e))?;
        let (sender, receiver) = mpsc::channel(HEAD_BUFFER);
        tokio::spawn(async move {
            while let Some(item) = subscription.next().await {
                // The arrival time is taken here, before any queueing behind the watcher.
                let arrived = Instant::now();
                match item {
                    Ok(header) => {
                        if sender.send((header, arrived)).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "undecodable newHeads notification"),
                }
            }
        });
        Ok(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_geth_shaped_header_and_receipt() {
        let header: BlockHeader = serde_json::from_str(
            r#"{"number":"0x1b4","hash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae",
                "parentHash":"0x0000000000000000000000000000000000000000000000000000000000000000",
                "timestamp":"0x6553f100","gasUsed":"0x5208","gasLimit":"0x1c9c380","baseFeePerGas":"0x3b9aca00",
                "transactions":[]}"#,
        )
        .unwrap();
        assert_eq!(header.number, 0x1b4);
        assert_eq!(header.gas_used, 21_000);
        assert_eq!(header.gas_limit, 30_000_000);
        assert_eq!(header.base_fee_per_gas, Some(1_000_000_000));

        let receipt: TxReceipt = serde_json::from_str(
            r#"{"transactionHash":"0x88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b",
                "gasUsed":"0xcb3c","cumulativeGasUsed":"0xcb3c","status":"0x0","contractAddress":null,"logs":[]}"#,
        )
        .unwrap();
        assert_eq!(receipt.gas_used, 0xcb3c);
        assert!(!receipt.status);
        assert_eq!(receipt.contract_address, None);
    }

    #[test]
    fn rejects_quantities_without_prefix() {
        assert!(serde_json::from_str::<Quantity>(r#""12""#).is_err());
        assert_eq!(serde_json::from_str::<Quantity>(r#""0x10""#).unwrap().0, 16);
    }

    #[test]
    fn converts_between_http_and_ws_urls() {
        assert_eq!(ws_url_of("http://127.0.0.1:8545"), "ws://127.0.0.1:8545");
        assert_eq!(http_url_of("ws://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(ws_url_of("ws://x"), "ws://x");
    }
}
