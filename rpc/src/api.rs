//! What the RPC server needs from the node. The node implements [`ChainApi`]; tests implement
//! it over in-memory data. Keeping the server behind this trait lets `rpc` depend only on the
//! crates whose data it carries (primitives, executor), not on the node.

use alloy_primitives::{Address, B256, Bytes};
use chain_executor::{CodeCache, ExecutionEnv};
use chain_primitives::{Header, SealedBlock, StateReader, StoredReceipt, TxEnvelope};
use std::{collections::BTreeMap, sync::Arc};

/// A block as the node stores it, with what RPC serves beside it.
#[derive(Clone, Debug)]
pub struct IndexedBlock {
    /// The block and its hash.
    pub block: SealedBlock,
    /// The sender of each transaction (recovered once, when the block was built or imported).
    pub senders: Vec<Address>,
    /// The hash of each transaction.
    pub tx_hashes: Vec<B256>,
    /// Size of the RLP-encoded block in bytes.
    pub size: usize,
}

/// A new canonical head, or a block that left the canonical chain in a reorg.
#[derive(Clone, Debug)]
pub struct HeadEvent {
    /// The block.
    pub block: Arc<IndexedBlock>,
    /// Its receipts.
    pub receipts: Arc<Vec<StoredReceipt>>,
    /// `true` if the block was removed from the canonical chain (logs subscribers then get
    /// its logs again with `removed: true`).
    pub removed: bool,
}

/// Why the pool refused a transaction, in the terms geth's RPC uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRejection {
    /// JSON-RPC error code (geth uses -32000 for pool errors, -32602 for undecodable input).
    pub code: i32,
    /// geth's message, e.g. "nonce too low", "already known".
    pub message: String,
}

/// A transaction in the pool, with its recovered sender.
#[derive(Clone, Debug)]
pub struct PoolTransaction {
    /// The signed transaction.
    pub tx: TxEnvelope,
    /// Its sender.
    pub sender: Address,
}

/// The pool's transactions by sender and nonce (txpool_content).
#[derive(Clone, Debug, Default)]
pub struct PoolContent {
    /// Executable transactions.
    pub pending: BTreeMap<Address, BTreeMap<u64, PoolTransaction>>,
    /// Transactions waiting for a nonce gap to fill.
    pub queued: BTreeMap<Address, BTreeMap<u64, PoolTransaction>>,
}

/// Sync progress, when the node is catching up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    /// Block the sync started from.
    pub starting_block: u64,
    /// Current head.
    pub current_block: u64,
    /// Highest block known from peers.
    pub highest_block: u64,
}

/// Liveness of the node, for `GET /health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Head block number.
    pub head_number: u64,
    /// Milliseconds since the head block's timestamp.
    pub head_age_ms: u64,
    /// Whether the node is producing blocks or in sync (healthy).
    pub healthy: bool,
}

/// A failure inside the node while answering (storage error, pruned state...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The state of this block is no longer kept (older than the retained history).
    #[error("state of block {0} is not available (pruned)")]
    StatePruned(u64),
    /// The block does not exist.
    #[error("block not found")]
    BlockNotFound,
    /// A storage or internal failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A validator and its stake, in consensus stake units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidatorStake {
    /// The validator's address.
    pub address: Address,
    /// Its stake.
    pub stake: u64,
}

/// The validator set as consensus sees it after the head block (`chaind_validators`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorsView {
    /// The block the view is of.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// The epoch of that block's consensus state.
    pub epoch: u64,
    /// The set of that epoch.
    pub current: Vec<ValidatorStake>,
    /// The set of the next epoch.
    pub next: Vec<ValidatorStake>,
    /// Stakes requested by included staking operations and not yet in effect.
    pub requested: Vec<ValidatorStake>,
}

/// A validator's entry in the staking escrow's ledger (`chaind_stakingAccount`), in stake
/// units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StakingAccountView {
    /// The nonce its next staking operation must carry.
    pub nonce: u64,
    /// Units in the escrow, including those being released.
    pub bonded: u64,
    /// Units being released.
    pub unbonding: u64,
    /// The epoch from which they are paid back (0 when none are).
    pub release_epoch: u64,
    /// Whether the validator was slashed.
    pub slashed: bool,
}

/// The node, as the RPC server sees it.
pub trait ChainApi: Send + Sync + 'static {
    /// A reader of the state after some block.
    type State: StateReader + Send + Sync + 'static;

    /// Chain id (EIP-155).
    fn chain_id(&self) -> u64;
    /// `web3_clientVersion`.
    fn client_version(&self) -> String;
    /// The canonical head.
    fn head_number(&self) -> u64;
    /// The latest block that is safe (justified); equal to finalized with instant finality.
    fn safe_number(&self) -> u64;
    /// The latest finalized block.
    fn finalized_number(&self) -> u64;
    /// A canonical block by number.
    fn block_by_number(&self, number: u64) -> Result<Option<Arc<IndexedBlock>>, ApiError>;
    /// A canonical block by hash.
    fn block_by_hash(&self, hash: B256) -> Result<Option<Arc<IndexedBlock>>, ApiError>;
    /// The receipts of a canonical block.
    fn receipts(&self, number: u64) -> Result<Option<Arc<Vec<StoredReceipt>>>, ApiError>;
    /// Where a mined transaction is: (block number, index in the block).
    fn transaction_location(&self, hash: B256) -> Result<Option<(u64, usize)>, ApiError>;
    /// The state after block `number` (errors with [`ApiError::StatePruned`] beyond history).
    fn state_at(&self, number: u64) -> Result<Self::State, ApiError>;
    /// The execution environment of a block built on top of `parent` (what `eth_call` against
    /// "latest" and "pending" runs under: number and timestamp of the next block).
    fn next_block_env(&self, parent: &Header) -> ExecutionEnv;
    /// The execution environment of block `header` itself (for calls at a past block).
    fn block_env(&self, header: &Header) -> ExecutionEnv;
    /// The node's analysed-code cache, shared with block execution.
    fn code_cache(&self) -> Arc<CodeCache>;
    /// Base fee of the next block.
    fn next_base_fee(&self) -> u64;

    /// Hands a signed transaction to the pool.
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, PoolRejection>;
    /// A transaction waiting in the pool.
    fn pool_transaction(&self, hash: B256) -> Option<PoolTransaction>;
    /// The nonce after the sender's executable pool transactions (for "pending" counts).
    fn pending_nonce(&self, address: Address) -> Option<u64>;
    /// (pending, queued) counts.
    fn pool_status(&self) -> (usize, usize);
    /// All pool transactions.
    fn pool_content(&self) -> PoolContent;

    /// New heads and reorged-out blocks, in order. A subscriber that falls behind by more than
    /// the channel's capacity gets `Lagged` and must be dropped.
    fn subscribe_heads(&self) -> tokio::sync::broadcast::Receiver<HeadEvent>;
    /// Hashes of transactions entering the pool.
    fn subscribe_pending_transactions(&self) -> tokio::sync::broadcast::Receiver<B256>;

    /// Sync progress, `None` when in sync.
    fn syncing(&self) -> Option<SyncStatus>;
    /// Connected peers.
    fn peer_count(&self) -> usize;
    /// Liveness for `GET /health`.
    fn health(&self) -> Health;
    /// Accounts `eth_accounts` lists (the dev accounts in dev mode, none otherwise).
    fn accounts(&self) -> Vec<Address>;

    /// Hands an RLP-encoded signed staking operation to the node's staking pool
    /// (`chaind_sendStakingOp`); returns its hash. Nodes without staking refuse it.
    fn send_staking_op(&self, raw: Bytes) -> Result<B256, PoolRejection> {
        let _ = raw;
        Err(PoolRejection {
            code: -32000,
            message: "this node does not accept staking operations".into(),
        })
    }

    /// The validator set after the head, if the node runs consensus.
    fn validators(&self) -> Option<ValidatorsView> {
        None
    }

    /// A validator's staking ledger entry after block `number`, if the node keeps one.
    fn staking_account(
        &self,
        address: Address,
        number: u64,
    ) -> Result<Option<StakingAccountView>, ApiError> {
        let _ = (address, number);
        Ok(None)
    }
}
