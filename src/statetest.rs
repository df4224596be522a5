//! `chaind statetest`: runs ethereum/tests GeneralStateTests (and execution-spec-tests state
//! tests, same format) through the executor and compares post-state roots and logs hashes.
//!
//! Each (fork, index) case runs as a one-transaction block through both the sequential and the
//! parallel executor; it passes if both give the fixture's state root and logs hash. Cases of
//! forks before Berlin, and blob (EIP-4844) and set-code (EIP-7702) transactions, which this
//! chain does not execute, are counted as skipped.

use alloy_primitives::{Address, B256, Bytes, Log, TxKind, U256, keccak256};
use chain_executor::BlockStm;
use chain_executor::{
    BlockEnv, CodeCache, ExecutionEnv, SpecId, TxEnv, TxOutcome, execute_parallel,
    execute_sequential, revm::context::BlockEnv as RevmBlockEnv,
};
use chain_primitives::{Account, InMemoryState};
use serde_json::Value;
use std::{num::NonZeroUsize, path::Path, str::FromStr, sync::LazyLock};

/// The two-worker Block-STM runner every case shares.
fn runner() -> &'static BlockStm {
    static RUNNER: LazyLock<BlockStm> =
        LazyLock::new(|| BlockStm::new(NonZeroUsize::new(2).unwrap()));
    &RUNNER
}

/// Result of one (test, fork, index) case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseResult {
    /// Root and logs hash match.
    Pass,
    /// Something differs; the message says what.
    Fail(String),
    /// Not run, and why.
    Skip(String),
}

/// One case's identity and result.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// File the case came from.
    pub file: String,
    /// Test name in the file.
    pub test: String,
    /// Fork name.
    pub fork: String,
    /// Index of the post entry.
    pub index: usize,
    /// The result.
    pub result: CaseResult,
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases not run.
    pub skipped: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Tallies case reports.
pub fn summarize(reports: &[CaseReport]) -> Summary {
    let mut summary = Summary::default();
    for report in reports {
        match report.result {
            CaseResult::Pass => summary.passed += 1,
            CaseResult::Fail(_) => summary.failed += 1,
            CaseResult::Skip(_) => summary.skipped += 1,
        }
    }
    summary
}

/// Every `.json` file under `path` (a file or a directory), sorted.
pub fn collect_files(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?.path();
            if entry.is_dir() {
                files.extend(collect_files(&entry)?);
            } else if entry.extension().is_some_and(|e| e == "json") {
                files.push(entry);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Runs every case of one fixture file.
pub fn run_file(path: &Path) -> Vec<CaseReport> {
    let file = path.display().to_string();
    let fail_file = |message: String| {
        vec![CaseReport {
            file: file.clone(),
            test: String::new(),
            fork: String::new(),
            index: 0,
            result: CaseResult::Fail(message),
        }]
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return fail_file(format!("cannot read: {e}")),
    };
    let json: Value = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(e) => return fail_file(format!("invalid JSON: {e}")),
    };
    let Some(tests) = json.as_object() else {
        return fail_file("not a JSON object of tests".to_owned());
    };
    let mut reports = Vec::new();
    for (name, test) in tests {
        match run_test(test) {
            Ok(cases) => {
                reports.extend(cases.into_iter().map(|(fork, index, result)| CaseReport {
                    file: file.clone(),
                    test: name.clone(),
                    fork,
                    index,
                    result,
                }))
            }
            Err(message) => reports.push(CaseReport {
                file: file.clone(),
                test: name.clone(),
                fork: String::new(),
                index: 0,
                result: CaseResult::Fail(format!("malformed test: {message}")),
            }),
        }
    }
    reports
}

type Parsed<T> = Result<T, String>;

fn field<'a>(value: &'a Value, key: &str) -> Parsed<&'a Value> {
    value
        .get(key)
        .ok_or_else(|| format!("missing field {key:?}"))
}

fn text<'a>(value: &'a Value, key: &str) -> Parsed<&'a str> {
    field(value, key)?
        .as_str()
        .ok_or_else(|| format!("field {key:?} is not a string"))
}

fn u256(s: &str) -> Parsed<U256> {
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("{s:?} is not 0x-hex"))?;
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
}

fn u64_of(s: &str) -> Parsed<u64> {
    u64::try_from(u256(s)?).map_err(|_| format!("{s:?} exceeds 64 bits"))
}

fn bytes(s: &str) -> Parsed<Bytes> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(digits)
        .map(Bytes::from)
        .map_err(|e| format!("{s:?}: {e}"))
}

fn b256(s: &str) -> Parsed<B256> {
    B256::from_str(s).map_err(|e| format!("{s:?}: {e}"))
}

fn address(s: &str) -> Parsed<Address> {
    Address::from_str(s).map_err(|e| format!("{s:?}: {e}"))
}

fn spec_of(fork: &str) -> Option<SpecId> {
    Some(match fork {
        "Berlin" => SpecId::BERLIN,
        "London" => SpecId::LONDON,
        "Paris" | "Merge" => SpecId::MERGE,
        "Shanghai" => SpecId::SHANGHAI,
        "Cancun" => SpecId::CANCUN,
        "Prague" => SpecId::PRAGUE,
        "Osaka" => SpecId::OSAKA,
        _ => return None,
    })
}

fn pre_state(pre: &Value) -> Parsed<InMemoryState> {
    let mut state = InMemoryState::new();
    let accounts = pre.as_object().ok_or("pre is not an object")?;
    for (addr, account) in accounts {
        let address = address(addr)?;
        let code = bytes(text(account, "code")?)?;
        let info = Account {
            nonce: u64_of(text(account, "nonce")?)?,
            balance: u256(text(account, "balance")?)?,
            code_hash: chain_primitives::KECCAK_EMPTY,
        };
        state.insert_account(address, info);
        if !code.is_empty() {
            state.insert_code(address, code);
        }
        if let Some(storage) = account.get("storage").and_then(Value::as_object) {
            for (slot, value) in storage {
                let value = u256(value.as_str().ok_or("storage value is not a string")?)?;
                state.insert_storage(address, u256(slot)?, value);
            }
        }
    }
    Ok(state)
}

/// The state root of a whole in-memory state.
pub fn state_root(state: &InMemoryState) -> B256 {
    use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
    state_root_unhashed(state.accounts().iter().map(|(address, account)| {
        let storage_root = storage_root_unhashed(
            account
                .storage
                .iter()
                .map(|(slot, value)| (B256::from(slot.to_be_bytes::<32>()), *value)),
        );
        (
            *address,
            alloy_trie::TrieAccount {
                nonce: account.info.nonce,
                balance: account.info.balance,
                storage_root,
                code_hash: account.info.code_hash,
            },
        )
    }))
}

/// keccak256 of the RLP list of logs, as the fixtures' `logs` field.
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut out = Vec::new();
    alloy_rlp::encode_list::<Log, Log>(logs, &mut out);
    keccak256(out)
}

fn run_test(test: &Value) -> Parsed<Vec<(String, usize, CaseResult)>> {
    let env = field(test, "env")?;
    let tx = field(test, "transaction")?;
    let pre = pre_state(field(test, "pre")?)?;
    let chain_id = match test
        .get("config")
        .and_then(|c| c.get("chainid"))
        .and_then(Value::as_str)
    {
        Some(id) => u64_of(id)?,
        None => 1,
    };
    let post = field(test, "post")?
        .as_object()
        .ok_or("post is not an object")?;
    let mut cases = Vec::new();
    for (fork, entries) in post {
        let entries = entries.as_array().ok_or("post entries are not a list")?;
        for (index, entry) in entries.iter().enumerate() {
            let result = match spec_of(fork) {
                None => CaseResult::Skip(format!("fork {fork} is not supported")),
                Some(spec) => {
                    run_case(&pre, env, tx, entry, spec, fork, chain_id).unwrap_or_else(|message| {
                        CaseResult::Fail(format!("malformed case: {message}"))
                    })
                }
            };
            cases.push((fork.clone(), index, result));
        }
    }
    Ok(cases)
}

fn execution_env(env: &Value, spec: SpecId, fork: &str, chain_id: u64) -> Parsed<ExecutionEnv> {
    let optional = |key: &str| env.get(key).and_then(Value::as_str);
    let block = BlockEnv {
        number: u64_of(text(env, "currentNumber")?)?,
        timestamp: u64_of(text(env, "currentTimestamp")?)?,
        base_fee: optional("currentBaseFee")
            .map(u64_of)
            .transpose()?
            .unwrap_or(0),
        prevrandao: optional("currentRandom")
            .map(b256)
            .transpose()?
            .unwrap_or_default(),
        gas_limit: u64_of(text(env, "currentGasLimit")?)?,
        beneficiary: address(text(env, "currentCoinbase")?)?,
        chain_id,
    };
    let mut execution = ExecutionEnv::with_spec(block.clone(), spec);
    let mut revm_block = RevmBlockEnv {
        number: U256::from(block.number),
        beneficiary: block.beneficiary,
        timestamp: U256::from(block.timestamp),
        gas_limit: block.gas_limit,
        basefee: block.base_fee,
        difficulty: optional("currentDifficulty")
            .map(u256)
            .transpose()?
            .unwrap_or_default(),
        prevrandao: if spec >= SpecId::MERGE {
            Some(block.prevrandao)
        } else {
            None
        },
        ..RevmBlockEnv::default()
    };
    if spec >= SpecId::CANCUN {
        let excess = optional("currentExcessBlobGas")
            .map(u64_of)
            .transpose()?
            .unwrap_or(0);
        let fraction = if spec >= SpecId::PRAGUE {
            revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE
        } else {
            revm::primitives::eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN
        };
        revm_block.set_blob_excess_gas_and_price(excess, fraction);
    } else {
        revm_block.blob_excess_gas_and_price = None;
    }
    let _ = fork;
    execution.set_revm_block(revm_block);
    Ok(execution)
}

fn build_tx(tx: &Value, indexes: &Value, chain_id: u64) -> Parsed<Result<TxEnv, String>> {
    let index = |key: &str| -> Parsed<usize> {
        field(indexes, key)?
            .as_u64()
            .map(|i| i as usize)
            .ok_or_else(|| format!("index {key} is not a number"))
    };
    let pick = |key: &str, i: usize| -> Parsed<&str> {
        field(tx, key)?
            .as_array()
            .and_then(|a| a.get(i))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{key}[{i}] missing"))
    };
    if tx.get("blobVersionedHashes").is_some() {
        return Ok(Err("blob transaction (EIP-4844)".to_owned()));
    }
    if tx
        .get("authorizationList")
        .and_then(Value::as_array)
        .is_some()
    {
        return Ok(Err("set-code transaction (EIP-7702)".to_owned()));
    }
    let (data_i, gas_i, value_i) = (index("data")?, index("gas")?, index("value")?);
    let sender = match tx.get("sender").and_then(Value::as_str) {
        Some(sender) => address(sender)?,
        None => sender_of_secret(text(tx, "secretKey")?)?,
    };
    let to = text(tx, "to")?;
    let kind = if to.is_empty() {
        TxKind::Create
    } else {
        TxKind::Call(address(to)?)
    };
    let access_list = match tx
        .get("accessLists")
        .and_then(Value::as_array)
        .and_then(|l| l.get(data_i))
    {
        Some(Value::Null) | None => None,
        Some(list) => Some(
            serde_json::from_value::<alloy_eips::eip2930::AccessList>(list.clone())
                .map_err(|e| format!("access list: {e}"))?,
        ),
    };
    let mut env = TxEnv {
        caller: sender,
        gas_limit: u64_of(pick("gasLimit", gas_i)?)?,
        kind,
        value: u256(pick("value", value_i)?)?,
        data: bytes(pick("data", data_i)?)?,
        nonce: u64_of(text(tx, "nonce")?)?,
        chain_id: Some(chain_id),
        ..TxEnv::default()
    };
    let too_big = |v: U256| u128::try_from(v).map_err(|_| "fee exceeds 128 bits".to_owned());
    if let Some(max_fee) = tx.get("maxFeePerGas").and_then(Value::as_str) {
        env.tx_type = 2;
        match (
            too_big(u256(max_fee)?),
            too_big(u256(text(tx, "maxPriorityFeePerGas")?)?),
        ) {
            (Ok(max), Ok(priority)) => {
                env.gas_price = max;
                env.gas_priority_fee = Some(priority);
            }
            _ => return Ok(Err("fee exceeds 128 bits".to_owned())),
        }
    } else {
        env.tx_type = if access_list.is_some() { 1 } else { 0 };
        match too_big(u256(text(tx, "gasPrice")?)?) {
            Ok(price) => env.gas_price = price,
            Err(e) => return Ok(Err(e)),
        }
    }
    if let Some(list) = access_list {
        env.access_list = list;
    }
    if env.tx_type == 0 {
        // Legacy fixtures are signed either way; the chain id check of revm only applies when
        // the transaction carries one, which the fixture's txbytes would tell. Accept both.
        env.chain_id = None;
    }
    Ok(Ok(env))
}

fn sender_of_secret(secret: &str) -> Parsed<Address> {
    let key = b256(secret)?;
    let secret = secp256k1::SecretKey::from_byte_array(key.0).map_err(|e| e.to_string())?;
    let public = secp256k1::PublicKey::from_secret_key_global(&secret);
    let hash = keccak256(&public.serialize_uncompressed()[1..]);
    Ok(Address::from_slice(&hash[12..]))
}

fn run_case(
    pre: &InMemoryState,
    env: &Value,
    tx: &Value,
    entry: &Value,
    spec: SpecId,
    fork: &str,
    chain_id: u64,
) -> Parsed<CaseResult> {
    let expected_root = b256(text(entry, "hash")?)?;
    let expected_logs = b256(text(entry, "logs")?)?;
    let expects_exception = entry.get("expectException").is_some();
    let tx = match build_tx(tx, field(entry, "indexes")?, chain_id)? {
        Ok(tx) => tx,
        Err(reason) => return Ok(CaseResult::Skip(reason)),
    };
    let env = execution_env(env, spec, fork, chain_id)?;
    let codes = CodeCache::default();
    let txs = [tx];
    let sequential = execute_sequential(pre, &env, &txs, &codes).map_err(|e| e.to_string())?;
    let (parallel, _) =
        execute_parallel(pre, &env, &txs, &codes, runner()).map_err(|e| e.to_string())?;
    if parallel != sequential {
        return Ok(CaseResult::Fail(
            "parallel output differs from sequential".to_owned(),
        ));
    }
    if expects_exception != matches!(sequential.outcomes[0], TxOutcome::Skipped(_)) {
        return Ok(CaseResult::Fail(format!(
            "expected exception: {expects_exception}, outcome: {:?}",
            sequential.outcomes[0]
        )));
    }
    let mut post = pre.clone();
    post.apply(&sequential.diff);
    let root = state_root(&post);
    let logs: Vec<Log> = sequential.receipts().flat_map(|r| r.logs.clone()).collect();
    let logs = logs_hash(&logs);
    if root != expected_root {
        return Ok(CaseResult::Fail(format!(
            "state root {root} != expected {expected_root}"
        )));
    }
    if logs != expected_logs {
        return Ok(CaseResult::Fail(format!(
            "logs hash {logs} != expected {expected_logs}"
        )));
    }
    Ok(CaseResult::Pass)
}
