//! `chaind stake`: builds a staking operation (join, change stake, leave), signs it with the
//! validator's key and submits it to a node over JSON-RPC (`chaind_sendStakingOp`). The chain
//! id, the validator's next staking nonce and the current epoch come from the node.

use crate::node::consensus::RANDAO_CHAIN_EPOCHS;
use alloy_primitives::B256;
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use chain_consensus::{SignedStakingOp, StakingOp, StakingOpKind, ValidatorKey};
use serde_json::{Value, json};
use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

/// What to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StakeAction {
    /// Become a validator with this stake (consensus units: 1 unit = 1 gwei of deposit).
    Join {
        /// The stake.
        stake: u64,
    },
    /// Change the stake.
    SetStake {
        /// The new stake.
        stake: u64,
    },
    /// Leave the validator set.
    Leave,
}

/// A submitted operation.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The hash the node answered.
    pub hash: B256,
    /// The operation.
    pub op: SignedStakingOp,
}

/// Builds, signs and submits `action` for `signer` to the node at `rpc_url`; `nonce` overrides
/// the validator's next staking nonce as the node reports it.
pub fn submit(
    action: StakeAction,
    signer: &PrivateKeySigner,
    rpc_url: &str,
    nonce: Option<u64>,
) -> anyhow::Result<Submitted> {
    let client = RpcClient::new(rpc_url)?;
    let chain_id = parse_quantity(&client.call("eth_chainId", &json!([]))?)
        .context("eth_chainId answered no quantity")?;
    let validator = signer.address();
    let nonce = match nonce {
        Some(nonce) => nonce,
        None => {
            let account = client.call("chaind_stakingAccount", &json!([validator, "latest"]))?;
            parse_quantity(&account["nonce"]).with_context(|| {
                format!("the node keeps no staking ledger (chaind_stakingAccount: {account})")
            })?
        }
    };
    let key = ValidatorKey::from_secret_bytes(signer.to_bytes().0, RANDAO_CHAIN_EPOCHS)
        .context("the key is not a usable validator key")?;
    let kind = match action {
        StakeAction::Join { stake } => {
            // Register the hash chain from the current epoch on: reveals for later epochs are
            // then cheap to check. Without a consensus view, from its start.
            let validators = client.call("chaind_validators", &json!([]))?;
            let epoch = parse_quantity(&validators["epoch"]).unwrap_or(0);
            let randao_anchor = key.randao_anchor(epoch).with_context(|| {
                format!("the validator's RANDAO chain does not reach epoch {epoch}")
            })?;
            StakingOpKind::Join {
                stake,
                randao_anchor,
            }
        }
        StakeAction::SetStake { stake } => StakingOpKind::SetStake { stake },
        StakeAction::Leave => StakingOpKind::Leave,
    };
    let op = SignedStakingOp::sign(
        StakingOp {
            chain_id,
            validator,
            nonce,
            kind,
        },
        &key,
    );
    let raw = format!("0x{}", hex::encode(alloy_rlp::encode(op)));
    let answer = client.call("chaind_sendStakingOp", &json!([raw]))?;
    let hash = answer
        .as_str()
        .and_then(|text| text.parse::<B256>().ok())
        .with_context(|| format!("chaind_sendStakingOp answered {answer}, not a hash"))?;
    Ok(Submitted { hash, op })
}

fn parse_quantity(value: &Value) -> Option<u64> {
    let text = value.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(text, 16).ok()
}

/// A minimal JSON-RPC client over plain HTTP/1.1 (one request per connection): all the CLI
/// needs, without an HTTP client library.
struct RpcClient {
    host: String,
    port: u16,
    path: String,
}

impl RpcClient {
    fn new(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("--rpc {url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], rest[index..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host.to_string(),
                port.parse()
                    .with_context(|| format!("--rpc {url}: bad port {port:?}"))?,
            ),
            None => (authority.to_string(), 80),
        };
        anyhow::ensure!(!host.is_empty(), "--rpc {url}: no host");
        Ok(Self { host, port, path })
    }

    /// Calls `method`; a JSON-RPC error becomes an error with its code and message.
    fn call(&self, method: &str, params: &Value) -> anyhow::Result<Value> {
        let body =
            json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.host))?
            .next()
            .with_context(|| format!("{} has no address", self.host))?;
        let timeout = Duration::from_secs(30);
        let mut stream = TcpStream::connect_timeout(&address, timeout)
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .with_context(|| format!("reading the answer to {method}"))?;
        let split = response
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .context("malformed HTTP response")?;
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        let mut body = response[split + 4..].to_vec();
        anyhow::ensure!(
            head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200"),
            "{method}: HTTP {}",
            head.lines().next().unwrap_or_default()
        );
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body).context("malformed chunked HTTP body")?;
        }
        let answer: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{method}: the answer is not JSON"))?;
        if let Some(error) = answer.get("error") {
            anyhow::bail!(
                "{method} failed: {} (code {})",
                error["message"].as_str().unwrap_or("no message"),
                error["code"]
            );
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Reads a hex secp256k1 private key from a file (as `--validator.key` does).
pub fn read_key_file(path: &std::path::Path) -> anyhow::Result<PrivateKeySigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    text.trim().parse::<PrivateKeySigner>().map_err(|e| {
        anyhow::anyhow!(
            "key file {}: not a hex secp256k1 private key ({e})",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_chunked_bodies_parse() {
        let client = RpcClient::new("http://127.0.0.1:8545").unwrap();
        assert_eq!(
            (client.host.as_str(), client.port, client.path.as_str()),
            ("127.0.0.1", 8545, "/")
        );
        let client = RpcClient::new("http://node.example/rpc").unwrap();
        assert_eq!((client.port, client.path.as_str()), (80, "/rpc"));
        assert!(RpcClient::new("https://node.example").is_err());
        assert!(RpcClient::new("http://:12").is_err());
        assert!(RpcClient::new("http://host:notaport").is_err());
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert!(dechunk(b"ff\r\nshort\r\n").is_none());
        assert_eq!(parse_quantity(&json!("0x7a69")), Some(31337));
        assert_eq!(parse_quantity(&json!(12)), None);
    }
}
