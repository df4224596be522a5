//! The node's configuration file (TOML) and the defaults of `chaind dev`.

use serde::Deserialize;
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

/// `chaind node --config FILE`: every section optional, unknown keys rejected by name.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory (database).
    pub datadir: Option<PathBuf>,
    /// Genesis file, needed when the data directory is empty (else `chaind init` first).
    pub genesis: Option<PathBuf>,
    /// JSON-RPC server.
    #[serde(default)]
    pub rpc: RpcSection,
    /// Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Validator identity.
    #[serde(default)]
    pub validator: ValidatorSection,
    /// Block execution.
    #[serde(default)]
    pub execution: ExecutionSection,
    /// Transaction pool.
    #[serde(default)]
    pub txpool: TxPoolSection,
    /// State retention.
    #[serde(default)]
    pub state: StateSection,
    /// Peer-to-peer networking.
    #[serde(default)]
    pub network: NetworkSection,
}

/// `[rpc]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcSection {
    /// Listen address (HTTP and WebSocket on one port).
    #[serde(default = "default_rpc_addr")]
    pub addr: IpAddr,
    /// Listen port.
    #[serde(default = "default_rpc_port")]
    pub port: u16,
    /// Allowed CORS origins ("*" for any).
    #[serde(default)]
    pub cors: Vec<String>,
    /// Host header values accepted (geth's vhosts; "*" for any). Default: localhost only.
    #[serde(default)]
    pub vhosts: Vec<String>,
    /// Maximum simultaneous connections.
    pub max_connections: Option<u32>,
    /// Maximum requests in one batch.
    pub max_batch: Option<u32>,
    /// Maximum request body in bytes.
    pub max_request_bytes: Option<u32>,
    /// Maximum response body in bytes.
    pub max_response_bytes: Option<u32>,
    /// Gas cap of eth_call and eth_estimateGas.
    pub gas_cap: Option<u64>,
    /// eth_call timeout in milliseconds.
    pub call_timeout_ms: Option<u64>,
    /// eth_getLogs maximum block range.
    pub max_logs_range: Option<u64>,
    /// eth_getLogs maximum results.
    pub max_logs: Option<usize>,
    /// Subscriptions per connection.
    pub max_subscriptions_per_connection: Option<u32>,
}

impl Default for RpcSection {
    fn default() -> Self {
        Self {
            addr: default_rpc_addr(),
            port: default_rpc_port(),
            cors: Vec::new(),
            vhosts: Vec::new(),
            max_connections: None,
            max_batch: None,
            max_request_bytes: None,
            max_response_bytes: None,
            gas_cap: None,
            call_timeout_ms: None,
            max_logs_range: None,
            max_logs: None,
            max_subscriptions_per_connection: None,
        }
    }
}

fn default_rpc_addr() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn default_rpc_port() -> u16 {
    8545
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Separate Prometheus listener (`ip:port`); `/metrics` on the RPC port is always served.
    pub addr: Option<std::net::SocketAddr>,
}

/// `[validator]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    /// File holding the validator's secp256k1 private key as hex.
    pub key_file: Option<PathBuf>,
}

/// `[execution]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSection {
    /// Block-STM worker threads (default: the machine's cores).
    pub threads: Option<usize>,
    /// Execute blocks sequentially (the reference executor).
    #[serde(default)]
    pub sequential: bool,
}

/// `[txpool]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxPoolSection {
    /// "default" (geth-like limits) or "load-test" (much higher limits).
    pub profile: Option<String>,
    /// Executable transactions per sender.
    pub max_per_sender: Option<usize>,
    /// Transactions in total.
    pub max_total: Option<usize>,
}

/// `[state]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Past block states kept readable and revertible.
    pub history_blocks: Option<u64>,
}

/// `[network]`: accepted so that configs stay forward compatible; this build has no
/// peer-to-peer networking yet and warns if peers are configured.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Listen multiaddress.
    pub listen: Option<String>,
    /// Bootstrap peers.
    #[serde(default)]
    pub peers: Vec<String>,
}

impl FileConfig {
    /// Reads a TOML config file; errors name the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    /// Parses TOML.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| anyhow::anyhow!("field `{}`: {}", e.path(), e.inner()))
    }
}

/// The data directory when none is given: the platform's data directory if there is one
/// (`$XDG_DATA_HOME/chaind` or `~/.local/share/chaind`), else `./data`.
pub fn default_datadir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("chaind");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/chaind");
    }
    PathBuf::from("./data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_config() {
        let config = FileConfig::parse(
            r#"
            datadir = "/tmp/x"
            [rpc]
            addr = "0.0.0.0"
            port = 9545
            cors = ["*"]
            [execution]
            threads = 4
            [txpool]
            profile = "load-test"
            [state]
            history_blocks = 64
            "#,
        )
        .unwrap();
        assert_eq!(config.rpc.port, 9545);
        assert_eq!(config.execution.threads, Some(4));
        assert_eq!(config.state.history_blocks, Some(64));
    }

    #[test]
    fn errors_name_the_key() {
        let err = FileConfig::parse("[rpc]\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rpc") && err.contains("prot"), "{err}");
        let err = FileConfig::parse("[rpc]\nport = \"high\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rpc.port"), "{err}");
    }
}
