//! The node: opens the database, creates the genesis block on first start, produces blocks
//! (one validator) or imports blocks from elsewhere, and serves all of it to RPC through
//! [`ChainApi`].
//!
//! # Finality
//!
//! A validator node's [`consensus::BlockProducer`] drives the consensus engine
//! ([`chain_consensus::ConsensusEngine`]): it ticks the engine's clock at every slot start and
//! vote deadline, builds the blocks the engine asks for, and records what the engine finalizes.
//! A block is final once votes of more than 2/3 of stake link it to its child (the two-chain
//! rule); with one validator that is at the child's vote deadline, so `finalized` trails the
//! head by one block (by two between a slot's start and its vote deadline), and `safe` is the
//! highest justified block (the head once it has its vote). RPC reads both from memory;
//! the database's copy of the finalized number is written with the next block (it can trail
//! by a block after a crash, which the consensus checkpoint file makes up for on restart).
//! Blocks that do not go through the engine ([`Node::import_block`], [`Node::produce_block`])
//! are final as soon as they are committed.
//!
//! A validator keeps two files next to the database: `slashing-protection.json` (what it
//! signed; written durably before anything signed is published, and never reset: the node
//! refuses to start when it is corrupt) and `consensus-checkpoint.json` (the last finalized
//! block with its consensus state, from which the engine restarts).
//!
//! # Staking
//!
//! Signed staking operations come in through RPC (`chaind_sendStakingOp`) into the node's
//! [`staking::StakingOpPool`] (one per validator, with its next nonce, checked against the
//! head's ledger and consensus state); the block producer includes those the engine and the
//! staking rule accept and drops those they refuse, and a committed block's operations leave
//! the pool (there is no reorg path in this single-validator build to return them). The rule
//! that moves deposits to and from the staking escrow runs inside block execution, for built
//! and imported blocks alike: see [`staking`].

/// Blocks, receipts and indexes in the database.
pub mod chain;
/// The block producer driven by the consensus engine, and its files.
pub mod consensus;
/// Building, validating and committing blocks.
pub mod execution;
/// The node's use of the transaction pool.
pub mod pool;
/// Staking in the EVM state: the escrow rule and the staking-operation pool.
pub mod staking;

pub use pool::apply_limits as apply_pool_limits;

use crate::node::{
    chain::ChainStore,
    execution::{
        ChainSpec, ExecutedBlock, ValidationFailure, block_env, build_block, child_env, commit,
        next_base_fee, randao_reveal, validate_and_execute,
    },
};
use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use chain_consensus::{ChainState, Checkpoint, ConsensusConfig, SignatureCache};
use chain_executor::{CodeCache, ExecutionEnv, ExecutionMode, Executor};
use chain_primitives::{
    Block, ChainGenesis, ConsensusSeal, StoredReceipt, receipts_root, transactions_root,
};
use chain_rpc::{
    ApiError, ChainApi, HeadEvent, Health, IndexedBlock, PoolContent, PoolRejection,
    PoolTransaction, StakingAccountView, SyncStatus, ValidatorStake, ValidatorsView,
};
use chain_state::{HistoricalReader, StateConfig, StateDb};
use chain_txpool::{PoolConfig, TxPool};
use parking_lot::RwLock;
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::sync::broadcast;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the database lives.
    pub datadir: PathBuf,
    /// The chain's genesis (used to create the database; checked against it afterwards).
    pub genesis: ChainGenesis,
    /// The key this node proposes blocks with, if it is a validator.
    pub validator_key: Option<PrivateKeySigner>,
    /// How blocks are executed.
    pub execution: ExecutionMode,
    /// State retention and caches.
    pub state: StateConfig,
    /// Pool limits.
    pub pool: PoolConfig,
    /// Accounts `eth_accounts` lists (dev mode).
    pub dev_accounts: Vec<Address>,
    /// The software version string for `web3_clientVersion`.
    pub client_version: String,
}

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct NodeInner {
    spec: ChainSpec,
    /// Slot timing (the single source of it) and the other consensus parameters.
    consensus: ConsensusConfig,
    /// The genesis validator set (the producer checks that it is this node alone).
    genesis_validators: Vec<chain_primitives::GenesisValidator>,
    /// Where the database and the validator's consensus files live.
    datadir: PathBuf,
    chain: ChainStore,
    pool: TxPool,
    executor: Executor,
    codes: Arc<CodeCache>,
    head: RwLock<Arc<IndexedBlock>>,
    heads: broadcast::Sender<HeadEvent>,
    validator: Option<PrivateKeySigner>,
    dev_accounts: Vec<Address>,
    client_version: String,
    last_block_produced_ms: AtomicU64,
    /// The latest finalized block number (what RPC's "finalized" reads).
    finalized: AtomicU64,
    /// The latest justified block number (what RPC's "safe" reads).
    safe: AtomicU64,
    /// Serializes block commits: production and imports never interleave.
    commit_lock: parking_lot::Mutex<()>,
    /// Staking operations waiting for a block.
    staking_pool: staking::StakingOpPool,
    /// Verified signatures of staking operations (shared by the pool's checks).
    signatures: SignatureCache,
    /// The consensus state after the head, as the block producer's engine last saw it.
    consensus_view: RwLock<Option<(Checkpoint, ChainState)>>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("head", &self.head_number())
            .finish_non_exhaustive()
    }
}

/// What producing one slot did.
#[derive(Clone, Debug)]
pub struct ProducedBlock {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Transactions included.
    pub transactions: usize,
    /// Gas used.
    pub gas_used: u64,
    /// Execution time in microseconds.
    pub execution_us: u64,
    /// Whole slot work (build, execute, commit) in microseconds.
    pub total_us: u64,
}

impl Node {
    /// Opens (or creates) the node's database and loads its head.
    pub fn open(config: NodeConfig) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&config.datadir).with_context(|| {
            format!("cannot create data directory {}", config.datadir.display())
        })?;
        let db = StateDb::open(config.datadir.join("db"), config.state.clone())
            .with_context(|| format!("cannot open the database in {}", config.datadir.display()))?;
        let chain = ChainStore::new(db.clone());
        let genesis_json = serde_json::to_vec(&config.genesis)?;
        // The staking rule's parameters are the consensus ones, which do not depend on the
        // genesis time (known only once the genesis block exists).
        let mut staking_config = ConsensusConfig::new(
            config.genesis.chain_id(),
            0,
            config.genesis.consensus.block_time.0,
        );
        staking_config.epoch_slots = config.genesis.consensus.epoch_length;
        let spec = ChainSpec {
            chain_id: config.genesis.chain_id(),
            block_time_ms: config.genesis.consensus.block_time.0,
            gas_limit: config.genesis.eth.gas_limit,
            max_extra_data: 32,
            staking: staking::StakingParams::of(&staking_config),
        };
        if db.latest().is_none() {
            init_genesis(&chain, &config.genesis, &genesis_json)?;
        } else if let Some(stored) = chain.genesis_json()? {
            let stored: ChainGenesis =
                serde_json::from_slice(&stored).context("stored genesis is corrupt")?;
            anyhow::ensure!(
                stored.eth.alloc == config.genesis.eth.alloc
                    && stored.chain_id() == config.genesis.chain_id(),
                "the database in {} holds a different chain (chain id {}); use another --datadir",
                config.datadir.display(),
                stored.chain_id()
            );
        }
        let (head_number, _) = db.latest().context("database has no head after genesis")?;
        let head = chain
            .block(head_number)?
            .context("head block missing from the database")?;
        let genesis_block = chain.block(0)?.context("genesis block missing")?;
        let genesis_time_ms = genesis_block.block.header().timestamp.saturating_mul(1000);
        let mut consensus =
            ConsensusConfig::new(spec.chain_id, genesis_time_ms, spec.block_time_ms);
        consensus.epoch_slots = config.genesis.consensus.epoch_length;
        consensus
            .validate()
            .context("the genesis' consensus parameters are unusable")?;
        let finalized = chain.finalized()?.unwrap_or(0).min(head_number);
        let executor = Executor::new(config.execution);
        let codes = executor.code_cache();
        let mut pool_config = config.pool.clone();
        pool_config.chain_id = spec.chain_id;
        pool_config.block_gas_limit = spec.gas_limit;
        let pool = TxPool::new(pool_config);
        pool.set_base_fee(next_base_fee(head.block.header()));
        let (heads, _) = broadcast::channel(1024);
        let inner = NodeInner {
            spec,
            consensus,
            genesis_validators: config.genesis.consensus.validators.clone(),
            datadir: config.datadir.clone(),
            chain,
            pool,
            executor,
            codes,
            head: RwLock::new(head),
            heads,
            validator: config.validator_key,
            dev_accounts: config.dev_accounts,
            client_version: config.client_version,
            last_block_produced_ms: AtomicU64::new(now_ms()),
            finalized: AtomicU64::new(finalized),
            safe: AtomicU64::new(finalized),
            commit_lock: parking_lot::Mutex::new(()),
            staking_pool: staking::StakingOpPool::default(),
            signatures: SignatureCache::default(),
            consensus_view: RwLock::new(None),
        };
        Ok(Node {
            inner: Arc::new(inner),
        })
    }

    /// The head block number.
    pub fn head_number(&self) -> u64 {
        self.inner.head.read().block.number()
    }

    /// The head block.
    pub fn head(&self) -> Arc<IndexedBlock> {
        self.inner.head.read().clone()
    }

    /// The chain parameters.
    pub fn spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    /// The transaction pool.
    pub fn pool(&self) -> &TxPool {
        &self.inner.pool
    }

    /// The chain data.
    pub fn chain(&self) -> &ChainStore {
        &self.inner.chain
    }

    /// The consensus parameters (slot timing included).
    pub fn consensus_config(&self) -> &ConsensusConfig {
        &self.inner.consensus
    }

    /// The data directory.
    pub fn datadir(&self) -> &std::path::Path {
        &self.inner.datadir
    }

    /// Staking operations waiting for a block.
    pub fn staking_pool(&self) -> &staking::StakingOpPool {
        &self.inner.staking_pool
    }

    /// Records the consensus state after the head (the block producer calls it after every
    /// batch of engine actions) for RPC and for checking incoming staking operations.
    pub(crate) fn publish_consensus_view(&self, head: Checkpoint, state: &ChainState) {
        let mut view = self.inner.consensus_view.write();
        if view.as_ref().is_none_or(|(known, _)| *known != head) {
            *view = Some((head, state.clone()));
        }
    }

    /// Checks a staking operation against the consensus state after the head, where the
    /// producer has published one, as consensus checks an operation for the next block: the
    /// validator's next nonce (consensus's, which agrees with the ledger's on a chain that went
    /// through the engine), not slashed, a join only of a non-validator and a stake change or
    /// leave only of a validator, the minimum stake, a RANDAO anchor not too far ahead. Only
    /// what could go into the next block is pooled (see [`staking::StakingOpPool`]). Signature
    /// and chain id are checked by the pool; so are the ledger's nonce and the deposit.
    fn check_against_consensus(&self, op: &chain_consensus::SignedStakingOp) -> Result<(), String> {
        let view = self.inner.consensus_view.read();
        let Some((_, state)) = view.as_ref() else {
            return Ok(());
        };
        let validator = op.op.validator;
        if state.is_slashed(validator) {
            return Err(format!("validator {validator} was slashed"));
        }
        let next = state.op_nonce(validator);
        if op.op.nonce != next {
            return Err(format!(
                "nonce {}, the validator's next is {next}",
                op.op.nonce
            ));
        }
        use chain_consensus::StakingOpKind;
        let active = state.is_active(validator);
        match op.op.kind {
            StakingOpKind::Join { .. } if active => {
                return Err(format!("{validator} is already a validator"));
            }
            StakingOpKind::SetStake { .. } | StakingOpKind::Leave if !active => {
                return Err(format!("{validator} is not a validator"));
            }
            _ => {}
        }
        if let StakingOpKind::Join { stake, .. } | StakingOpKind::SetStake { stake } = op.op.kind {
            let minimum = self.inner.consensus.min_stake;
            if stake < minimum {
                return Err(format!("stake {stake} is below the minimum {minimum}"));
            }
        }
        if let StakingOpKind::Join { randao_anchor, .. } = op.op.kind {
            // Consensus takes anchors at most two epochs ahead of the including block's; the
            // next block is in the current epoch or later.
            let epoch = (self.inner.consensus)
                .epoch_of(self.slot_at(now_ms()))
                .max(state.epoch());
            if randao_anchor.epoch > epoch.saturating_add(2) {
                return Err(format!(
                    "RANDAO anchor of epoch {} is too far ahead of epoch {epoch}",
                    randao_anchor.epoch
                ));
            }
        }
        Ok(())
    }

    /// Builds, executes and commits the block of `slot` from the pool, outside consensus: the
    /// block is final as soon as it is committed. For tests and tools that want blocks on demand
    /// (requires a validator key); never use it on a node whose [`consensus::BlockProducer`]
    /// runs, since it signs without the engine's slashing protection.
    pub fn produce_block(&self, slot: u64) -> anyhow::Result<ProducedBlock> {
        let started = std::time::Instant::now();
        let inner = &*self.inner;
        let signer = inner
            .validator
            .as_ref()
            .context("this node has no validator key")?;
        let _commit = inner.commit_lock.lock();
        let parent = self.head();
        let base_fee = next_base_fee(parent.block.header());
        let candidates = pool::best_for_block(&inner.pool, base_fee, inner.spec.gas_limit);
        let timestamp = (now_ms() / 1000).max(parent.block.header().timestamp);
        let executed = build_block(
            &inner.spec,
            inner.chain.db(),
            &inner.executor,
            &parent,
            candidates,
            timestamp,
            slot,
            randao_reveal(signer, inner.spec.chain_id, slot),
            signer,
            // Outside the engine there is no validator set to check operations against: such
            // blocks carry no consensus payload, hence no evidence and no staking operations.
            &[],
            &[],
        )?;
        for (hash, reason) in &executed.skipped {
            tracing::debug!(%hash, %reason, "left a pool transaction out of the block");
        }
        let dropped: Vec<B256> = executed.skipped.iter().map(|(hash, _)| *hash).collect();
        pool::remove_invalid(&inner.pool, &dropped);
        self.commit_executed(&executed, true)?;
        let header = executed.block.block.header();
        Ok(ProducedBlock {
            number: header.number,
            hash: executed.block.block.hash(),
            transactions: executed.block.tx_hashes.len(),
            gas_used: header.gas_used,
            execution_us: executed.execution_us,
            total_us: started.elapsed().as_micros() as u64,
        })
    }

    /// Validates `block` on the head and commits it; changes nothing if it is invalid.
    pub fn import_block(&self, block: Block) -> Result<B256, ValidationFailure> {
        let inner = &*self.inner;
        let _commit = inner.commit_lock.lock();
        let head = self.head();
        let executed = validate_and_execute(
            &inner.spec,
            inner.chain.db(),
            &inner.executor,
            &head,
            block,
            now_ms() / 1000,
        )?;
        self.commit_executed(&executed, true)
            .map_err(|e| ValidationFailure::Internal(e.to_string()))?;
        Ok(executed.block.block.hash())
    }

    /// Commits an executed block as the new head. `final_on_commit` marks it finalized at once
    /// (blocks that do not go through the consensus engine); otherwise the engine's finality
    /// known so far is stored with it, and the engine moves finality on through
    /// [`Node::raise_finality`].
    fn commit_executed(
        &self,
        executed: &ExecutedBlock,
        final_on_commit: bool,
    ) -> anyhow::Result<()> {
        let inner = &*self.inner;
        let number = executed.block.block.number();
        let finalized = if final_on_commit {
            number
        } else {
            inner.finalized.load(Ordering::Acquire)
        };
        // The finalized number rides in the block's atomic batch: the chain data has no
        // separate metadata write.
        commit(
            &inner.chain,
            executed,
            vec![ChainStore::finalized_write(finalized)],
        )?;
        for (hash, code) in &executed.diff.codes {
            inner.codes.insert(
                *hash,
                chain_executor::revm::state::Bytecode::new_raw(code.clone()),
            );
        }
        *inner.head.write() = executed.block.clone();
        inner
            .last_block_produced_ms
            .store(now_ms(), Ordering::Relaxed);
        let header = executed.block.block.header();
        let head_state = inner.chain.db().reader();
        // The accounts whose nonce or balance the block changed: its transactions' senders,
        // and those the staking rule debited, paid back or rewarded (their queued transactions
        // may have become payable, or their pending ones unpayable).
        let changed: Vec<Address> = executed
            .block
            .senders
            .iter()
            .chain(&executed.staking_touched)
            .copied()
            .collect();
        pool::on_new_block(&inner.pool, &changed, &head_state, next_base_fee(header));
        // Included operations, and any others the new head makes unincludable, leave the pool.
        inner.staking_pool.prune(&head_state);
        // No subscriber is fine: send fails only when nobody listens.
        let _ = inner.heads.send(HeadEvent {
            block: executed.block.clone(),
            receipts: executed.receipts.clone(),
            removed: false,
        });
        metrics::gauge!("chaind_head_block").set(number as f64);
        if final_on_commit {
            self.raise_finality(number, number);
        }
        metrics::histogram!("chaind_block_execution_seconds")
            .record(executed.execution_us as f64 / 1e6);
        metrics::counter!("chaind_transactions_total")
            .increment(executed.block.tx_hashes.len() as u64);
        if let Some(stats) = &executed.parallel {
            let txs = executed.block.tx_hashes.len().max(1) as f64;
            metrics::gauge!("chaind_execution_executions_per_tx")
                .set(stats.executions as f64 / txs);
            if stats.run_us > 0 {
                // Average number of workers busy in the EVM during the run: the speedup over
                // one worker, before Block-STM's own bookkeeping.
                metrics::gauge!("chaind_execution_parallelism")
                    .set(stats.busy_us as f64 / stats.run_us as f64);
            }
            if stats.fallback.is_some() {
                metrics::counter!("chaind_execution_sequential_fallbacks_total").increment(1);
            }
        }
        let (pending, queued) = pool::counts(&inner.pool);
        metrics::gauge!("chaind_txpool_pending").set(pending as f64);
        metrics::gauge!("chaind_txpool_queued").set(queued as f64);
        Ok(())
    }

    /// Moves the finalized and safe (justified) block numbers up; they never go down.
    pub(crate) fn raise_finality(&self, finalized: u64, safe: u64) {
        let inner = &*self.inner;
        let finalized = inner
            .finalized
            .fetch_max(finalized, Ordering::AcqRel)
            .max(finalized);
        inner.safe.fetch_max(safe.max(finalized), Ordering::AcqRel);
        metrics::gauge!("chaind_finalized_block").set(finalized as f64);
    }

    /// The slot at `time_ms` (by the consensus parameters).
    pub fn slot_at(&self, time_ms: u64) -> u64 {
        self.inner.consensus.slot_at(time_ms)
    }

    /// When slot `slot` starts, in ms since the epoch.
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.inner.consensus.slot_start_ms(slot)
    }

    /// The block producer of this validator node, ready to run: loads (or creates) its
    /// slashing-protection record and consensus checkpoint and brings the consensus engine up
    /// to the stored chain. Fails if the node has no validator key, is not the genesis' only
    /// validator, or its consensus files are corrupt.
    pub fn block_producer(&self) -> anyhow::Result<consensus::BlockProducer> {
        consensus::BlockProducer::open(self.clone())
    }

    /// Produces blocks with the consensus engine until `shutdown` is set (see
    /// [`consensus::BlockProducer::run`]). Runs on the calling thread.
    pub fn run_producer(
        &self,
        shutdown: &AtomicBool,
        on_block: impl FnMut(&ProducedBlock),
    ) -> anyhow::Result<()> {
        self.block_producer()?.run(shutdown, on_block)
    }
}

fn init_genesis(
    chain: &ChainStore,
    genesis: &ChainGenesis,
    genesis_json: &[u8],
) -> anyhow::Result<()> {
    let alloc = genesis.alloc_diff();
    let state_root = chain.db().state_root_after(&alloc)?;
    let header = Header {
        parent_hash: B256::ZERO,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.eth.coinbase,
        state_root,
        transactions_root: transactions_root(&[]),
        receipts_root: receipts_root(&[]),
        logs_bloom: Default::default(),
        difficulty: U256::ZERO,
        number: 0,
        gas_limit: genesis.eth.gas_limit,
        gas_used: 0,
        timestamp: genesis.eth.timestamp,
        extra_data: genesis.eth.extra_data.clone(),
        mix_hash: genesis.eth.mix_hash,
        nonce: Default::default(),
        base_fee_per_gas: Some(genesis.base_fee()),
        ..Header::default()
    };
    let block = Block {
        header,
        transactions: Vec::new(),
        seal: ConsensusSeal::default(),
    };
    let size = block.size();
    let indexed = IndexedBlock {
        block: block.seal_slow(),
        senders: Vec::new(),
        tx_hashes: Vec::new(),
        size,
    };
    let mut writes = ChainStore::block_writes(&indexed, &[]);
    writes.push(ChainStore::genesis_write(genesis_json));
    writes.push(ChainStore::finalized_write(0));
    let root = chain.db().genesis(&alloc, &writes)?;
    anyhow::ensure!(root == state_root, "genesis root mismatch");
    tracing::info!(hash = %indexed.block.hash(), %state_root, "created genesis block");
    Ok(())
}

fn api_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

impl ChainApi for Node {
    type State = HistoricalReader;

    fn chain_id(&self) -> u64 {
        self.inner.spec.chain_id
    }

    fn client_version(&self) -> String {
        self.inner.client_version.clone()
    }

    fn head_number(&self) -> u64 {
        Node::head_number(self)
    }

    fn safe_number(&self) -> u64 {
        self.inner
            .safe
            .load(Ordering::Acquire)
            .min(Node::head_number(self))
    }

    fn finalized_number(&self) -> u64 {
        self.inner
            .finalized
            .load(Ordering::Acquire)
            .min(Node::head_number(self))
    }

    fn block_by_number(&self, number: u64) -> Result<Option<Arc<IndexedBlock>>, ApiError> {
        if number > Node::head_number(self) {
            return Ok(None);
        }
        self.inner.chain.block(number).map_err(api_error)
    }

    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<IndexedBlock>>, ApiError> {
        match self.inner.chain.number_of(&hash).map_err(api_error)? {
            Some(number) => self.block_by_number(number),
            None => Ok(None),
        }
    }

    fn receipts(&self, number: u64) -> Result<Option<Arc<Vec<StoredReceipt>>>, ApiError> {
        self.inner.chain.receipts(number).map_err(api_error)
    }

    fn transaction_location(&self, hash: B256) -> Result<Option<(u64, usize)>, ApiError> {
        self.inner
            .chain
            .transaction_location(&hash)
            .map_err(api_error)
    }

    fn state_at(&self, number: u64) -> Result<Self::State, ApiError> {
        self.inner
            .chain
            .db()
            .reader_at(number)
            .map_err(|e| match e {
                chain_state::StateError::UnknownBlock { .. }
                | chain_state::StateError::PrunedBlock { .. } => ApiError::StatePruned(number),
                other => api_error(other),
            })
    }

    fn next_block_env(&self, parent: &Header) -> ExecutionEnv {
        let beneficiary = self
            .inner
            .validator
            .as_ref()
            .map_or(Address::ZERO, |v| v.address());
        let timestamp = (now_ms() / 1000).max(parent.timestamp);
        child_env(
            &self.inner.spec,
            parent,
            timestamp,
            beneficiary,
            parent.mix_hash,
        )
    }

    fn block_env(&self, header: &Header) -> ExecutionEnv {
        block_env(&self.inner.spec, header)
    }

    fn code_cache(&self) -> Arc<CodeCache> {
        self.inner.codes.clone()
    }

    fn next_base_fee(&self) -> u64 {
        next_base_fee(self.head().block.header())
    }

    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, PoolRejection> {
        self.inner
            .pool
            .add_raw(raw, &self.inner.chain.db().reader())
            .map_err(|e| PoolRejection {
                code: -32000,
                message: e.geth_message(),
            })
    }

    fn pool_transaction(&self, hash: B256) -> Option<PoolTransaction> {
        self.inner.pool.get(&hash).map(|tx| PoolTransaction {
            tx: tx.tx().clone(),
            sender: tx.sender(),
        })
    }

    fn pending_nonce(&self, address: Address) -> Option<u64> {
        self.inner.pool.pending_nonce(&address)
    }

    fn pool_status(&self) -> (usize, usize) {
        pool::counts(&self.inner.pool)
    }

    fn pool_content(&self) -> PoolContent {
        pool::rpc_content(&self.inner.pool)
    }

    fn subscribe_heads(&self) -> broadcast::Receiver<HeadEvent> {
        self.inner.heads.subscribe()
    }

    fn subscribe_pending_transactions(&self) -> broadcast::Receiver<B256> {
        self.inner.pool.subscribe()
    }

    fn syncing(&self) -> Option<SyncStatus> {
        None
    }

    fn peer_count(&self) -> usize {
        0
    }

    fn health(&self) -> Health {
        let head = self.head();
        let head_age_ms = now_ms().saturating_sub(head.block.header().timestamp * 1000);
        let since_produced =
            now_ms().saturating_sub(self.inner.last_block_produced_ms.load(Ordering::Relaxed));
        // Healthy while blocks keep coming: no more than a few slots without one.
        let healthy = since_produced <= 5 * self.inner.spec.block_time_ms.max(1000);
        Health {
            head_number: head.block.number(),
            head_age_ms,
            healthy,
        }
    }

    fn accounts(&self) -> Vec<Address> {
        self.inner.dev_accounts.clone()
    }

    fn send_staking_op(&self, raw: Bytes) -> Result<B256, PoolRejection> {
        use staking::StakingOpRejection;
        let inner = &*self.inner;
        let refuse = |rejection: StakingOpRejection| PoolRejection {
            code: match rejection {
                StakingOpRejection::Malformed(_) => -32602,
                _ => -32000,
            },
            message: rejection.to_string(),
        };
        let op = staking::decode_staking_op(&raw).map_err(refuse)?;
        self.check_against_consensus(&op)
            .map_err(|message| PoolRejection {
                code: -32000,
                message: format!("staking operation refused by consensus: {message}"),
            })?;
        let hash = inner
            .staking_pool
            .add(
                op,
                inner.spec.chain_id,
                &inner.chain.db().reader(),
                &inner.signatures,
            )
            .map_err(refuse)?;
        tracing::info!(%hash, validator = %op.op.validator, nonce = op.op.nonce, "staking operation pooled");
        Ok(hash)
    }

    fn validators(&self) -> Option<ValidatorsView> {
        let view = self.inner.consensus_view.read();
        let (head, state) = view.as_ref()?;
        let members = |set: &chain_consensus::ValidatorSet| {
            set.iter()
                .map(|(address, stake)| ValidatorStake { address, stake })
                .collect()
        };
        Some(ValidatorsView {
            block_number: head.height,
            block_hash: head.hash,
            epoch: state.epoch(),
            current: members(state.current_set()),
            next: members(state.next_set()),
            requested: state
                .requested_stakes()
                .map(|(address, stake)| ValidatorStake { address, stake })
                .collect(),
        })
    }

    fn staking_account(
        &self,
        address: Address,
        number: u64,
    ) -> Result<Option<StakingAccountView>, ApiError> {
        let state = self.state_at(number)?;
        let account = staking::staking_account(&state, address).map_err(api_error)?;
        Ok(Some(StakingAccountView {
            nonce: account.nonce,
            bonded: account.bonded,
            unbonding: account.unbonding,
            release_epoch: account.release_epoch,
            slashed: account.slashed,
        }))
    }
}

/// The RPC server's configuration from the config file's `[rpc]` section (unset limits keep
/// the server's defaults).
pub fn rpc_config(section: &crate::config::RpcSection) -> chain_rpc::RpcConfig {
    let mut config = chain_rpc::RpcConfig {
        http_addr: std::net::SocketAddr::new(section.addr, section.port),
        ..chain_rpc::RpcConfig::default()
    };
    if !section.cors.is_empty() {
        config.cors_origins = section.cors.clone();
    }
    if !section.vhosts.is_empty() {
        config.allowed_hosts = section.vhosts.clone();
    }
    if let Some(value) = section.max_connections {
        config.max_connections = value;
    }
    if let Some(value) = section.max_batch {
        config.max_batch_len = value;
    }
    if let Some(value) = section.max_request_bytes {
        config.max_request_body_size = value;
    }
    if let Some(value) = section.max_response_bytes {
        config.max_response_body_size = value;
    }
    if let Some(value) = section.gas_cap {
        config.gas_cap = value;
    }
    if let Some(ms) = section.call_timeout_ms {
        config.call_timeout = Duration::from_millis(ms);
    }
    if let Some(value) = section.max_logs_range {
        config.logs_max_block_range = value;
    }
    if let Some(value) = section.max_logs {
        config.logs_max_results = value;
    }
    if let Some(value) = section.max_subscriptions_per_connection {
        config.max_subscriptions_per_connection = value;
    }
    config
}
