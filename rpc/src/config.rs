use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

/// Renders the Prometheus text exposition served on `GET /metrics`.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Configuration of the RPC server: where it listens, who may call it, and every limit.
///
/// Port 8545 serves both HTTP and WebSocket (a WebSocket client upgrades an HTTP connection on
/// the same port); `ws_addr` optionally adds a second listener, e.g. geth's 8546, that serves
/// the same methods.
#[derive(Clone)]
pub struct RpcConfig {
    /// HTTP + WebSocket listen address (default 127.0.0.1:8545).
    pub http_addr: SocketAddr,
    /// An additional listener (HTTP + WebSocket as well), e.g. 127.0.0.1:8546.
    pub ws_addr: Option<SocketAddr>,
    /// Origins allowed by CORS; `"*"` allows any. Empty: no CORS headers (browsers refuse).
    pub cors_origins: Vec<String>,
    /// Host header values accepted (geth's `--http.vhosts`), e.g. "localhost" or
    /// "example.com:8545"; `"*"` accepts any. Requests with another Host get 403.
    pub allowed_hosts: Vec<String>,
    /// Largest request body in bytes (HTTP body or WebSocket message).
    pub max_request_body_size: u32,
    /// Largest response in bytes.
    pub max_response_body_size: u32,
    /// Most calls in one batch.
    pub max_batch_len: u32,
    /// Most concurrent connections (open WebSockets plus HTTP requests in flight).
    pub max_connections: u32,
    /// Most subscriptions on one WebSocket connection.
    pub max_subscriptions_per_connection: u32,
    /// Outgoing messages a WebSocket connection buffers before its subscriptions must wait.
    pub ws_message_buffer: u32,
    /// How long a subscription may wait for buffer space before it is dropped as too slow.
    pub subscription_send_timeout: Duration,
    /// Gas cap of `eth_call` and `eth_estimateGas` (geth's `--rpc.gascap`).
    pub gas_cap: u64,
    /// Time limit of one `eth_call` / `eth_estimateGas` (geth's `--rpc.evmtimeout`).
    pub call_timeout: Duration,
    /// Most `eth_call` / `eth_estimateGas` executing at once; further ones wait.
    pub max_concurrent_calls: usize,
    /// Widest `eth_getLogs` block range (inclusive count of blocks).
    pub logs_max_block_range: u64,
    /// Most logs one `eth_getLogs` / `eth_getFilterLogs` returns.
    pub logs_max_results: usize,
    /// Most addresses in one log filter.
    pub logs_max_addresses: usize,
    /// A polling filter not polled for this long is removed (geth: 5 minutes).
    pub filter_timeout: Duration,
    /// Most polling filters installed at once.
    pub max_filters: usize,
    /// Most undelivered items (hashes or logs) a polling filter holds; past it the filter is
    /// removed, and the client's next poll gets "filter not found".
    pub max_filter_backlog: usize,
    /// Most blocks one `eth_feeHistory` covers (longer requests are truncated, as geth does).
    pub fee_history_max_blocks: u64,
    /// Blocks the gas price oracle samples (geth: 20).
    pub gas_price_blocks: u64,
    /// Percentile of sampled tips the oracle suggests (geth: 60).
    pub gas_price_percentile: u8,
    /// Tip suggested when the sampled blocks carry no transaction.
    pub default_priority_fee: u128,
    /// Highest tip the oracle suggests (geth: 500 gwei).
    pub max_priority_fee: u128,
    /// Renders `GET /metrics`; `None` answers 404 there.
    pub metrics: Option<MetricsRenderer>,
}

impl RpcConfig {
    /// Serves `GET /metrics` from a Prometheus recorder's handle.
    pub fn with_prometheus(
        mut self,
        handle: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Self {
        self.metrics = Some(Arc::new(move || handle.render()));
        self
    }
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            ws_addr: None,
            cors_origins: vec!["*".to_owned()],
            allowed_hosts: vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "[::1]".to_owned(),
            ],
            max_request_body_size: 10 * 1024 * 1024,
            max_response_body_size: 50 * 1024 * 1024,
            max_batch_len: 1000,
            max_connections: 1000,
            max_subscriptions_per_connection: 1024,
            ws_message_buffer: 1024,
            subscription_send_timeout: Duration::from_secs(5),
            gas_cap: 50_000_000,
            call_timeout: Duration::from_secs(5),
            max_concurrent_calls: 64,
            logs_max_block_range: 10_000,
            logs_max_results: 10_000,
            logs_max_addresses: 1_000,
            filter_timeout: Duration::from_secs(5 * 60),
            max_filters: 10_000,
            max_filter_backlog: 100_000,
            fee_history_max_blocks: 1024,
            gas_price_blocks: 20,
            gas_price_percentile: 60,
            default_priority_fee: 1_000_000_000,
            max_priority_fee: 500_000_000_000,
            metrics: None,
        }
    }
}

impl fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcConfig")
            .field("http_addr", &self.http_addr)
            .field("ws_addr", &self.ws_addr)
            .field("cors_origins", &self.cors_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_request_body_size", &self.max_request_body_size)
            .field("max_response_body_size", &self.max_response_body_size)
            .field("max_batch_len", &self.max_batch_len)
            .field("max_connections", &self.max_connections)
            .field(
                "max_subscriptions_per_connection",
                &self.max_subscriptions_per_connection,
            )
            .field("ws_message_buffer", &self.ws_message_buffer)
            .field("subscription_send_timeout", &self.subscription_send_timeout)
            .field("gas_cap", &self.gas_cap)
            .field("call_timeout", &self.call_timeout)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("logs_max_block_range", &self.logs_max_block_range)
            .field("logs_max_results", &self.logs_max_results)
            .field("logs_max_addresses", &self.logs_max_addresses)
            .field("filter_timeout", &self.filter_timeout)
            .field("max_filters", &self.max_filters)
            .field("max_filter_backlog", &self.max_filter_backlog)
            .field("fee_history_max_blocks", &self.fee_history_max_blocks)
            .field("gas_price_blocks", &self.gas_price_blocks)
            .field("gas_price_percentile", &self.gas_price_percentile)
            .field("default_priority_fee", &self.default_priority_fee)
            .field("max_priority_fee", &self.max_priority_fee)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}
