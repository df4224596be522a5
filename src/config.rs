//! The node's configuration file (TOML) and the defaults of `chaind dev`.

use chain_state::{MAX_RESIDENT_TRIE_DEPTH, MAX_SMALL_STORAGE_SLOTS, MAX_TOP_WRITE_INTERVAL};
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

/// `[state]`: retention, caches and durability of the state database. Unset keys take
/// [`chain_state::StateConfig::default`]'s values.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Past block states kept readable and revertible.
    pub history_blocks: Option<u64>,
    /// RocksDB's block cache, in MiB.
    pub block_cache_mb: Option<usize>,
    /// Entries of the in-memory account cache.
    pub account_cache_entries: Option<usize>,
    /// Entries of the in-memory storage-slot cache.
    pub storage_cache_entries: Option<usize>,
    /// Entries of the in-memory contract-code cache.
    pub code_cache_entries: Option<usize>,
    /// Levels of the account trie kept decoded in memory between commits.
    pub resident_trie_depth: Option<usize>,
    /// Those levels' nodes are written to disk every this many commits.
    pub top_write_interval: Option<u64>,
    /// Storage of at most this many slots keeps no trie nodes (used when the database is
    /// created; an existing database keeps its own value).
    pub small_storage_max_slots: Option<u32>,
    /// Each column family's memtable, in MiB.
    pub write_buffer_mb: Option<usize>,
    /// fsync the write-ahead log on every commit (survives power loss, not only crashes).
    pub sync_writes: Option<bool>,
    /// RocksDB background threads (flushes and compactions).
    pub background_jobs: Option<i32>,
}

impl StateSection {
    /// `base` with this section's values applied; an out-of-range value is an error naming
    /// its key.
    pub fn apply(
        &self,
        mut base: chain_state::StateConfig,
    ) -> anyhow::Result<chain_state::StateConfig> {
        fn check<T: PartialOrd + std::fmt::Display + Copy>(
            key: &str,
            value: T,
            min: T,
            max: T,
        ) -> anyhow::Result<T> {
            if value < min || value > max {
                anyhow::bail!("state.{key} = {value}: must be between {min} and {max}");
            }
            Ok(value)
        }
        const MIB: usize = 1 << 20;
        if let Some(history) = self.history_blocks {
            base.history_blocks = history;
        }
        if let Some(mb) = self.block_cache_mb {
            base.block_cache_bytes = check("block_cache_mb", mb, 1, 1 << 20)? * MIB;
        }
        if let Some(entries) = self.account_cache_entries {
            base.account_cache_entries = check("account_cache_entries", entries, 1, 1 << 30)?;
        }
        if let Some(entries) = self.storage_cache_entries {
            base.storage_cache_entries = check("storage_cache_entries", entries, 1, 1 << 30)?;
        }
        if let Some(entries) = self.code_cache_entries {
            base.code_cache_entries = check("code_cache_entries", entries, 1, 1 << 24)?;
        }
        if let Some(depth) = self.resident_trie_depth {
            base.resident_trie_depth =
                check("resident_trie_depth", depth, 0, MAX_RESIDENT_TRIE_DEPTH)?;
        }
        if let Some(interval) = self.top_write_interval {
            base.top_write_interval =
                check("top_write_interval", interval, 1, MAX_TOP_WRITE_INTERVAL)?;
        }
        if let Some(slots) = self.small_storage_max_slots {
            base.small_storage_max_slots =
                check("small_storage_max_slots", slots, 0, MAX_SMALL_STORAGE_SLOTS)?;
        }
        if let Some(mb) = self.write_buffer_mb {
            base.write_buffer_bytes = check("write_buffer_mb", mb, 1, 4096)? * MIB;
        }
        if let Some(sync) = self.sync_writes {
            base.sync_writes = sync;
        }
        if let Some(jobs) = self.background_jobs {
            base.background_jobs = check("background_jobs", jobs, 1, 64)?;
        }
        Ok(base)
    }
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
    fn example_config_parses_and_shows_the_state_defaults() {
        let example = FileConfig::parse(include_str!("../chaind.example.toml")).unwrap();
        let defaults = chain_state::StateConfig::default();
        assert_eq!(example.state.apply(defaults.clone()).unwrap(), defaults);
        // Every state key is written out, so that the file shows each default.
        let debug = format!("{:?}", example.state);
        assert!(!debug.contains("None"), "a [state] key is missing: {debug}");
        assert_eq!(example.rpc.port, 8545);
        assert!(!example.execution.sequential);
    }

    #[test]
    fn state_section_overrides_and_rejects_out_of_range_values() {
        let config = FileConfig::parse(
            "[state]\nblock_cache_mb = 64\nsync_writes = true\nsmall_storage_max_slots = 0\n\
             resident_trie_depth = 3\nwrite_buffer_mb = 8\nbackground_jobs = 4\n",
        )
        .unwrap();
        let state = config
            .state
            .apply(chain_state::StateConfig::default())
            .unwrap();
        assert_eq!(state.block_cache_bytes, 64 << 20);
        assert!(state.sync_writes);
        assert_eq!(state.small_storage_max_slots, 0);
        assert_eq!(state.resident_trie_depth, 3);
        assert_eq!(state.write_buffer_bytes, 8 << 20);
        assert_eq!(state.background_jobs, 4);
        assert_eq!(state.history_blocks, 128, "unset keys keep the default");
        for (text, key) in [
            ("small_storage_max_slots = 257", "small_storage_max_slots"),
            ("resident_trie_depth = 8", "resident_trie_depth"),
            ("block_cache_mb = 0", "block_cache_mb"),
            ("background_jobs = 0", "background_jobs"),
            ("top_write_interval = 0", "top_write_interval"),
            ("account_cache_entries = 0", "account_cache_entries"),
        ] {
            let config = FileConfig::parse(&format!("[state]\n{text}\n")).unwrap();
            let err = config
                .state
                .apply(chain_state::StateConfig::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("state.{key}")), "{text}: {err}");
        }
        let err = FileConfig::parse("[state]\nsync_writes = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("state.sync_writes"), "{err}");
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
