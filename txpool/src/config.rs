/// Limits and chain rules of a [`TxPool`](crate::TxPool).
///
/// [`PoolConfig::new`] gives geth's defaults (`--txpool.*`): 16 executable slots and 64 queued
/// slots per account, 5120 executable and 1024 queued slots in all, a 10% price bump for
/// replacements and a 128 KiB size limit per transaction. [`PoolConfig::load_test`] raises the
/// limits so that a load generator's deep per-account nonce chains fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The chain id every transaction must be signed for (EIP-155 for legacy transactions).
    pub chain_id: u64,
    /// The block gas limit: a transaction asking for more gas is rejected.
    pub block_gas_limit: u64,
    /// Per-transaction gas cap (EIP-7825, Osaka: 2^24); `None` for no cap.
    pub max_tx_gas: Option<u64>,
    /// Largest accepted encoded transaction, in bytes.
    pub max_tx_size: usize,
    /// Most executable (pending) transactions per sender; further ones wait in the queue.
    pub account_slots: usize,
    /// Most non-executable (queued) transactions per sender, on top of `account_slots`.
    pub account_queue: usize,
    /// Most executable transactions in the pool.
    pub global_slots: usize,
    /// Most queued transactions in the pool.
    pub global_queue: usize,
    /// Percentage by which a replacement must raise both the fee cap and the tip.
    pub price_bump_percent: u32,
    /// Smallest accepted priority fee (geth's `--txpool.pricelimit`), in wei.
    pub min_priority_fee: u128,
    /// Accept legacy transactions signed without a chain id (pre-EIP-155, replayable).
    pub allow_unprotected: bool,
    /// Apply the EIP-7623 calldata floor (Prague and later) to the gas limit.
    pub calldata_floor: bool,
    /// Capacity of the channel that announces newly pending transaction hashes.
    pub notification_capacity: usize,
}

/// geth's `core/txpool/legacypool` defaults.
const GETH_ACCOUNT_SLOTS: usize = 16;
const GETH_ACCOUNT_QUEUE: usize = 64;
const GETH_GLOBAL_SLOTS: usize = 5120;
const GETH_GLOBAL_QUEUE: usize = 1024;
const GETH_PRICE_BUMP: u32 = 10;
/// geth's `txMaxSize`: four 32 KiB slots.
const GETH_MAX_TX_SIZE: usize = 128 * 1024;
/// EIP-7825 (Osaka) cap on a transaction's gas limit.
pub const MAX_TX_GAS_OSAKA: u64 = 1 << 24;

impl PoolConfig {
    /// geth's defaults for `chain_id` and a `block_gas_limit`.
    pub fn new(chain_id: u64, block_gas_limit: u64) -> Self {
        Self {
            chain_id,
            block_gas_limit,
            max_tx_gas: Some(MAX_TX_GAS_OSAKA),
            max_tx_size: GETH_MAX_TX_SIZE,
            account_slots: GETH_ACCOUNT_SLOTS,
            account_queue: GETH_ACCOUNT_QUEUE,
            global_slots: GETH_GLOBAL_SLOTS,
            global_queue: GETH_GLOBAL_QUEUE,
            price_bump_percent: GETH_PRICE_BUMP,
            min_priority_fee: 0,
            allow_unprotected: false,
            calldata_floor: true,
            notification_capacity: 4096,
        }
    }

    /// Limits for benchmarks and load tests: 100,000 transactions per account and 1,000,000 in
    /// the pool (of each kind), so that a generator's accounts can run far ahead of the chain.
    pub fn load_test(chain_id: u64, block_gas_limit: u64) -> Self {
        Self {
            account_slots: 100_000,
            account_queue: 100_000,
            global_slots: 1_000_000,
            global_queue: 1_000_000,
            notification_capacity: 65_536,
            ..Self::new(chain_id, block_gas_limit)
        }
    }

    /// Most transactions one sender may have in the pool, pending and queued together.
    pub fn max_per_sender(&self) -> usize {
        self.account_slots.saturating_add(self.account_queue)
    }
}

impl Default for PoolConfig {
    /// geth's defaults on chain 31337 (the dev chain) with a 30,000,000 gas block limit.
    fn default() -> Self {
        Self::new(31337, 30_000_000)
    }
}
