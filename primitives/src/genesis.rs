use crate::{Account, AccountUpdate, PrimitivesError, StateDiff};
use alloy_primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, path::Path};

/// One validator of the genesis set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// The validator's signing address (secp256k1 key's Ethereum address).
    pub address: Address,
    /// Its stake, in wei.
    pub stake: U256,
}

/// The consensus section of a chaind genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsensusGenesis {
    /// Slot length: milliseconds as a number, or a string with a unit ("500ms", "2s").
    pub block_time: BlockTime,
    /// Validators at genesis.
    pub validators: Vec<GenesisValidator>,
    /// Slots per epoch (validator-set changes take effect at epoch boundaries).
    #[serde(default = "default_epoch_length")]
    pub epoch_length: u64,
}

fn default_epoch_length() -> u64 {
    32
}

/// A block time given in milliseconds (`1000`) or with a unit (`"1s"`, `"250ms"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct BlockTime(pub u64);

impl From<BlockTime> for u64 {
    fn from(value: BlockTime) -> Self {
        value.0
    }
}

impl<'de> Deserialize<'de> for BlockTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Millis(ms) => Ok(BlockTime(ms)),
            Raw::Text(text) => parse_duration_ms(&text)
                .map(BlockTime)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses "250ms", "2s", "1.5s" or a bare number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. \"1s\" or \"250ms\""))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok((value * scale).round() as u64)
}

/// A chaind genesis file: geth's genesis format plus a `consensus` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainGenesis {
    /// The geth-format part: config.chainId, gasLimit, baseFeePerGas, timestamp, extraData,
    /// alloc.
    #[serde(flatten)]
    pub eth: alloy_genesis::Genesis,
    /// Validators, block time, epoch length.
    pub consensus: ConsensusGenesis,
}

/// Smallest block time accepted.
pub const MIN_BLOCK_TIME_MS: u64 = 100;
/// Base fee of the genesis block when the file gives none (1 gwei).
pub const DEFAULT_BASE_FEE: u64 = 1_000_000_000;

impl ChainGenesis {
    /// Reads and validates a genesis file. Errors name the offending field.
    pub fn load(path: &Path) -> Result<Self, PrimitivesError> {
        let text = std::fs::read_to_string(path).map_err(|e| PrimitivesError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Parses and validates genesis JSON.
    pub fn parse(text: &str) -> Result<Self, PrimitivesError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let genesis: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            PrimitivesError::Genesis {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            }
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    fn validate(&self) -> Result<(), PrimitivesError> {
        let fail = |field: &str, message: &str| {
            Err(PrimitivesError::Genesis {
                field: field.to_owned(),
                message: message.to_owned(),
            })
        };
        if self.eth.config.chain_id == 0 {
            return fail("config.chainId", "must be set and non-zero");
        }
        if self.eth.gas_limit == 0 {
            return fail("gasLimit", "must be positive");
        }
        if self.consensus.block_time.0 < MIN_BLOCK_TIME_MS {
            return fail("consensus.blockTime", "must be at least 100 ms");
        }
        if self.consensus.validators.is_empty() {
            return fail("consensus.validators", "needs at least one validator");
        }
        if self.consensus.epoch_length == 0 {
            return fail("consensus.epochLength", "must be positive");
        }
        for (i, validator) in self.consensus.validators.iter().enumerate() {
            if validator.stake.is_zero() {
                return fail(
                    &format!("consensus.validators[{i}].stake"),
                    "must be positive",
                );
            }
        }
        if let Some(fee) = self.eth.base_fee_per_gas
            && u64::try_from(fee).is_err()
        {
            return fail("baseFeePerGas", "must fit in 64 bits");
        }
        Ok(())
    }

    /// Chain id.
    pub fn chain_id(&self) -> u64 {
        self.eth.config.chain_id
    }

    /// Base fee of the genesis block.
    pub fn base_fee(&self) -> u64 {
        self.eth
            .base_fee_per_gas
            .map_or(DEFAULT_BASE_FEE, |fee| fee as u64)
    }

    /// The genesis allocation as a state diff onto an empty state.
    pub fn alloc_diff(&self) -> StateDiff {
        let mut diff = StateDiff::default();
        for (address, account) in &self.eth.alloc {
            let mut info = Account {
                nonce: account.nonce.unwrap_or_default(),
                balance: account.balance,
                ..Account::default()
            };
            if let Some(code) = account.code.as_ref().filter(|c| !c.is_empty()) {
                info.code_hash = keccak256(code);
                diff.codes.insert(info.code_hash, code.clone());
            }
            let storage: BTreeMap<U256, U256> = account
                .storage
                .iter()
                .flatten()
                .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)))
                .filter(|(_, value)| !value.is_zero())
                .collect();
            diff.accounts.insert(
                *address,
                AccountUpdate {
                    info: Some(info),
                    storage_cleared: true,
                    storage,
                },
            );
        }
        diff
    }

    /// A hash identifying the genesis configuration (for peers to check they share a chain).
    pub fn config_hash(&self) -> B256 {
        keccak256(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "config": { "chainId": 4242 },
        "gasLimit": "0x1c9c380",
        "baseFeePerGas": "0x3b9aca00",
        "timestamp": "0x0",
        "extraData": "0x",
        "difficulty": "0x0",
        "alloc": {
            "0x1000000000000000000000000000000000000001": { "balance": "0x10", "nonce": "0x1",
              "code": "0x6000", "storage": { "0x01": "0x02" } }
        },
        "consensus": { "blockTime": "500ms", "epochLength": 8,
          "validators": [ { "address": "0x2000000000000000000000000000000000000002", "stake": "0x64" } ] }
    }"#;

    #[test]
    fn parses_geth_format_with_consensus_section() {
        let genesis = ChainGenesis::parse(GOOD).unwrap();
        assert_eq!(genesis.chain_id(), 4242);
        assert_eq!(genesis.consensus.block_time, BlockTime(500));
        assert_eq!(genesis.base_fee(), 1_000_000_000);
        let diff = genesis.alloc_diff();
        let holder: Address = "0x1000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        let account = &diff.accounts[&holder];
        assert_eq!(account.info.unwrap().nonce, 1);
        assert_eq!(account.storage[&U256::from(1)], U256::from(2));
        assert_eq!(diff.codes.len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = GOOD.replace(r#""stake": "0x64""#, r#""stake": "lots""#);
        let err = ChainGenesis::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("consensus.validators[0].stake"), "{err}");
        let bad = GOOD.replace(r#""blockTime": "500ms""#, r#""blockTime": "50ms""#);
        let err = ChainGenesis::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("consensus.blockTime"), "{err}");
        let bad = GOOD.replace(r#""chainId": 4242"#, r#""chainId": 0"#);
        assert!(
            ChainGenesis::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("config.chainId")
        );
        let bad = GOOD.replace(
            r#""epochLength": 8,"#,
            r#""epochLength": 8, "colour": "red","#,
        );
        assert!(
            ChainGenesis::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("consensus")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1s"), Ok(1000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("300"), Ok(300));
        assert!(parse_duration_ms("soon").is_err());
    }
}
