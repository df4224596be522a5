//! Request parameters as geth decodes them: strict hex (a `0x` prefix, no leading zeros in
//! quantities, even-length data), positional arguments with trailing optionals, and geth's
//! error messages ("invalid argument 0: hex string without 0x prefix").
//!
//! alloy's request types are lenient (they accept decimal strings and numbers where geth does
//! not), so parameters are decoded here; responses use alloy's types, which serialize as geth.

use crate::error::{CallError, CallResult};
use alloy_primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

/// geth's hexutil error messages.
pub(crate) mod hexerr {
    pub(crate) const EMPTY_STRING: &str = "empty hex string";
    pub(crate) const SYNTAX: &str = "invalid hex string";
    pub(crate) const MISSING_PREFIX: &str = "hex string without 0x prefix";
    pub(crate) const ODD_LENGTH: &str = "hex string of odd length";
    pub(crate) const EMPTY_NUMBER: &str = "hex string \"0x\"";
    pub(crate) const LEADING_ZERO: &str = "hex number with leading zero digits";
    pub(crate) const UINT64_RANGE: &str = "hex number > 64 bits";
    pub(crate) const BIG256_RANGE: &str = "hex number > 256 bits";
}

fn strip_prefix(s: &str) -> Result<&str, &'static str> {
    if s.is_empty() {
        return Err(hexerr::EMPTY_STRING);
    }
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or(hexerr::MISSING_PREFIX)
}

/// The digits of a hex quantity after geth's checks (prefix, non-empty, no leading zero).
fn quantity_digits(s: &str) -> Result<&str, &'static str> {
    let digits = strip_prefix(s)?;
    if digits.is_empty() {
        return Err(hexerr::EMPTY_NUMBER);
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(hexerr::LEADING_ZERO);
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(hexerr::SYNTAX);
    }
    Ok(digits)
}

/// Parses a hex quantity that must fit 64 bits.
pub(crate) fn parse_u64(s: &str) -> Result<u64, &'static str> {
    let digits = quantity_digits(s)?;
    if digits.len() > 16 {
        return Err(hexerr::UINT64_RANGE);
    }
    u64::from_str_radix(digits, 16).map_err(|_| hexerr::SYNTAX)
}

/// Parses a hex quantity that must fit 256 bits.
pub(crate) fn parse_u256(s: &str) -> Result<U256, &'static str> {
    let digits = quantity_digits(s)?;
    if digits.len() > 64 {
        return Err(hexerr::BIG256_RANGE);
    }
    U256::from_str_radix(digits, 16).map_err(|_| hexerr::SYNTAX)
}

/// Parses `0x`-prefixed, even-length hex data.
pub(crate) fn parse_bytes(s: &str) -> Result<Bytes, &'static str> {
    let digits = strip_prefix(s)?;
    if digits.len() % 2 == 1 {
        return Err(hexerr::ODD_LENGTH);
    }
    hex::decode(digits)
        .map(Bytes::from)
        .map_err(|_| hexerr::SYNTAX)
}

/// Parses fixed-size hex (addresses, hashes) with geth's length message.
fn parse_fixed<const N: usize>(s: &str, type_name: &str) -> Result<[u8; N], String> {
    let digits = strip_prefix(s).map_err(str::to_owned)?;
    if digits.len() != N * 2 {
        return Err(format!(
            "hex string has length {}, want {} for {type_name}",
            digits.len(),
            N * 2
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| hexerr::SYNTAX.to_owned())?;
    Ok(out)
}

fn expect_str<'a>(value: &'a Value, go_type: &str) -> Result<&'a str, String> {
    value.as_str().ok_or_else(|| {
        format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            json_kind(value)
        )
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

macro_rules! strict_wrapper {
    ($(#[$doc:meta])* $name:ident($inner:ty), |$v:ident| $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) struct $name(pub(crate) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let $v = Value::deserialize(deserializer)?;
                let parsed: Result<$inner, String> = $parse;
                parsed.map($name).map_err(D::Error::custom)
            }
        }
    };
}

strict_wrapper!(
    /// A 64-bit hex quantity (geth's `hexutil.Uint64`).
    Quantity(u64),
    |v| expect_str(&v, "hexutil.Uint64").and_then(|s| parse_u64(s).map_err(str::to_owned))
);
strict_wrapper!(
    /// A 256-bit hex quantity (geth's `hexutil.Big`).
    BigQuantity(U256),
    |v| expect_str(&v, "hexutil.Big").and_then(|s| parse_u256(s).map_err(str::to_owned))
);
strict_wrapper!(
    /// A 20-byte address (geth's `common.Address`).
    Addr(Address),
    |v| expect_str(&v, "common.Address")
        .and_then(|s| parse_fixed::<20>(s, "common.Address").map(Address::from))
);
strict_wrapper!(
    /// A 32-byte hash (geth's `common.Hash`).
    Hash(B256),
    |v| expect_str(&v, "common.Hash").and_then(|s| parse_fixed::<32>(s, "common.Hash").map(B256::from))
);

/// A count geth accepts as a JSON number, a decimal string or a hex string
/// (`math.HexOrDecimal64`, e.g. `eth_feeHistory`'s block count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HexOrDecimal(pub(crate) u64);

impl<'de> Deserialize<'de> for HexOrDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let parsed = match &v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("invalid unsigned 64-bit integer {n}")),
            Value::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(digits) => u64::from_str_radix(digits, 16)
                    .map_err(|_| format!("invalid hex or decimal integer {s:?}")),
                None => s
                    .parse::<u64>()
                    .map_err(|_| format!("invalid hex or decimal integer {s:?}")),
            },
            other => Err(format!(
                "json: cannot unmarshal {} into Go value of type math.HexOrDecimal64",
                json_kind(other)
            )),
        };
        parsed.map(HexOrDecimal).map_err(D::Error::custom)
    }
}

/// Hex data (geth's `hexutil.Bytes`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Data(pub(crate) Bytes);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let s = expect_str(&v, "hexutil.Bytes").map_err(D::Error::custom)?;
        parse_bytes(s).map(Data).map_err(D::Error::custom)
    }
}

/// A storage slot key as geth decodes it for `eth_getStorageAt`: hex up to 32 bytes, leading
/// zeros and odd lengths allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotKey(pub(crate) U256);

impl<'de> Deserialize<'de> for SlotKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let s = expect_str(&v, "string").map_err(D::Error::custom)?;
        let digits = strip_prefix(s).map_err(D::Error::custom)?;
        if digits.len() > 64 {
            return Err(D::Error::custom(
                "hex string too long, want at most 32 bytes",
            ));
        }
        if digits.is_empty() {
            return Ok(SlotKey(U256::ZERO));
        }
        U256::from_str_radix(digits, 16)
            .map(SlotKey)
            .map_err(|_| D::Error::custom(hexerr::SYNTAX))
    }
}

/// A block tag or number (geth's `rpc.BlockNumber`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockTag {
    /// The canonical head.
    Latest,
    /// The block being built: the head for reads, the next block's environment for calls.
    Pending,
    /// The latest safe block.
    Safe,
    /// The latest finalized block.
    Finalized,
    /// Genesis.
    Earliest,
    /// A block number.
    Number(u64),
}

impl BlockTag {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "latest" => BlockTag::Latest,
            "pending" => BlockTag::Pending,
            "safe" => BlockTag::Safe,
            "finalized" => BlockTag::Finalized,
            "earliest" => BlockTag::Earliest,
            _ => {
                let n = parse_u64(s).map_err(str::to_owned)?;
                if n > i64::MAX as u64 {
                    return Err("block number larger than int64".to_owned());
                }
                BlockTag::Number(n)
            }
        })
    }
}

impl<'de> Deserialize<'de> for BlockTag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        let s = expect_str(&v, "rpc.BlockNumber").map_err(D::Error::custom)?;
        BlockTag::parse(s.trim()).map_err(D::Error::custom)
    }
}

/// A block by tag, number or hash, including EIP-1898 objects (geth's
/// `rpc.BlockNumberOrHash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockId {
    /// By tag or number.
    Tag(BlockTag),
    /// By hash; `require_canonical` is accepted (every block this node serves is canonical).
    Hash {
        /// The block hash.
        hash: B256,
        /// EIP-1898's `requireCanonical`.
        require_canonical: bool,
    },
}

impl Default for BlockId {
    fn default() -> Self {
        BlockId::Tag(BlockTag::Latest)
    }
}

impl<'de> Deserialize<'de> for BlockId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        match &v {
            Value::String(s) => {
                let s = s.trim();
                if s.len() == 66 {
                    let hash = parse_fixed::<32>(s, "common.Hash").map_err(D::Error::custom)?;
                    return Ok(BlockId::Hash {
                        hash: B256::from(hash),
                        require_canonical: false,
                    });
                }
                BlockTag::parse(s)
                    .map(BlockId::Tag)
                    .map_err(D::Error::custom)
            }
            Value::Object(map) => {
                let number = map.get("blockNumber").filter(|v| !v.is_null());
                let hash = map.get("blockHash").filter(|v| !v.is_null());
                match (number, hash) {
                    (Some(_), Some(_)) => Err(D::Error::custom(
                        "cannot specify both BlockHash and BlockNumber, choose one or the other",
                    )),
                    (Some(n), None) => {
                        let s = expect_str(n, "rpc.BlockNumber").map_err(D::Error::custom)?;
                        BlockTag::parse(s)
                            .map(BlockId::Tag)
                            .map_err(D::Error::custom)
                    }
                    (None, Some(h)) => {
                        let s = expect_str(h, "common.Hash").map_err(D::Error::custom)?;
                        let hash = parse_fixed::<32>(s, "common.Hash").map_err(D::Error::custom)?;
                        let require_canonical = match map.get("requireCanonical") {
                            None | Some(Value::Null) => false,
                            Some(Value::Bool(b)) => *b,
                            Some(_) => {
                                return Err(D::Error::custom("requireCanonical must be a boolean"));
                            }
                        };
                        Ok(BlockId::Hash {
                            hash: B256::from(hash),
                            require_canonical,
                        })
                    }
                    (None, None) => Err(D::Error::custom("invalid block number or hash")),
                }
            }
            other => Err(D::Error::custom(format!(
                "json: cannot unmarshal {} into Go value of type rpc.BlockNumberOrHash",
                json_kind(other)
            ))),
        }
    }
}

/// One entry of an access list.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessListEntry {
    pub(crate) address: Addr,
    #[serde(default)]
    pub(crate) storage_keys: Vec<Hash>,
}

/// The transaction object of `eth_call` and `eth_estimateGas` (geth's `TransactionArgs`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallRequest {
    pub(crate) from: Option<Addr>,
    pub(crate) to: Option<Addr>,
    pub(crate) gas: Option<Quantity>,
    pub(crate) gas_price: Option<BigQuantity>,
    pub(crate) max_fee_per_gas: Option<BigQuantity>,
    pub(crate) max_priority_fee_per_gas: Option<BigQuantity>,
    pub(crate) value: Option<BigQuantity>,
    pub(crate) nonce: Option<Quantity>,
    pub(crate) data: Option<Data>,
    pub(crate) input: Option<Data>,
    pub(crate) access_list: Option<Vec<AccessListEntry>>,
    pub(crate) chain_id: Option<BigQuantity>,
}

impl CallRequest {
    /// The call data: `input`, or `data`; geth refuses both when they differ.
    pub(crate) fn call_data(&self) -> CallResult<Bytes> {
        match (&self.input, &self.data) {
            (Some(input), Some(data)) if input != data => Err(CallError::invalid_params(
                "both \"data\" and \"input\" are set and not equal. Please use \"input\" to pass transaction call data",
            )),
            (Some(input), _) => Ok(input.0.clone()),
            (None, Some(data)) => Ok(data.0.clone()),
            (None, None) => Ok(Bytes::new()),
        }
    }

    /// geth's checks on the fee fields.
    pub(crate) fn check_fees(&self) -> CallResult<()> {
        if self.gas_price.is_some()
            && (self.max_fee_per_gas.is_some() || self.max_priority_fee_per_gas.is_some())
        {
            return Err(CallError::invalid_params(
                "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified",
            ));
        }
        if let (Some(max), Some(tip)) = (self.max_fee_per_gas, self.max_priority_fee_per_gas)
            && tip.0 > max.0
        {
            return Err(CallError::invalid_params(format!(
                "maxFeePerGas ({}) < maxPriorityFeePerGas ({})",
                max.0, tip.0
            )));
        }
        Ok(())
    }
}

/// One account of `eth_call`'s state override set.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountOverrideArg {
    pub(crate) nonce: Option<Quantity>,
    pub(crate) code: Option<Data>,
    pub(crate) balance: Option<BigQuantity>,
    pub(crate) state: Option<std::collections::BTreeMap<HashKey, Hash>>,
    pub(crate) state_diff: Option<std::collections::BTreeMap<HashKey, Hash>>,
}

/// A hash used as a JSON object key (storage slots in overrides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HashKey(pub(crate) B256);

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_fixed::<32>(&s, "common.Hash")
            .map(|h| HashKey(B256::from(h)))
            .map_err(D::Error::custom)
    }
}

/// An address used as a JSON object key (state overrides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AddrKey(pub(crate) Address);

impl<'de> Deserialize<'de> for AddrKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_fixed::<20>(&s, "common.Address")
            .map(|a| AddrKey(Address::from(a)))
            .map_err(D::Error::custom)
    }
}

/// `eth_call`'s third parameter.
pub(crate) type StateOverrideArg = std::collections::BTreeMap<AddrKey, AccountOverrideArg>;

/// One position of a log filter's topics: any topic (empty), or one of these.
pub(crate) type TopicSet = Vec<B256>;

/// A log filter (geth's `FilterCriteria`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FilterCriteria {
    pub(crate) block_hash: Option<B256>,
    pub(crate) from_block: Option<BlockTag>,
    pub(crate) to_block: Option<BlockTag>,
    /// Matching addresses; empty matches every address.
    pub(crate) addresses: Vec<Address>,
    /// Topic positions; an empty set at a position matches any topic there.
    pub(crate) topics: Vec<TopicSet>,
}

impl<'de> Deserialize<'de> for FilterCriteria {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        parse_filter(&v).map_err(D::Error::custom)
    }
}

fn field<'a>(map: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

fn parse_filter(v: &Value) -> Result<FilterCriteria, String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type filters.FilterCriteria",
            json_kind(v)
        ));
    };
    let tag = |name: &str| -> Result<Option<BlockTag>, String> {
        field(map, name)
            .map(|v| expect_str(v, "rpc.BlockNumber").and_then(|s| BlockTag::parse(s.trim())))
            .transpose()
    };
    let mut criteria = FilterCriteria {
        from_block: tag("fromBlock")?,
        to_block: tag("toBlock")?,
        ..Default::default()
    };
    if let Some(h) = field(map, "blockHash") {
        if criteria.from_block.is_some() || criteria.to_block.is_some() {
            return Err(
                "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
                    .into(),
            );
        }
        let s = expect_str(h, "common.Hash")?;
        criteria.block_hash = Some(B256::from(parse_fixed::<32>(s, "common.Hash")?));
    }
    match field(map, "address") {
        None => {}
        Some(Value::String(s)) => {
            criteria
                .addresses
                .push(Address::from(parse_fixed::<20>(s, "common.Address")?));
        }
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or_else(|| format!("non-string address at index {i}"))?;
                criteria.addresses.push(Address::from(
                    parse_fixed::<20>(s, "common.Address")
                        .map_err(|e| format!("invalid address at index {i}: {e}"))?,
                ));
            }
        }
        Some(_) => return Err("invalid addresses in query".into()),
    }
    match field(map, "topics") {
        None => {}
        Some(Value::Array(positions)) => {
            for position in positions {
                criteria.topics.push(parse_topic_position(position)?);
            }
        }
        Some(_) => return Err("invalid topic(s)".into()),
    }
    Ok(criteria)
}

fn parse_topic_position(position: &Value) -> Result<TopicSet, String> {
    let topic = |s: &str| parse_fixed::<32>(s, "common.Hash").map(B256::from);
    match position {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![topic(s)?]),
        Value::Array(alternatives) => {
            let mut set = Vec::with_capacity(alternatives.len());
            for alternative in alternatives {
                match alternative {
                    // geth: a null among the alternatives makes the whole position a wildcard.
                    Value::Null => return Ok(Vec::new()),
                    Value::String(s) => set.push(topic(s)?),
                    _ => return Err("invalid topic(s)".into()),
                }
            }
            Ok(set)
        }
        _ => Err("invalid topic(s)".into()),
    }
}

/// Positional parameters of one call, read in order with geth's messages.
pub(crate) struct ParamReader {
    values: Vec<Value>,
    next: usize,
}

impl ParamReader {
    /// Reads the raw `params` of a request: absent or null is no argument; an object
    /// (by-name parameters) is refused as geth does.
    pub(crate) fn new(raw: Option<&str>) -> CallResult<Self> {
        let values = match raw.map(serde_json::from_str::<Value>) {
            None => Vec::new(),
            Some(Ok(Value::Null)) => Vec::new(),
            Some(Ok(Value::Array(values))) => values,
            Some(Ok(_)) => return Err(CallError::invalid_params("non-array args")),
            Some(Err(e)) => return Err(CallError::invalid_params(format!("invalid params: {e}"))),
        };
        Ok(Self { values, next: 0 })
    }

    /// The next argument, which must be present and not null.
    pub(crate) fn required<T: for<'de> Deserialize<'de>>(&mut self) -> CallResult<T> {
        let index = self.next;
        match self.optional()? {
            Some(value) => Ok(value),
            None => Err(CallError::invalid_params(format!(
                "missing value for required argument {index}"
            ))),
        }
    }

    /// The next argument; absent or null gives `None`.
    pub(crate) fn optional<T: for<'de> Deserialize<'de>>(&mut self) -> CallResult<Option<T>> {
        let index = self.next;
        self.next += 1;
        match self.values.get_mut(index).map(Value::take) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| CallError::invalid_params(format!("invalid argument {index}: {e}"))),
        }
    }

    /// Checks that no argument is left over.
    pub(crate) fn finish(self) -> CallResult<()> {
        if self.values.len() > self.next {
            return Err(CallError::invalid_params(format!(
                "too many arguments, want at most {}",
                self.next
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arg<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn quantities_follow_hexutil() {
        assert_eq!(arg::<Quantity>(json!("0x1f")), Ok(Quantity(31)));
        assert_eq!(arg::<Quantity>(json!("0x0")), Ok(Quantity(0)));
        assert_eq!(
            arg::<Quantity>(json!("1f")).unwrap_err(),
            hexerr::MISSING_PREFIX
        );
        assert_eq!(
            arg::<Quantity>(json!("0x01")).unwrap_err(),
            hexerr::LEADING_ZERO
        );
        assert_eq!(
            arg::<Quantity>(json!("0x")).unwrap_err(),
            hexerr::EMPTY_NUMBER
        );
        assert_eq!(
            arg::<Quantity>(json!("")).unwrap_err(),
            hexerr::EMPTY_STRING
        );
        assert_eq!(arg::<Quantity>(json!("0xzz")).unwrap_err(), hexerr::SYNTAX);
        assert_eq!(
            arg::<Quantity>(json!("0x10000000000000000")).unwrap_err(),
            hexerr::UINT64_RANGE
        );
        assert!(
            arg::<Quantity>(json!(5))
                .unwrap_err()
                .contains("cannot unmarshal number")
        );
        let big = format!("0x1{}", "0".repeat(64));
        assert_eq!(
            arg::<BigQuantity>(json!(big)).unwrap_err(),
            hexerr::BIG256_RANGE
        );
        assert_eq!(
            arg::<BigQuantity>(json!("0xde0b6b3a7640000")),
            Ok(BigQuantity(U256::from(10u128.pow(18))))
        );
    }

    #[test]
    fn data_and_fixed_sizes() {
        assert_eq!(arg::<Data>(json!("0x")), Ok(Data(Bytes::new())));
        assert_eq!(arg::<Data>(json!("0xabc")).unwrap_err(), hexerr::ODD_LENGTH);
        assert_eq!(
            arg::<Data>(json!("abcd")).unwrap_err(),
            hexerr::MISSING_PREFIX
        );
        assert_eq!(
            arg::<Addr>(json!("0x1234")).unwrap_err(),
            "hex string has length 4, want 40 for common.Address"
        );
        assert!(arg::<Hash>(json!(format!("0x{}", "ab".repeat(32)))).is_ok());
    }

    #[test]
    fn block_ids_accept_tags_numbers_hashes_and_eip1898() {
        let hash = format!("0x{}", "11".repeat(32));
        assert_eq!(
            arg::<BlockId>(json!("latest")),
            Ok(BlockId::Tag(BlockTag::Latest))
        );
        assert_eq!(
            arg::<BlockId>(json!("0x10")),
            Ok(BlockId::Tag(BlockTag::Number(16)))
        );
        assert_eq!(
            arg::<BlockId>(json!(hash)),
            Ok(BlockId::Hash {
                hash: B256::repeat_byte(0x11),
                require_canonical: false
            })
        );
        assert_eq!(
            arg::<BlockId>(json!({"blockHash": hash, "requireCanonical": true})),
            Ok(BlockId::Hash {
                hash: B256::repeat_byte(0x11),
                require_canonical: true
            })
        );
        assert_eq!(
            arg::<BlockId>(json!({"blockNumber": "0x2"})),
            Ok(BlockId::Tag(BlockTag::Number(2)))
        );
        assert!(arg::<BlockId>(json!({"blockNumber": "0x2", "blockHash": hash})).is_err());
        assert_eq!(
            arg::<BlockId>(json!("10")).unwrap_err(),
            hexerr::MISSING_PREFIX
        );
        assert_eq!(
            arg::<BlockTag>(json!("0x8000000000000000")).unwrap_err(),
            "block number larger than int64"
        );
    }

    #[test]
    fn filters_parse_addresses_and_topics() {
        let t = |b: u8| format!("0x{}", hex::encode([b; 32]));
        let a = format!("0x{}", "22".repeat(20));
        let f: FilterCriteria = arg(json!({
            "address": [a],
            "topics": [t(1), null, [t(2), t(3)], [t(4), null]],
            "fromBlock": "0x1", "toBlock": "latest"
        }))
        .unwrap();
        assert_eq!(f.addresses, vec![Address::repeat_byte(0x22)]);
        assert_eq!(
            f.topics,
            vec![
                vec![B256::repeat_byte(1)],
                vec![],
                vec![B256::repeat_byte(2), B256::repeat_byte(3)],
                vec![]
            ]
        );
        assert_eq!(f.from_block, Some(BlockTag::Number(1)));
        let err =
            arg::<FilterCriteria>(json!({"blockHash": t(9), "fromBlock": "0x1"})).unwrap_err();
        assert_eq!(
            err,
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        );
    }

    #[test]
    fn param_reader_counts_arguments() {
        let mut p = ParamReader::new(Some(r#"["0x1"]"#)).unwrap();
        assert_eq!(p.required::<Quantity>().unwrap(), Quantity(1));
        assert_eq!(p.optional::<BlockId>().unwrap(), None);
        p.finish().unwrap();

        let mut p = ParamReader::new(Some(r#"["0x1", "latest", 3]"#)).unwrap();
        p.required::<Quantity>().unwrap();
        p.optional::<BlockId>().unwrap();
        assert_eq!(
            p.finish().unwrap_err().message,
            "too many arguments, want at most 2"
        );

        let mut p = ParamReader::new(None).unwrap();
        assert_eq!(
            p.required::<Quantity>().unwrap_err().message,
            "missing value for required argument 0"
        );
        assert_eq!(
            ParamReader::new(Some(r#"{"a":1}"#)).err().unwrap().message,
            "non-array args"
        );

        let mut p = ParamReader::new(Some(r#"["latest", "12"]"#)).unwrap();
        p.required::<BlockTag>().unwrap();
        assert_eq!(
            p.required::<Quantity>().unwrap_err().message,
            "invalid argument 1: hex string without 0x prefix"
        );
    }

    #[test]
    fn call_request_data_and_input() {
        let r: CallRequest = arg(json!({"data": "0x01", "input": "0x02"})).unwrap();
        assert!(r.call_data().is_err());
        let r: CallRequest = arg(json!({"data": "0x01", "input": "0x01"})).unwrap();
        assert_eq!(r.call_data().unwrap(), Bytes::from(vec![1]));
        let r: CallRequest = arg(json!({"data": "0x03"})).unwrap();
        assert_eq!(r.call_data().unwrap(), Bytes::from(vec![3]));
        assert!(
            arg::<CallRequest>(json!({"gas": "100"}))
                .unwrap_err()
                .contains("without 0x prefix")
        );
    }
}
