//! The JSON-RPC methods: registration with metrics, and the handlers of the state, block,
//! transaction, receipt, log, filter, net, web3 and txpool methods. `eth_call` and
//! `eth_estimateGas` live in [`crate::call`], fee methods in [`crate::fees`], subscriptions in
//! [`crate::pubsub`].

use crate::{
    api::{ChainApi, IndexedBlock, PoolTransaction},
    call,
    config::RpcConfig,
    convert::{self, first_log_indexes},
    error::{CallError, CallResult, RpcError},
    fees,
    filters::FilterManager,
    logs::{self, LogMatcher, tag_number},
    pubsub,
    wire::{Addr, BlockId, BlockTag, Data, FilterCriteria, Hash, ParamReader, Quantity, SlotKey},
};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, U256, keccak256};
use chain_primitives::{KECCAK_EMPTY, StateReader};
use jsonrpsee::{RpcModule, types::ErrorObjectOwned};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::{collections::BTreeMap, sync::Arc, time::Instant};

/// Everything a method handler reads: the node, the configuration and the server's own state.
pub(crate) struct Ctx<A: ChainApi> {
    pub(crate) api: Arc<A>,
    pub(crate) config: RpcConfig,
    pub(crate) filters: Arc<FilterManager>,
    /// Bounds the `eth_call` / `eth_estimateGas` executing at once.
    pub(crate) calls: Arc<tokio::sync::Semaphore>,
    /// The gas price oracle's last answer, by head hash.
    pub(crate) tip_cache: Mutex<Option<(B256, u128)>>,
}

/// A method body: reads its parameters, returns its JSON result.
pub(crate) type Handler<A> = fn(&Ctx<A>, &mut ParamReader) -> CallResult<Value>;

/// Runs `handler` on the raw parameters and records the call's latency and outcome.
pub(crate) fn run_handler<A: ChainApi>(
    ctx: &Ctx<A>,
    name: &'static str,
    raw_params: Option<&str>,
    handler: Handler<A>,
) -> Result<Value, ErrorObjectOwned> {
    let started = Instant::now();
    let result = ParamReader::new(raw_params).and_then(|mut params| {
        let value = handler(ctx, &mut params)?;
        params.finish()?;
        Ok(value)
    });
    record_call(name, started, result.is_ok());
    result.map_err(ErrorObjectOwned::from)
}

/// Per-method request count and latency, for `GET /metrics`.
pub(crate) fn record_call(method: &'static str, started: Instant, ok: bool) {
    let status = if ok { "ok" } else { "error" };
    metrics::counter!("rpc_requests_total", "method" => method, "status" => status).increment(1);
    metrics::histogram!("rpc_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
}

fn to_json<T: serde::Serialize>(value: T) -> CallResult<Value> {
    serde_json::to_value(value)
        .map_err(|e| CallError::internal(format!("serialization failed: {e}")))
}

fn hex_u64(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

/// The RPC module with every method registered.
pub(crate) fn build_module<A: ChainApi>(ctx: Arc<Ctx<A>>) -> Result<RpcModule<Ctx<A>>, RpcError> {
    let mut module = RpcModule::from_arc(ctx);
    let registration =
        |e: jsonrpsee::core::RegisterMethodError| RpcError::Registration(e.to_string());

    // Answered from memory: run on the connection's task.
    let inline: &[(&'static str, Handler<A>)] = &[
        ("eth_chainId", chain_id::<A>),
        ("eth_blockNumber", block_number::<A>),
        ("eth_syncing", syncing::<A>),
        ("eth_accounts", accounts::<A>),
        ("eth_mining", |_, _| Ok(Value::Bool(false))),
        ("eth_hashrate", |_, _| Ok(hex_u64(0))),
        ("net_version", net_version::<A>),
        ("net_peerCount", net_peer_count::<A>),
        ("net_listening", |_, _| Ok(Value::Bool(true))),
        ("web3_clientVersion", client_version::<A>),
        ("web3_sha3", sha3::<A>),
        ("eth_newBlockFilter", new_block_filter::<A>),
        (
            "eth_newPendingTransactionFilter",
            new_pending_transaction_filter::<A>,
        ),
        ("eth_getFilterChanges", get_filter_changes::<A>),
        ("eth_uninstallFilter", uninstall_filter::<A>),
        ("txpool_status", txpool_status::<A>),
    ];
    for &(name, handler) in inline {
        module
            .register_method(name, move |params, ctx, _| {
                run_handler(ctx, name, params.as_str(), handler)
            })
            .map_err(registration)?;
    }

    // May read storage: run on the blocking pool.
    let blocking: &[(&'static str, Handler<A>)] = &[
        ("eth_getBalance", get_balance::<A>),
        ("eth_getTransactionCount", get_transaction_count::<A>),
        ("eth_getCode", get_code::<A>),
        ("eth_getStorageAt", get_storage_at::<A>),
        ("eth_sendRawTransaction", send_raw_transaction::<A>),
        ("eth_getBlockByNumber", get_block_by_number::<A>),
        ("eth_getBlockByHash", get_block_by_hash::<A>),
        (
            "eth_getBlockTransactionCountByNumber",
            block_tx_count_by_number::<A>,
        ),
        (
            "eth_getBlockTransactionCountByHash",
            block_tx_count_by_hash::<A>,
        ),
        ("eth_getUncleCountByBlockNumber", uncle_count_by_number::<A>),
        ("eth_getUncleCountByBlockHash", uncle_count_by_hash::<A>),
        ("eth_getUncleByBlockNumberAndIndex", uncle_by_number::<A>),
        ("eth_getUncleByBlockHashAndIndex", uncle_by_hash::<A>),
        ("eth_getTransactionByHash", get_transaction_by_hash::<A>),
        (
            "eth_getRawTransactionByHash",
            get_raw_transaction_by_hash::<A>,
        ),
        (
            "eth_getTransactionByBlockNumberAndIndex",
            tx_by_number_and_index::<A>,
        ),
        (
            "eth_getTransactionByBlockHashAndIndex",
            tx_by_hash_and_index::<A>,
        ),
        ("eth_getTransactionReceipt", get_transaction_receipt::<A>),
        ("eth_getBlockReceipts", get_block_receipts::<A>),
        ("eth_getLogs", get_logs::<A>),
        ("eth_newFilter", new_filter::<A>),
        ("eth_getFilterLogs", get_filter_logs::<A>),
        ("eth_gasPrice", fees::gas_price::<A>),
        ("eth_maxPriorityFeePerGas", fees::max_priority_fee::<A>),
        ("eth_feeHistory", fees::fee_history::<A>),
        ("txpool_content", txpool_content::<A>),
        ("chaind_sendStakingOp", send_staking_op::<A>),
        ("chaind_stakingAccount", staking_account::<A>),
        ("chaind_validators", validators::<A>),
    ];
    for &(name, handler) in blocking {
        module
            .register_blocking_method(name, move |params, ctx, _| {
                run_handler(&ctx, name, params.as_str(), handler)
            })
            .map_err(registration)?;
    }

    call::register(&mut module).map_err(registration)?;
    pubsub::register(&mut module).map_err(registration)?;
    Ok(module)
}

impl<A: ChainApi> Ctx<A> {
    /// A block by tag, number or hash; `None` if there is none.
    pub(crate) fn block(&self, id: BlockId) -> CallResult<Option<Arc<IndexedBlock>>> {
        match id {
            BlockId::Tag(tag) => Ok(self.api.block_by_number(tag_number(&*self.api, tag))?),
            BlockId::Hash { hash, .. } => Ok(self.api.block_by_hash(hash)?),
        }
    }

    /// The block whose state a query reads; geth's errors when there is none.
    pub(crate) fn state_block(&self, id: BlockId) -> CallResult<Arc<IndexedBlock>> {
        match (self.block(id)?, id) {
            (Some(block), _) => Ok(block),
            (None, BlockId::Hash { .. }) => Err(CallError::server("header for hash not found")),
            (None, BlockId::Tag(_)) => Err(CallError::header_not_found()),
        }
    }

    /// The state after the block `id` names.
    pub(crate) fn state(&self, id: BlockId) -> CallResult<A::State> {
        let block = self.state_block(id)?;
        Ok(self.api.state_at(block.block.number())?)
    }
}

/// A state read failure as an internal error.
pub(crate) fn state_error(e: impl std::fmt::Display) -> CallError {
    CallError::internal(format!("state read failed: {e}"))
}

fn chain_id<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(hex_u64(ctx.api.chain_id()))
}

fn block_number<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(hex_u64(ctx.api.head_number()))
}

fn syncing<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(match ctx.api.syncing() {
        None => Value::Bool(false),
        Some(s) => json!({
            "startingBlock": hex_u64(s.starting_block),
            "currentBlock": hex_u64(s.current_block),
            "highestBlock": hex_u64(s.highest_block),
        }),
    })
}

fn accounts<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    to_json(ctx.api.accounts())
}

fn net_version<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(Value::String(ctx.api.chain_id().to_string()))
}

fn net_peer_count<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(hex_u64(ctx.api.peer_count() as u64))
}

fn client_version<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(Value::String(ctx.api.client_version()))
}

fn sha3<A: ChainApi>(_: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Data(bytes) = p.required()?;
    to_json(keccak256(&bytes))
}

fn account_of<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<(Address, A::State)> {
    let Addr(address) = p.required()?;
    let block: Option<BlockId> = p.optional()?;
    Ok((address, ctx.state(block.unwrap_or_default())?))
}

fn get_balance<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let (address, state) = account_of(ctx, p)?;
    let balance = state
        .account(&address)
        .map_err(state_error)?
        .map(|a| a.balance)
        .unwrap_or_default();
    to_json(balance)
}

fn get_transaction_count<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Addr(address) = p.required()?;
    let block: BlockId = p.optional()?.unwrap_or_default();
    let state = ctx.state(block)?;
    let nonce = state
        .account(&address)
        .map_err(state_error)?
        .map(|a| a.nonce)
        .unwrap_or_default();
    if block == BlockId::Tag(BlockTag::Pending) {
        let pending = ctx.api.pending_nonce(address).unwrap_or(nonce).max(nonce);
        return Ok(hex_u64(pending));
    }
    Ok(hex_u64(nonce))
}

fn get_code<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let (address, state) = account_of(ctx, p)?;
    let code = match state.account(&address).map_err(state_error)? {
        Some(account) if account.code_hash != KECCAK_EMPTY && account.code_hash != B256::ZERO => {
            state
                .code(&account.code_hash)
                .map_err(state_error)?
                .unwrap_or_default()
        }
        _ => Default::default(),
    };
    to_json(code)
}

fn get_storage_at<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Addr(address) = p.required()?;
    let SlotKey(slot) = p.required()?;
    let block: Option<BlockId> = p.optional()?;
    let state = ctx.state(block.unwrap_or_default())?;
    let value = state.storage(&address, &slot).map_err(state_error)?;
    to_json(B256::from(value))
}

fn send_raw_transaction<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Data(raw) = p.required()?;
    // The pool's code and message are geth's already: pass them through unchanged.
    let hash = ctx
        .api
        .send_raw_transaction(raw)
        .map_err(|r| CallError::new(r.code, r.message))?;
    to_json(hash)
}

/// `chaind_sendStakingOp(bytes)`: an RLP-encoded signed staking operation for the node's
/// staking pool; answers its hash, or the pool's refusal (-32602 for undecodable input,
/// -32000 otherwise).
fn send_staking_op<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Data(raw) = p.required()?;
    let hash = ctx
        .api
        .send_staking_op(raw)
        .map_err(|r| CallError::new(r.code, r.message))?;
    to_json(hash)
}

/// `chaind_stakingAccount(address, block?)`: the validator's entry in the staking escrow's
/// ledger (stake units as quantities), or null if the node keeps none.
fn staking_account<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Addr(address) = p.required()?;
    let block: BlockId = p.optional()?.unwrap_or_default();
    let Some(block) = ctx.block(block)? else {
        return Err(CallError::header_not_found());
    };
    match ctx.api.staking_account(address, block.block.number())? {
        Some(account) => Ok(json!({
            "nonce": hex_u64(account.nonce),
            "bonded": hex_u64(account.bonded),
            "unbonding": hex_u64(account.unbonding),
            "releaseEpoch": hex_u64(account.release_epoch),
            "slashed": account.slashed,
        })),
        None => Ok(Value::Null),
    }
}

/// `chaind_validators()`: the validator set after the head (stakes in consensus units), or
/// null if the node runs no consensus engine.
fn validators<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    let Some(view) = ctx.api.validators() else {
        return Ok(Value::Null);
    };
    let list = |members: &[crate::api::ValidatorStake]| -> Value {
        members
            .iter()
            .map(|m| json!({ "address": m.address, "stake": hex_u64(m.stake) }))
            .collect()
    };
    Ok(json!({
        "blockNumber": hex_u64(view.block_number),
        "blockHash": view.block_hash,
        "epoch": hex_u64(view.epoch),
        "current": list(&view.current),
        "next": list(&view.next),
        "requested": list(&view.requested),
    }))
}

fn full_flag(p: &mut ParamReader) -> CallResult<bool> {
    Ok(p.optional::<bool>()?.unwrap_or(false))
}

fn get_block_by_number<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let tag: BlockTag = p.required()?;
    let full = full_flag(p)?;
    match ctx.block(BlockId::Tag(tag))? {
        Some(block) => to_json(convert::rpc_block(&block, full)),
        None => Ok(Value::Null),
    }
}

fn get_block_by_hash<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    let full = full_flag(p)?;
    match ctx.api.block_by_hash(hash)? {
        Some(block) => to_json(convert::rpc_block(&block, full)),
        None => Ok(Value::Null),
    }
}

fn tx_count(block: Option<Arc<IndexedBlock>>) -> Value {
    block.map_or(Value::Null, |b| {
        hex_u64(b.block.block().transactions.len() as u64)
    })
}

fn block_tx_count_by_number<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let tag: BlockTag = p.required()?;
    Ok(tx_count(ctx.block(BlockId::Tag(tag))?))
}

fn block_tx_count_by_hash<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    Ok(tx_count(ctx.api.block_by_hash(hash)?))
}

fn uncle_count_by_number<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let tag: BlockTag = p.required()?;
    Ok(ctx
        .block(BlockId::Tag(tag))?
        .map_or(Value::Null, |_| hex_u64(0)))
}

fn uncle_count_by_hash<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    Ok(ctx
        .api
        .block_by_hash(hash)?
        .map_or(Value::Null, |_| hex_u64(0)))
}

fn uncle_by_number<A: ChainApi>(_: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let _: BlockTag = p.required()?;
    let _: Quantity = p.required()?;
    Ok(Value::Null)
}

fn uncle_by_hash<A: ChainApi>(_: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let _: Hash = p.required()?;
    let _: Quantity = p.required()?;
    Ok(Value::Null)
}

/// A mined transaction: its block and index.
fn mined<A: ChainApi>(ctx: &Ctx<A>, hash: B256) -> CallResult<Option<(Arc<IndexedBlock>, usize)>> {
    let Some((number, index)) = ctx.api.transaction_location(hash)? else {
        return Ok(None);
    };
    Ok(ctx
        .api
        .block_by_number(number)?
        .filter(|b| b.tx_hashes.get(index) == Some(&hash))
        .map(|b| (b, index)))
}

fn get_transaction_by_hash<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    if let Some((block, index)) = mined(ctx, hash)? {
        return to_json(convert::block_transaction(&block, index));
    }
    match ctx.api.pool_transaction(hash) {
        Some(tx) => to_json(convert::pending_transaction(&tx)),
        None => Ok(Value::Null),
    }
}

fn get_raw_transaction_by_hash<A: ChainApi>(
    ctx: &Ctx<A>,
    p: &mut ParamReader,
) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    let tx = match mined(ctx, hash)? {
        Some((block, index)) => block.block.block().transactions.get(index).cloned(),
        None => ctx.api.pool_transaction(hash).map(|t| t.tx),
    };
    match tx {
        Some(tx) => to_json(alloy_primitives::Bytes::from(tx.encoded_2718())),
        None => Ok(Value::Null),
    }
}

fn tx_at(block: Option<Arc<IndexedBlock>>, index: u64) -> CallResult<Value> {
    let tx = block.and_then(|b| {
        usize::try_from(index)
            .ok()
            .and_then(|i| convert::block_transaction(&b, i))
    });
    to_json(tx)
}

fn tx_by_number_and_index<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let tag: BlockTag = p.required()?;
    let Quantity(index) = p.required()?;
    tx_at(ctx.block(BlockId::Tag(tag))?, index)
}

fn tx_by_hash_and_index<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    let Quantity(index) = p.required()?;
    tx_at(ctx.api.block_by_hash(hash)?, index)
}

fn get_transaction_receipt<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let Hash(hash) = p.required()?;
    let Some((block, index)) = mined(ctx, hash)? else {
        return Ok(Value::Null);
    };
    let Some(receipts) = ctx.api.receipts(block.block.number())? else {
        return Ok(Value::Null);
    };
    let first = first_log_indexes(&receipts)
        .get(index)
        .copied()
        .unwrap_or_default();
    to_json(convert::rpc_receipt(&block, &receipts, index, first))
}

fn get_block_receipts<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let id: BlockId = p.required()?;
    let Some(block) = ctx.block(id)? else {
        return Ok(Value::Null);
    };
    let Some(receipts) = ctx.api.receipts(block.block.number())? else {
        return Ok(Value::Null);
    };
    to_json(convert::rpc_receipts(&block, &receipts))
}

fn get_logs<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let criteria: FilterCriteria = p.required()?;
    to_json(logs::get_logs(&*ctx.api, &criteria, &ctx.config)?)
}

fn new_filter<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let criteria: FilterCriteria = p.required()?;
    let matcher = LogMatcher::new(&criteria, &ctx.config)?;
    let id = ctx
        .filters
        .new_log_filter(criteria, matcher, ctx.api.head_number())?;
    Ok(Value::String(id))
}

fn new_block_filter<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    Ok(Value::String(
        ctx.filters.new_block_filter(ctx.api.head_number())?,
    ))
}

fn new_pending_transaction_filter<A: ChainApi>(
    ctx: &Ctx<A>,
    _: &mut ParamReader,
) -> CallResult<Value> {
    Ok(Value::String(
        ctx.filters
            .new_pending_transaction_filter(ctx.api.head_number())?,
    ))
}

fn get_filter_changes<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let id: String = p.required()?;
    Ok(ctx.filters.changes(&id)?.into_json())
}

fn get_filter_logs<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let id: String = p.required()?;
    let criteria = ctx.filters.log_criteria(&id)?;
    to_json(logs::get_logs(&*ctx.api, &criteria, &ctx.config)?)
}

fn uninstall_filter<A: ChainApi>(ctx: &Ctx<A>, p: &mut ParamReader) -> CallResult<Value> {
    let id: String = p.required()?;
    Ok(Value::Bool(ctx.filters.uninstall(&id)))
}

fn txpool_status<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    let (pending, queued) = ctx.api.pool_status();
    Ok(json!({ "pending": hex_u64(pending as u64), "queued": hex_u64(queued as u64) }))
}

type PoolSection = BTreeMap<String, BTreeMap<String, alloy_rpc_types_eth::Transaction>>;

fn pool_section(section: &BTreeMap<Address, BTreeMap<u64, PoolTransaction>>) -> PoolSection {
    section
        .iter()
        .map(|(sender, txs)| {
            // geth keys senders by checksummed address and nonces by decimal string.
            let txs = txs
                .iter()
                .map(|(nonce, tx)| (nonce.to_string(), convert::pending_transaction(tx)))
                .collect();
            (sender.to_checksum(None), txs)
        })
        .collect()
}

fn txpool_content<A: ChainApi>(ctx: &Ctx<A>, _: &mut ParamReader) -> CallResult<Value> {
    let content = ctx.api.pool_content();
    Ok(json!({
        "pending": to_json(pool_section(&content.pending))?,
        "queued": to_json(pool_section(&content.queued))?,
    }))
}

/// The balance of `address` in `state` (zero for a missing account).
pub(crate) fn balance_of<S: StateReader>(state: &S, address: &Address) -> CallResult<U256> {
    Ok(state
        .account(address)
        .map_err(state_error)?
        .map(|a| a.balance)
        .unwrap_or_default())
}
