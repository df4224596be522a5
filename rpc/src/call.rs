//! `eth_call` and `eth_estimateGas`: one simulated transaction over the state of a block (with
//! optional state overrides), a gas cap, a time limit, a bound on concurrent executions, and
//! geth's errors (revert → code 3 with the revert data, "gas required exceeds allowance (N)",
//! "insufficient funds for transfer", ...).

use crate::{
    api::ChainApi,
    error::{CallError, CallResult, code},
    methods::{Ctx, balance_of, record_call, state_error},
    wire::{BlockId, BlockTag, CallRequest, ParamReader, StateOverrideArg},
};
use alloy_primitives::{Address, Bytes, TxKind, U256};
use chain_executor::{
    AccountOverride, ExecutionEnv, OverriddenState, SimulationOptions, SimulationOutcome, SpecId,
    TxEnv, TxStatus, simulate,
};
use chain_primitives::StateReader;
use jsonrpsee::{RpcModule, core::RegisterMethodError, types::ErrorObjectOwned};
use serde_json::Value;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Intrinsic gas of a plain transfer.
const TX_GAS: u64 = 21_000;
/// EIP-7825's per-transaction gas limit cap (Osaka): an estimate above it could not be mined.
const OSAKA_TX_GAS_LIMIT_CAP: u64 = 1 << 24;
/// Gas a value-carrying CALL forwards for free; part of geth's first optimistic guess.
const CALL_STIPEND: u64 = 2_300;
/// geth stops the binary search once the bracket is within 1.5% of the upper bound.
const ESTIMATE_ERROR_RATIO: f64 = 0.015;

/// Registers `eth_call` and `eth_estimateGas`.
pub(crate) fn register<A: ChainApi>(
    module: &mut RpcModule<Ctx<A>>,
) -> Result<(), RegisterMethodError> {
    module.register_async_method("eth_call", |params, ctx, _| async move {
        let raw = params.as_str().map(str::to_owned);
        bounded("eth_call", ctx, move |ctx, cancel| {
            eth_call(ctx, raw.as_deref(), cancel)
        })
        .await
    })?;
    module.register_async_method("eth_estimateGas", |params, ctx, _| async move {
        let raw = params.as_str().map(str::to_owned);
        bounded("eth_estimateGas", ctx, move |ctx, cancel| {
            estimate_gas(ctx, raw.as_deref(), cancel)
        })
        .await
    })?;
    Ok(())
}

/// Runs `work` on the blocking pool under the concurrency bound and the time limit. On timeout
/// the caller is answered at once; the execution sees `cancel` and stops at its next check.
async fn bounded<A, F>(
    name: &'static str,
    ctx: Arc<Ctx<A>>,
    work: F,
) -> Result<Value, ErrorObjectOwned>
where
    A: ChainApi,
    F: FnOnce(&Ctx<A>, &AtomicBool) -> CallResult<Value> + Send + 'static,
{
    let started = Instant::now();
    let limit = ctx.config.call_timeout;
    let cancel = Arc::new(AtomicBool::new(false));
    let run = {
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        async move {
            let permit = ctx
                .calls
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| CallError::internal("server is shutting down"))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work(&ctx, &cancel)
            })
            .await
            .map_err(|e| CallError::internal(format!("execution failed: {e}")))?
        }
    };
    let result = match tokio::time::timeout(limit, run).await {
        Ok(result) => result,
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err(CallError::server(format!(
                "execution aborted (timeout = {})",
                go_duration(limit)
            )))
        }
    };
    record_call(name, started, result.is_ok());
    result.map_err(ErrorObjectOwned::from)
}

/// A duration as Go prints it ("5s", "250ms"), for geth's timeout message.
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// How one simulated execution ended.
#[derive(Debug)]
enum Outcome {
    Success {
        gas_used: u64,
        output: Bytes,
    },
    Revert {
        output: Bytes,
    },
    Halt {
        reason: String,
    },
    /// The transaction could not run (revm's validation message).
    Invalid(String),
}

/// What every execution of one request shares.
struct Simulation<'a, S> {
    state: OverriddenState<'a, S>,
    env: ExecutionEnv,
    tx: TxEnv,
    options: SimulationOptions,
    codes: Arc<chain_executor::CodeCache>,
}

impl<S: StateReader> Simulation<'_, S> {
    fn run(&self, gas_limit: u64) -> CallResult<Outcome> {
        let mut tx = self.tx.clone();
        tx.gas_limit = gas_limit;
        let outcome = simulate(&self.state, &self.env, tx, self.options, &self.codes)
            .map_err(|e| CallError::internal(e.to_string()))?;
        Ok(match outcome {
            SimulationOutcome::Executed {
                status: TxStatus::Success,
                gas_used,
                output,
                ..
            } => Outcome::Success { gas_used, output },
            SimulationOutcome::Executed {
                status: TxStatus::Revert,
                output,
                ..
            } => Outcome::Revert { output },
            SimulationOutcome::Executed { halt_reason, .. } => Outcome::Halt {
                reason: halt_message(halt_reason.as_deref().unwrap_or_default()),
            },
            SimulationOutcome::Invalid(reason) => Outcome::Invalid(match reason {
                chain_executor::SkipReason::Invalid(message) => message,
                other => other.to_string(),
            }),
        })
    }
}

/// The parsed parameters shared by both methods.
struct Request {
    call: CallRequest,
    block: BlockId,
    overrides: Option<StateOverrideArg>,
}

fn read_request(p: &mut ParamReader, allow_block_overrides: bool) -> CallResult<Request> {
    let call: CallRequest = p.required()?;
    let block: BlockId = p.optional()?.unwrap_or_default();
    let overrides: Option<StateOverrideArg> = p.optional()?;
    if allow_block_overrides {
        let block_overrides: Option<Value> = p.optional()?;
        if block_overrides.is_some() {
            return Err(CallError::invalid_params(
                "block overrides are not supported",
            ));
        }
    }
    call.check_fees()?;
    Ok(Request {
        call,
        block,
        overrides,
    })
}

fn state_overrides(
    arg: Option<StateOverrideArg>,
) -> CallResult<alloy_primitives::map::HashMap<Address, AccountOverride>> {
    let mut out = alloy_primitives::map::HashMap::default();
    for (address, account) in arg.unwrap_or_default() {
        let address = address.0;
        if account.state.is_some() && account.state_diff.is_some() {
            return Err(CallError::invalid_params(format!(
                "account {address} has both 'state' and 'stateDiff'"
            )));
        }
        let slots = |m: std::collections::BTreeMap<crate::wire::HashKey, crate::wire::Hash>| {
            m.into_iter()
                .map(|(k, v)| (U256::from_be_bytes(k.0.0), U256::from_be_bytes(v.0.0)))
                .collect()
        };
        out.insert(
            address,
            AccountOverride {
                balance: account.balance.map(|b| b.0),
                nonce: account.nonce.map(|n| n.0),
                code: account.code.map(|c| c.0),
                state: account.state.map(slots),
                state_diff: account.state_diff.map(slots).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The execution environment of a call at `block`: the next block's for "pending", the block's
/// own otherwise (as geth), with the EIP-3607 sender check off (geth lets calls come from
/// contracts).
fn call_env<A: ChainApi>(ctx: &Ctx<A>, block: BlockId) -> CallResult<(u64, ExecutionEnv)> {
    let indexed = ctx.state_block(block)?;
    let header = indexed.block.header();
    let mut env = if block == BlockId::Tag(BlockTag::Pending) {
        ctx.api.next_block_env(header)
    } else {
        ctx.api.block_env(header)
    };
    env.cfg_mut().disable_eip3607 = true;
    Ok((indexed.block.number(), env))
}

fn u128_of(value: U256, field: &str) -> CallResult<u128> {
    u128::try_from(value).map_err(|_| CallError::invalid_params(format!("{field} is too large")))
}

/// revm's transaction input for the request (its gas limit is set per execution) and whether
/// it pays for gas.
fn tx_template(call: &CallRequest, env: &ExecutionEnv, data: Bytes) -> CallResult<(TxEnv, bool)> {
    let chain_id = env.block.chain_id;
    if let Some(have) = call.chain_id
        && have.0 != U256::from(chain_id)
    {
        return Err(CallError::invalid_params(format!(
            "chainId does not match node's (have={}, want={chain_id})",
            have.0
        )));
    }
    let access_list = alloy_eips::eip2930::AccessList(
        call.access_list
            .iter()
            .flatten()
            .map(|e| alloy_eips::eip2930::AccessListItem {
                address: e.address.0,
                storage_keys: e.storage_keys.iter().map(|k| k.0).collect(),
            })
            .collect(),
    );
    let base_fee = u128::from(env.block.base_fee);
    let (tx_type, gas_price, priority) =
        if call.max_fee_per_gas.is_some() || call.max_priority_fee_per_gas.is_some() {
            let tip = u128_of(
                call.max_priority_fee_per_gas
                    .map(|t| t.0)
                    .unwrap_or_default(),
                "maxPriorityFeePerGas",
            )?;
            let max_fee = match call.max_fee_per_gas {
                Some(max) => u128_of(max.0, "maxFeePerGas")?,
                None => base_fee.saturating_mul(2).saturating_add(tip),
            };
            (2u8, max_fee, Some(tip))
        } else {
            let price = u128_of(call.gas_price.map(|p| p.0).unwrap_or_default(), "gasPrice")?;
            (u8::from(!access_list.0.is_empty()), price, None)
        };
    let pays = gas_price != 0 || priority.is_some_and(|t| t != 0);
    let tx = TxEnv {
        tx_type,
        caller: call.from.map(|a| a.0).unwrap_or_default(),
        gas_limit: 0,
        gas_price,
        gas_priority_fee: priority,
        kind: call.to.map_or(TxKind::Create, |to| TxKind::Call(to.0)),
        value: call.value.map(|v| v.0).unwrap_or_default(),
        data,
        nonce: call.nonce.map(|n| n.0).unwrap_or_default(),
        chain_id: Some(chain_id),
        access_list,
        ..TxEnv::default()
    };
    Ok((tx, pays))
}

fn options(pays: bool) -> SimulationOptions {
    // A call without fee fields runs for free and ignores the base fee, as geth's eth_call.
    SimulationOptions {
        skip_nonce_check: true,
        skip_fee_charge: !pays,
        skip_base_fee_check: !pays,
    }
}

fn eth_call<A: ChainApi>(
    ctx: &Ctx<A>,
    raw: Option<&str>,
    _cancel: &AtomicBool,
) -> CallResult<Value> {
    let mut p = ParamReader::new(raw)?;
    let request = read_request(&mut p, true)?;
    p.finish()?;
    let (number, mut env) = call_env(ctx, request.block)?;
    // A read-only call may use the whole gas cap, above the per-transaction cap of EIP-7825.
    env.cfg_mut().tx_gas_limit_cap = Some(u64::MAX);
    let base = ctx.api.state_at(number)?;
    let data = request.call.call_data()?;
    let (tx, pays) = tx_template(&request.call, &env, data)?;
    let sim = Simulation {
        state: OverriddenState::new(&base, state_overrides(request.overrides)?),
        env,
        tx,
        options: options(pays),
        codes: ctx.api.code_cache(),
    };
    if !pays {
        check_value_covered(&sim)?;
    }
    let cap = ctx.config.gas_cap;
    let gas = match request.call.gas {
        Some(g) if g.0 != 0 => {
            if cap != 0 {
                g.0.min(cap)
            } else {
                g.0
            }
        }
        _ => {
            if cap != 0 {
                cap
            } else {
                u64::MAX / 2
            }
        }
    };
    match sim.run(gas)? {
        Outcome::Success { output, .. } => Ok(serde_json::to_value(output).unwrap_or(Value::Null)),
        Outcome::Revert { output } => Err(revert_error(output)),
        Outcome::Halt { reason } => Err(CallError::server(reason)),
        Outcome::Invalid(message) => Err(invalid_error(&message, &sim)),
    }
}

/// Without fee charging revm would mint a missing value; geth refuses the transfer instead.
fn check_value_covered<S: StateReader>(sim: &Simulation<'_, S>) -> CallResult<()> {
    if sim.tx.value.is_zero() {
        return Ok(());
    }
    let balance = balance_of(&sim.state, &sim.tx.caller)?;
    if sim.tx.value > balance {
        return Err(CallError::server(format!(
            "insufficient funds for gas * price + value: address {} have {} want {}",
            sim.tx.caller, balance, sim.tx.value
        )));
    }
    Ok(())
}

fn estimate_gas<A: ChainApi>(
    ctx: &Ctx<A>,
    raw: Option<&str>,
    cancel: &AtomicBool,
) -> CallResult<Value> {
    let mut p = ParamReader::new(raw)?;
    let request = read_request(&mut p, false)?;
    p.finish()?;
    let (number, env) = call_env(ctx, request.block)?;
    let base = ctx.api.state_at(number)?;
    let data = request.call.call_data()?;
    let (tx, pays) = tx_template(&request.call, &env, data)?;
    let sim = Simulation {
        state: OverriddenState::new(&base, state_overrides(request.overrides)?),
        env,
        tx,
        options: options(pays),
        codes: ctx.api.code_cache(),
    };
    // Only a fee cap the caller gave bounds the estimate by the balance (geth).
    let fee_cap = match (request.call.gas_price, request.call.max_fee_per_gas) {
        (Some(price), _) => u128_of(price.0, "gasPrice")?,
        (None, Some(max)) => u128_of(max.0, "maxFeePerGas")?,
        (None, None) => 0,
    };
    if fee_cap == 0 {
        check_value_covered(&sim)?;
    }
    let gas = estimate(
        &sim,
        request.call.gas.map(|g| g.0),
        ctx.config.gas_cap,
        fee_cap,
        cancel,
    )?;
    Ok(Value::String(format!("{gas:#x}")))
}

/// geth's estimator: bracket the gas limit between what an unconstrained run used and the
/// highest limit allowed, then binary-search; the answer is always a limit that succeeded.
fn estimate<S: StateReader>(
    sim: &Simulation<'_, S>,
    gas: Option<u64>,
    gas_cap: u64,
    fee_cap: u128,
    cancel: &AtomicBool,
) -> CallResult<u64> {
    let mut hi = match gas {
        Some(g) if g >= TX_GAS => g,
        _ => sim.env.block.gas_limit,
    };
    if sim.env.spec.is_enabled_in(SpecId::OSAKA) {
        hi = hi.min(OSAKA_TX_GAS_LIMIT_CAP);
    }
    if fee_cap != 0 {
        let balance = balance_of(&sim.state, &sim.tx.caller)?;
        if !sim.tx.value.is_zero() && sim.tx.value >= balance {
            return Err(CallError::server("insufficient funds for transfer"));
        }
        let allowance = (balance - sim.tx.value) / U256::from(fee_cap);
        hi = hi.min(allowance.saturating_to::<u64>());
    }
    if gas_cap != 0 {
        hi = hi.min(gas_cap);
    }

    // A plain transfer to an account without code needs exactly the intrinsic gas.
    if let TxKind::Call(to) = sim.tx.kind
        && sim.tx.data.is_empty()
        && hi >= TX_GAS
    {
        let has_code = sim
            .state
            .account(&to)
            .map_err(state_error)?
            .is_some_and(|a| a.has_code());
        if !has_code && matches!(sim.run(TX_GAS)?, Outcome::Success { .. }) {
            return Ok(TX_GAS);
        }
    }

    let used = match sim.run(hi)? {
        Outcome::Success { gas_used, .. } => gas_used,
        Outcome::Revert { output } => return Err(revert_error(output)),
        Outcome::Halt { reason } if reason != "out of gas" => {
            return Err(CallError::server(reason));
        }
        Outcome::Halt { .. } => return Err(allowance_error(hi)),
        Outcome::Invalid(message) if is_intrinsic_gas_error(&message) => {
            return Err(allowance_error(hi));
        }
        Outcome::Invalid(message) => return Err(invalid_error(&message, sim)),
    };

    // Whether the transaction fails under `limit`; validation errors other than intrinsic gas
    // cannot be cured by more gas and are reported.
    let fails = |limit: u64| -> CallResult<bool> {
        if cancel.load(Ordering::Relaxed) {
            return Err(CallError::server("execution aborted"));
        }
        Ok(match sim.run(limit)? {
            Outcome::Success { .. } => false,
            Outcome::Invalid(message) if !is_intrinsic_gas_error(&message) => {
                return Err(invalid_error(&message, sim));
            }
            _ => true,
        })
    };

    let mut lo = used.saturating_sub(1);
    let optimistic = (used + CALL_STIPEND) * 64 / 63;
    if optimistic < hi {
        if fails(optimistic)? {
            lo = optimistic;
        } else {
            hi = optimistic;
        }
    }
    while lo + 1 < hi {
        if ((hi - lo) as f64) / (hi as f64) < ESTIMATE_ERROR_RATIO {
            break;
        }
        // Most transactions need a little more than they used: search near the lower end first.
        let mid = ((hi + lo) / 2).min(lo.saturating_mul(2)).max(lo + 1);
        if fails(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

fn allowance_error(hi: u64) -> CallError {
    CallError::server(format!("gas required exceeds allowance ({hi})"))
}

fn is_intrinsic_gas_error(message: &str) -> bool {
    message.contains("exceeds the gas limit")
}

/// geth's error for a reverted call: code 3, the decoded reason, the revert data.
pub(crate) fn revert_error(output: Bytes) -> CallError {
    let message = match decode_revert_reason(&output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_owned(),
    };
    CallError {
        code: code::EXECUTION_REVERTED,
        message,
        data: Some(output),
    }
}

/// The reason of an `Error(string)` or `Panic(uint256)` revert (geth's `abi.UnpackRevert`).
pub(crate) fn decode_revert_reason(output: &[u8]) -> Option<String> {
    const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
    const PANIC_SELECTOR: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];
    let (selector, body) = (output.get(..4)?, output.get(4..)?);
    if selector == ERROR_SELECTOR {
        let word = |i: usize| -> Option<usize> {
            let w = body.get(i..i + 32)?;
            if w[..24].iter().any(|b| *b != 0) {
                return None;
            }
            Some(u64::from_be_bytes(w[24..].try_into().ok()?) as usize)
        };
        let offset = word(0)?;
        let len = word(offset)?;
        let start = offset.checked_add(32)?;
        let bytes = body.get(start..start.checked_add(len)?)?;
        return String::from_utf8(bytes.to_vec()).ok();
    }
    if selector == PANIC_SELECTOR && body.len() == 32 {
        let code = U256::from_be_slice(body);
        let reason = match code.saturating_to::<u64>() {
            0x00 => "generic panic",
            0x01 => "assert(false)",
            0x11 => "arithmetic underflow or overflow",
            0x12 => "division or modulo by zero",
            0x21 => "enum overflow",
            0x22 => "invalid encoded storage byte array accessed",
            0x31 => "out-of-bounds array access; popping on an empty array",
            0x32 => "out-of-bounds access of an array or bytesN",
            0x41 => "out of memory",
            0x51 => "uninitialized function",
            _ => return Some(format!("unknown panic code: {code:#x}")),
        };
        return Some(reason.to_owned());
    }
    None
}

/// geth's wording of an exceptional halt (revm's reason comes as its `Debug` form).
fn halt_message(reason: &str) -> String {
    let head = reason.split('(').next().unwrap_or(reason);
    match head {
        "OutOfGas" => "out of gas",
        "OpcodeNotFound" => "invalid opcode: opcode not defined",
        "InvalidFEOpcode" => "invalid opcode: INVALID",
        "InvalidJump" => "invalid jump destination",
        "StackUnderflow" => "stack underflow",
        "StackOverflow" => "stack limit reached 1024 (1023)",
        "CallTooDeep" => "max call depth exceeded",
        "StateChangeDuringStaticCall" | "CallNotAllowedInsideStatic" => "write protection",
        "CreateCollision" => "contract address collision",
        "CreateContractSizeLimit" => "max code size exceeded",
        "CreateInitCodeSizeLimit" => "max initcode size exceeded",
        "CreateContractStartingWithEF" => "invalid code: must not begin with 0xef",
        "OutOfFunds" => "insufficient balance for transfer",
        "NonceOverflow" => "nonce uint64 overflow",
        "OutOfOffset" => "return data out of bounds",
        "PrecompileError" | "PrecompileErrorWithContext" => "precompiled contract failed",
        _ => return reason.to_owned(),
    }
    .to_owned()
}

/// The two numbers in revm's "lack of funds (X) for max fee (Y)".
fn numbers_in_parens(message: &str) -> Vec<&str> {
    message
        .split('(')
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .collect()
}

/// geth's wording of a transaction that cannot run.
fn invalid_error<S: StateReader>(message: &str, sim: &Simulation<'_, S>) -> CallError {
    let from = sim.tx.caller;
    let text = if message.starts_with("lack of funds") {
        match numbers_in_parens(message)[..] {
            [have, want] => format!(
                "insufficient funds for gas * price + value: address {from} have {have} want {want}"
            ),
            _ => "insufficient funds for gas * price + value".to_owned(),
        }
    } else if message.contains("nonce") && message.contains("too high") {
        "nonce too high".to_owned()
    } else if message.contains("nonce") && message.contains("too low") {
        "nonce too low".to_owned()
    } else if message.contains("gas price is less than basefee") {
        format!(
            "max fee per gas less than block base fee: address {from}, maxFeePerGas: {}, baseFee: {}",
            sim.tx.gas_price, sim.env.block.base_fee
        )
    } else if message.contains("priority fee is greater than max fee") {
        "max priority fee per gas higher than max fee per gas".to_owned()
    } else if is_intrinsic_gas_error(message) {
        format!("intrinsic gas too low: {message}")
    } else if message.contains("is greater than the cap") {
        match numbers_in_parens(message)[..] {
            [tx, cap] => format!("transaction gas limit too high (cap: {cap}, tx: {tx})"),
            _ => message.to_owned(),
        }
    } else {
        message.to_owned()
    };
    CallError::server(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_string(reason: &str) -> Vec<u8> {
        let mut out = vec![0x08, 0xc3, 0x79, 0xa0];
        out.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
        out.extend_from_slice(&U256::from(reason.len()).to_be_bytes::<32>());
        let mut padded = reason.as_bytes().to_vec();
        padded.resize(reason.len().div_ceil(32) * 32, 0);
        out.extend_from_slice(&padded);
        out
    }

    #[test]
    fn revert_reasons_decode() {
        assert_eq!(
            decode_revert_reason(&error_string("nope")).as_deref(),
            Some("nope")
        );
        let mut panic = vec![0x4e, 0x48, 0x7b, 0x71];
        panic.extend_from_slice(&U256::from(0x11).to_be_bytes::<32>());
        assert_eq!(
            decode_revert_reason(&panic).as_deref(),
            Some("arithmetic underflow or overflow")
        );
        assert_eq!(decode_revert_reason(&[1, 2, 3]), None);
        assert_eq!(
            decode_revert_reason(&error_string("x")[..40]),
            None,
            "truncated data"
        );

        let error = revert_error(Bytes::from(error_string("nope")));
        assert_eq!(error.code, 3);
        assert_eq!(error.message, "execution reverted: nope");
        assert_eq!(revert_error(Bytes::new()).message, "execution reverted");
    }

    #[test]
    fn halts_and_durations_read_like_geth() {
        assert_eq!(halt_message("OutOfGas(Basic)"), "out of gas");
        assert_eq!(halt_message("InvalidFEOpcode"), "invalid opcode: INVALID");
        assert_eq!(halt_message("Something"), "Something");
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    }
}
