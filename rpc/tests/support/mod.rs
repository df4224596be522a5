//! A [`MockChain`] implementing [`ChainApi`] over in-memory data: blocks of real signed
//! transactions executed by chaind's sequential executor (so receipts, logs and blooms are
//! real), an in-memory pool, head and pending channels, and helpers to talk to a running
//! server over HTTP and WebSocket.

#![allow(dead_code, unreachable_pub)]

use alloy_consensus::{
    Header, SignableTransaction, TxEip1559, TxEnvelope, TxLegacy, transaction::SignerRecoverable,
};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address, b256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use chain_executor::{
    BlockEnv, CodeCache, ExecutionEnv, TxOutcome, execute_sequential, tx_env, workload,
};
use chain_primitives::{
    Account, Block, ConsensusSeal, InMemoryState, StateReader, StoredReceipt, receipts_root,
    transactions_root,
};
use chain_rpc::{
    ApiError, ChainApi, HeadEvent, Health, IndexedBlock, PoolContent, PoolRejection,
    PoolTransaction, RpcConfig, RpcHandle, SyncStatus,
};
use parking_lot::RwLock;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};
use tokio::sync::broadcast;

pub const CHAIN_ID: u64 = 31337;
pub const BASE_FEE: u64 = 1_000_000_000;
pub const GAS_LIMIT: u64 = 30_000_000;
pub const GENESIS_TIME: u64 = 1_700_000_000;
pub const ETH: u128 = 1_000_000_000_000_000_000;

/// The first account of the test mnemonic.
pub const DEV_KEY: B256 =
    b256!("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
pub const DEV: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
/// The second account of the test mnemonic.
pub const ALICE_KEY: B256 =
    b256!("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
pub const ALICE: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
pub const BOB: Address = address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
pub const POOR: Address = address!("0x00000000000000000000000000000000000000aa");
/// The ERC-20 token deployed in genesis.
pub const TOKEN: Address = address!("0x0000000000000000000000000000000000001000");
/// A contract that always reverts with `Error("nope")`.
pub const REVERTER: Address = address!("0x0000000000000000000000000000000000002000");
pub const BENEFICIARY: Address = address!("0x00000000000000000000000000000000000000be");

/// `Error("nope")` as Solidity encodes it.
pub fn nope_revert_data() -> Bytes {
    let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
    data.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(4).to_be_bytes::<32>());
    let mut reason = b"nope".to_vec();
    reason.resize(32, 0);
    data.extend_from_slice(&reason);
    data.into()
}

/// Runtime code that reverts with [`nope_revert_data`]: CODECOPY the data appended after the
/// 12 code bytes into memory, then REVERT with it.
pub fn reverter_code() -> Bytes {
    let data = nope_revert_data();
    let len = data.len() as u8;
    let mut code = vec![
        0x60, len, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xfd,
    ];
    code.extend_from_slice(&data);
    code.into()
}

/// Runtime code returning the NUMBER opcode's value as a 32-byte word.
pub fn block_number_code() -> Bytes {
    Bytes::from(vec![0x43, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3])
}

/// Runtime code that loops forever (JUMPDEST; PUSH1 0; JUMP).
pub fn infinite_loop_code() -> Bytes {
    Bytes::from(vec![0x5b, 0x60, 0x00, 0x56])
}

struct Chain {
    blocks: Vec<Arc<IndexedBlock>>,
    receipts: Vec<Arc<Vec<StoredReceipt>>>,
    states: Vec<Arc<InMemoryState>>,
    tx_index: HashMap<B256, (u64, usize)>,
    pool: BTreeMap<B256, PoolTransaction>,
    healthy: bool,
    syncing: Option<SyncStatus>,
}

/// An in-memory chain behind [`ChainApi`].
pub struct MockChain {
    chain: RwLock<Chain>,
    heads: broadcast::Sender<HeadEvent>,
    pending: broadcast::Sender<B256>,
    codes: Arc<CodeCache>,
}

fn genesis_state() -> InMemoryState {
    let mut state = InMemoryState::new();
    for account in [DEV, ALICE, BOB] {
        state.insert_account(account, Account::with_balance(U256::from(10_000 * ETH)));
    }
    state.insert_code(TOKEN, workload::erc20_runtime());
    state.insert_storage(
        TOKEN,
        workload::erc20_balance_slot(DEV),
        U256::from(1_000_000 * ETH),
    );
    state.insert_storage(TOKEN, U256::from(2), U256::from(1_000_000 * ETH));
    state.insert_code(REVERTER, reverter_code());
    state
}

fn block_env(header: &Header) -> BlockEnv {
    BlockEnv {
        number: header.number,
        timestamp: header.timestamp,
        base_fee: header.base_fee_per_gas.unwrap_or_default(),
        prevrandao: header.mix_hash,
        gas_limit: header.gas_limit,
        beneficiary: header.beneficiary,
        chain_id: CHAIN_ID,
    }
}

impl MockChain {
    /// A chain with its genesis block and a broadcast capacity of `capacity` events.
    pub fn with_capacity(capacity: usize) -> Arc<Self> {
        let genesis_header = Header {
            number: 0,
            timestamp: GENESIS_TIME,
            gas_limit: GAS_LIMIT,
            base_fee_per_gas: Some(BASE_FEE),
            beneficiary: BENEFICIARY,
            transactions_root: transactions_root(&[]),
            receipts_root: receipts_root(&[]),
            ..Header::default()
        };
        let genesis = index_block(
            Block {
                header: genesis_header,
                transactions: vec![],
                seal: ConsensusSeal::default(),
            },
            vec![],
        );
        let (heads, _) = broadcast::channel(capacity);
        let (pending, _) = broadcast::channel(capacity);
        Arc::new(Self {
            chain: RwLock::new(Chain {
                blocks: vec![Arc::new(genesis)],
                receipts: vec![Arc::new(vec![])],
                states: vec![Arc::new(genesis_state())],
                tx_index: HashMap::new(),
                pool: BTreeMap::new(),
                healthy: true,
                syncing: None,
            }),
            heads,
            pending,
            codes: Arc::new(CodeCache::default()),
        })
    }

    /// A chain with genesis only.
    pub fn new() -> Arc<Self> {
        Self::with_capacity(1024)
    }

    /// The standard fixture: genesis, then
    /// 1: token transfer DEV→ALICE (100) and an ether transfer DEV→BOB;
    /// 2: token transfers DEV→BOB (5) and DEV→ALICE (7), and ALICE→BOB ether;
    /// 3: empty.
    pub fn fixture() -> Arc<Self> {
        let chain = Self::new();
        let dev = signer(DEV_KEY);
        let alice = signer(ALICE_KEY);
        chain.produce(vec![
            sign_1559(
                &dev,
                0,
                TOKEN,
                U256::ZERO,
                workload::erc20_transfer_calldata(ALICE, U256::from(100)),
                100_000,
                2_000_000_000,
            ),
            sign_1559(
                &dev,
                1,
                BOB,
                U256::from(ETH),
                Bytes::new(),
                21_000,
                3_000_000_000,
            ),
        ]);
        chain.produce(vec![
            sign_1559(
                &dev,
                2,
                TOKEN,
                U256::ZERO,
                workload::erc20_transfer_calldata(BOB, U256::from(5)),
                100_000,
                2_000_000_000,
            ),
            sign_1559(
                &dev,
                3,
                TOKEN,
                U256::ZERO,
                workload::erc20_transfer_calldata(ALICE, U256::from(7)),
                100_000,
                2_000_000_000,
            ),
            sign_legacy(&alice, 0, BOB, U256::from(1000), 21_000, 5_000_000_000),
        ]);
        chain.produce(vec![]);
        chain
    }

    /// Executes `txs` on the head state and appends the block; announces it on the head channel.
    /// Every transaction must be valid.
    pub fn produce(&self, txs: Vec<TxEnvelope>) -> Arc<IndexedBlock> {
        self.build(txs, true)
    }

    /// Mines the pool's transactions (by sender and nonce) into a block, leaving out those that
    /// cannot run. The `mock_node` example's block production.
    pub fn mine_pool(&self) -> Arc<IndexedBlock> {
        let mut txs: Vec<PoolTransaction> = self.chain.read().pool.values().cloned().collect();
        txs.sort_by_key(|t| (t.sender, alloy_consensus::Transaction::nonce(&t.tx)));
        self.build(txs.into_iter().map(|t| t.tx).collect(), false)
    }

    fn build(&self, txs: Vec<TxEnvelope>, strict: bool) -> Arc<IndexedBlock> {
        let mut chain = self.chain.write();
        let parent = chain.blocks.last().expect("genesis exists").clone();
        let parent_state = chain.states.last().expect("genesis state").clone();
        let number = parent.block.number() + 1;
        let header_env = Header {
            parent_hash: parent.block.hash(),
            number,
            timestamp: GENESIS_TIME + number * 2,
            gas_limit: GAS_LIMIT,
            base_fee_per_gas: Some(BASE_FEE),
            beneficiary: BENEFICIARY,
            mix_hash: B256::with_last_byte(number as u8),
            ..Header::default()
        };
        let senders: Vec<Address> = txs
            .iter()
            .map(|tx| tx.recover_signer().expect("signed"))
            .collect();
        let tx_envs: Vec<_> = txs
            .iter()
            .zip(&senders)
            .map(|(tx, s)| tx_env(tx, *s).expect("supported type"))
            .collect();
        let env = ExecutionEnv::new(block_env(&header_env));
        let output =
            execute_sequential(&*parent_state, &env, &tx_envs, &self.codes).expect("execution");
        // A skipped transaction changes nothing: the block is the included ones.
        let mut receipts = Vec::new();
        let mut included = Vec::new();
        let mut included_senders = Vec::new();
        for ((outcome, tx), sender) in output.outcomes.iter().zip(txs).zip(senders) {
            match outcome {
                TxOutcome::Included(r) => {
                    receipts.push(StoredReceipt {
                        tx_type: r.tx_type,
                        success: r.success(),
                        cumulative_gas_used: r.cumulative_gas_used,
                        gas_used: r.gas_used,
                        effective_gas_price: r.effective_gas_price,
                        contract_address: r.contract_address.unwrap_or_default(),
                        logs: r.logs.clone(),
                    });
                    included.push(tx);
                    included_senders.push(sender);
                }
                TxOutcome::Skipped(reason) if strict => {
                    panic!("fixture transaction skipped: {reason}")
                }
                TxOutcome::Skipped(_) => {}
            }
        }
        let (txs, senders) = (included, included_senders);
        let header = Header {
            transactions_root: transactions_root(&txs),
            receipts_root: receipts_root(&receipts),
            logs_bloom: output.logs_bloom,
            gas_used: output.gas_used,
            ..header_env
        };
        let mut state = (*parent_state).clone();
        state.apply(&output.diff);
        state.insert_block_hash(parent.block.number(), parent.block.hash());
        let block = Arc::new(index_block(
            Block {
                header,
                transactions: txs,
                seal: ConsensusSeal::default(),
            },
            senders,
        ));
        for (i, hash) in block.tx_hashes.iter().enumerate() {
            chain.tx_index.insert(*hash, (number, i));
            chain.pool.remove(hash);
        }
        let receipts = Arc::new(receipts);
        chain.blocks.push(block.clone());
        chain.receipts.push(receipts.clone());
        chain.states.push(Arc::new(state));
        drop(chain);
        let _ = self.heads.send(HeadEvent {
            block: block.clone(),
            receipts,
            removed: false,
        });
        block
    }

    /// Removes the head block from the canonical chain and announces it as removed.
    pub fn revert_head(&self) -> Arc<IndexedBlock> {
        let mut chain = self.chain.write();
        assert!(chain.blocks.len() > 1, "cannot revert genesis");
        let block = chain.blocks.pop().expect("head");
        let receipts = chain.receipts.pop().expect("head receipts");
        chain.states.pop();
        for hash in &block.tx_hashes {
            chain.tx_index.remove(hash);
        }
        drop(chain);
        let _ = self.heads.send(HeadEvent {
            block: block.clone(),
            receipts,
            removed: true,
        });
        block
    }

    /// Publishes an already-built head event (for flooding subscribers).
    pub fn publish(&self, event: HeadEvent) {
        let _ = self.heads.send(event);
    }

    /// The head block and its receipts as an event.
    pub fn head_event(&self) -> HeadEvent {
        let chain = self.chain.read();
        HeadEvent {
            block: chain.blocks.last().expect("head").clone(),
            receipts: chain.receipts.last().expect("receipts").clone(),
            removed: false,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.chain.write().healthy = healthy;
    }

    pub fn set_syncing(&self, syncing: Option<SyncStatus>) {
        self.chain.write().syncing = syncing;
    }

    pub fn block(&self, number: u64) -> Arc<IndexedBlock> {
        self.chain.read().blocks[number as usize].clone()
    }

    pub fn receipts_of(&self, number: u64) -> Arc<Vec<StoredReceipt>> {
        self.chain.read().receipts[number as usize].clone()
    }

    fn nonce(&self, address: Address) -> u64 {
        let chain = self.chain.read();
        chain
            .states
            .last()
            .expect("state")
            .account(&address)
            .expect("infallible")
            .map_or(0, |a| a.nonce)
    }
}

fn index_block(block: Block, senders: Vec<Address>) -> IndexedBlock {
    let tx_hashes = block.transactions.iter().map(|tx| *tx.tx_hash()).collect();
    let size = block.size();
    IndexedBlock {
        block: block.seal_slow(),
        senders,
        tx_hashes,
        size,
    }
}

pub fn signer(key: B256) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&key).expect("valid key")
}

/// An EIP-1559 transaction with a 1 gwei tip.
pub fn sign_1559(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    value: U256,
    input: Bytes,
    gas_limit: u64,
    max_fee: u128,
) -> TxEnvelope {
    sign_1559_tip(
        signer,
        nonce,
        TxKind::Call(to),
        value,
        input,
        gas_limit,
        max_fee,
        1_000_000_000,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn sign_1559_tip(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
    max_fee: u128,
    tip: u128,
) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to,
        value,
        input,
        access_list: Default::default(),
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).expect("sign");
    TxEnvelope::from(tx.into_signed(signature))
}

pub fn sign_legacy(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    value: U256,
    gas_limit: u64,
    gas_price: u128,
) -> TxEnvelope {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce,
        gas_price,
        gas_limit,
        to: TxKind::Call(to),
        value,
        input: Bytes::new(),
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).expect("sign");
    TxEnvelope::from(tx.into_signed(signature))
}

fn rejection(message: &str) -> PoolRejection {
    PoolRejection {
        code: -32000,
        message: message.to_owned(),
    }
}

impl ChainApi for MockChain {
    type State = Arc<InMemoryState>;

    fn chain_id(&self) -> u64 {
        CHAIN_ID
    }

    fn client_version(&self) -> String {
        "chaind/v0.1.0-test".to_owned()
    }

    fn head_number(&self) -> u64 {
        self.chain.read().blocks.len() as u64 - 1
    }

    fn safe_number(&self) -> u64 {
        self.head_number().saturating_sub(1)
    }

    fn finalized_number(&self) -> u64 {
        self.head_number().saturating_sub(1)
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Arc<IndexedBlock>>, ApiError> {
        Ok(self.chain.read().blocks.get(number as usize).cloned())
    }

    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<IndexedBlock>>, ApiError> {
        Ok(self
            .chain
            .read()
            .blocks
            .iter()
            .find(|b| b.block.hash() == hash)
            .cloned())
    }

    fn receipts(&self, number: u64) -> Result<Option<Arc<Vec<StoredReceipt>>>, ApiError> {
        Ok(self.chain.read().receipts.get(number as usize).cloned())
    }

    fn transaction_location(&self, hash: B256) -> Result<Option<(u64, usize)>, ApiError> {
        Ok(self.chain.read().tx_index.get(&hash).copied())
    }

    fn state_at(&self, number: u64) -> Result<Self::State, ApiError> {
        self.chain
            .read()
            .states
            .get(number as usize)
            .cloned()
            .ok_or(ApiError::BlockNotFound)
    }

    fn next_block_env(&self, parent: &Header) -> ExecutionEnv {
        ExecutionEnv::new(BlockEnv {
            number: parent.number + 1,
            timestamp: parent.timestamp + 2,
            base_fee: self.next_base_fee(),
            prevrandao: B256::ZERO,
            gas_limit: GAS_LIMIT,
            beneficiary: BENEFICIARY,
            chain_id: CHAIN_ID,
        })
    }

    fn block_env(&self, header: &Header) -> ExecutionEnv {
        ExecutionEnv::new(block_env(header))
    }

    fn code_cache(&self) -> Arc<CodeCache> {
        self.codes.clone()
    }

    fn next_base_fee(&self) -> u64 {
        BASE_FEE
    }

    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, PoolRejection> {
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(|e| PoolRejection {
            code: -32602,
            message: format!("rlp: {e}"),
        })?;
        let sender = tx
            .recover_signer()
            .map_err(|_| rejection("invalid sender"))?;
        let hash = *tx.tx_hash();
        {
            let chain = self.chain.read();
            if chain.pool.contains_key(&hash) || chain.tx_index.contains_key(&hash) {
                return Err(rejection("already known"));
            }
        }
        if alloy_consensus::Transaction::nonce(&tx) < self.nonce(sender) {
            return Err(rejection("nonce too low"));
        }
        self.chain
            .write()
            .pool
            .insert(hash, PoolTransaction { tx, sender });
        let _ = self.pending.send(hash);
        Ok(hash)
    }

    fn pool_transaction(&self, hash: B256) -> Option<PoolTransaction> {
        self.chain.read().pool.get(&hash).cloned()
    }

    fn pending_nonce(&self, address: Address) -> Option<u64> {
        let mut nonce = self.nonce(address);
        let chain = self.chain.read();
        let mut nonces: Vec<u64> = chain
            .pool
            .values()
            .filter(|t| t.sender == address)
            .map(|t| alloy_consensus::Transaction::nonce(&t.tx))
            .collect();
        nonces.sort_unstable();
        for n in nonces {
            if n == nonce {
                nonce += 1;
            }
        }
        Some(nonce)
    }

    fn pool_status(&self) -> (usize, usize) {
        (self.chain.read().pool.len(), 0)
    }

    fn pool_content(&self) -> PoolContent {
        let mut content = PoolContent::default();
        for tx in self.chain.read().pool.values() {
            content
                .pending
                .entry(tx.sender)
                .or_default()
                .insert(alloy_consensus::Transaction::nonce(&tx.tx), tx.clone());
        }
        content
    }

    fn subscribe_heads(&self) -> broadcast::Receiver<HeadEvent> {
        self.heads.subscribe()
    }

    fn subscribe_pending_transactions(&self) -> broadcast::Receiver<B256> {
        self.pending.subscribe()
    }

    fn syncing(&self) -> Option<SyncStatus> {
        self.chain.read().syncing
    }

    fn peer_count(&self) -> usize {
        3
    }

    fn health(&self) -> Health {
        let head = self.head_number();
        Health {
            head_number: head,
            head_age_ms: 1500,
            healthy: self.chain.read().healthy,
        }
    }

    fn accounts(&self) -> Vec<Address> {
        vec![DEV, ALICE]
    }
}

/// A test configuration: ephemeral port, any host, everything else default.
pub fn test_config() -> RpcConfig {
    RpcConfig {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        allowed_hosts: vec!["*".to_owned()],
        ..RpcConfig::default()
    }
}

/// A running server over `chain`.
pub struct Harness {
    pub chain: Arc<MockChain>,
    pub handle: RpcHandle,
    pub url: String,
    pub ws_url: String,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(chain: Arc<MockChain>, config: RpcConfig) -> Self {
        let handle = chain_rpc::start(config, chain.clone())
            .await
            .expect("server starts");
        let addr = handle.http_addr();
        Self {
            chain,
            url: format!("http://{addr}"),
            ws_url: format!("ws://{addr}"),
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub async fn fixture() -> Self {
        Self::start(MockChain::fixture(), test_config()).await
    }

    /// Posts a raw body; returns the HTTP status and the parsed JSON body.
    pub async fn post_raw(&self, body: impl Into<String>) -> (u16, Value) {
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.into())
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The whole JSON-RPC response of one call.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, response) = self.post_raw(body.to_string()).await;
        assert_eq!(status, 200, "{method}: {response}");
        response
    }

    /// The `result` of a call that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    /// The `error` of a call that must fail.
    pub async fn err(&self, method: &str, params: Value) -> Value {
        let response = self.call(method, params).await;
        assert!(
            response.get("error").is_some(),
            "{method} should fail: {response}"
        );
        response["error"].clone()
    }
}

/// `0x`-hex of a number.
pub fn hex(n: u64) -> String {
    format!("{n:#x}")
}

/// The raw EIP-2718 bytes of a transaction, hex.
pub fn raw_hex(tx: &TxEnvelope) -> String {
    format!("0x{}", alloy_primitives::hex::encode(tx.encoded_2718()))
}

/// Parses a hex quantity of a response.
pub fn quantity(value: &Value) -> u128 {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("not a quantity: {value}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex quantity")
}
