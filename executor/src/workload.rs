//! Deterministic workloads for tests, benchmarks and the load generator: ETH transfers,
//! ERC-20 transfers and Uniswap-v2-style AMM swaps, each with a contention knob.
//!
//! A workload is a pre-state (accounts funded, contracts deployed, token balances and
//! allowances written straight into storage) and a block of transactions over it. The
//! contracts are `executor/contracts/{ERC20,Pair}.sol`, compiled with
//! `executor/contracts/build.sh`.

use crate::{BlockEnv, ExecutionEnv};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use chain_primitives::{Account, InMemoryState};
use revm::context::TxEnv;
use serde::{Deserialize, Serialize};

/// Runtime code of the test ERC-20 token.
pub fn erc20_runtime() -> Bytes {
    hex_code(include_str!("../contracts/ERC20.bin-runtime"))
}

/// Creation code of the test ERC-20 token (constructor argument: initial supply).
pub fn erc20_creation() -> Bytes {
    hex_code(include_str!("../contracts/ERC20.bin"))
}

/// Runtime code of the AMM pair.
pub fn pair_runtime() -> Bytes {
    hex_code(include_str!("../contracts/Pair.bin-runtime"))
}

/// Creation code of the AMM pair (constructor arguments: token0, token1).
pub fn pair_creation() -> Bytes {
    hex_code(include_str!("../contracts/Pair.bin"))
}

fn hex_code(text: &str) -> Bytes {
    Bytes::from(hex::decode(text.trim()).expect("committed contract code is hex"))
}

/// Selector of `transfer(address,uint256)`.
pub const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// Selector of `approve(address,uint256)`.
pub const APPROVE_SELECTOR: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];
/// Selector of `balanceOf(address)`.
pub const BALANCE_OF_SELECTOR: [u8; 4] = [0x70, 0xa0, 0x82, 0x31];
/// Selector of `mint(address,uint256)`.
pub const MINT_SELECTOR: [u8; 4] = [0x40, 0xc1, 0x0f, 0x19];
/// Selector of `swap(uint256,bool,uint256)`.
pub const SWAP_SELECTOR: [u8; 4] = [0x43, 0x12, 0xae, 0x31];
/// Selector of `addLiquidity(uint256,uint256)`.
pub const ADD_LIQUIDITY_SELECTOR: [u8; 4] = [0x9c, 0xd4, 0x41, 0xda];
/// topic0 of `Transfer(address,address,uint256)`.
pub const TRANSFER_TOPIC: B256 =
    alloy_primitives::b256!("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
/// topic0 of `Swap(address,uint256,uint256,bool)`.
pub const SWAP_TOPIC: B256 =
    alloy_primitives::b256!("0xcc65e4d9060ece2ecf63011ac580550b04c8daeba63fac4dfe8669353cd88859");

fn word(value: U256) -> [u8; 32] {
    value.to_be_bytes()
}

fn address_word(address: Address) -> [u8; 32] {
    address.into_word().0
}

/// Calldata of `transfer(to, amount)`.
pub fn erc20_transfer_calldata(to: Address, amount: U256) -> Bytes {
    [&TRANSFER_SELECTOR[..], &address_word(to), &word(amount)]
        .concat()
        .into()
}

/// Calldata of `approve(spender, amount)`.
pub fn erc20_approve_calldata(spender: Address, amount: U256) -> Bytes {
    [&APPROVE_SELECTOR[..], &address_word(spender), &word(amount)]
        .concat()
        .into()
}

/// Calldata of `balanceOf(owner)`.
pub fn erc20_balance_of_calldata(owner: Address) -> Bytes {
    [&BALANCE_OF_SELECTOR[..], &address_word(owner)]
        .concat()
        .into()
}

/// Calldata of `swap(amountIn, zeroForOne, minAmountOut)`.
pub fn swap_calldata(amount_in: U256, zero_for_one: bool, min_out: U256) -> Bytes {
    [
        &SWAP_SELECTOR[..],
        &word(amount_in),
        &word(U256::from(zero_for_one as u8)),
        &word(min_out),
    ]
    .concat()
    .into()
}

/// Creation code plus ABI-encoded constructor arguments.
pub fn with_constructor_args(creation: &Bytes, args: &[[u8; 32]]) -> Bytes {
    let mut code = creation.to_vec();
    for arg in args {
        code.extend_from_slice(arg);
    }
    code.into()
}

/// Storage slot of `balanceOf[owner]` (mapping at slot 0).
pub fn erc20_balance_slot(owner: Address) -> U256 {
    mapping_slot(address_word(owner), U256::ZERO)
}

/// Storage slot of `allowance[owner][spender]` (nested mapping at slot 1).
pub fn erc20_allowance_slot(owner: Address, spender: Address) -> U256 {
    let inner = mapping_slot(address_word(owner), U256::from(1));
    mapping_slot(address_word(spender), inner)
}

/// Solidity's slot of `mapping[key]` for a mapping at `slot`.
pub fn mapping_slot(key: [u8; 32], slot: U256) -> U256 {
    U256::from_be_bytes(keccak256([key, word(slot)].concat()).0)
}

/// A deterministic address for (`label`, `index`) under `seed`.
pub fn derive_address(seed: u64, label: &str, index: u64) -> Address {
    let mut input = Vec::with_capacity(16 + label.len());
    input.extend_from_slice(&seed.to_be_bytes());
    input.extend_from_slice(label.as_bytes());
    input.extend_from_slice(&index.to_be_bytes());
    Address::from_word(keccak256(input))
}

/// Which kind of transactions a workload has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Plain ETH transfers.
    Transfer,
    /// ERC-20 `transfer` calls on one token.
    Erc20,
    /// AMM `swap` calls spread over pools.
    Amm,
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transfer" | "transfers" | "eth" => Ok(Self::Transfer),
            "erc20" => Ok(Self::Erc20),
            "amm" | "swap" | "swaps" => Ok(Self::Amm),
            other => Err(format!("unknown workload {other:?} (transfer, erc20, amm)")),
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transfer => "transfer",
            Self::Erc20 => "erc20",
            Self::Amm => "amm",
        })
    }
}

/// Parameters of a generated block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// Kind of transactions.
    pub kind: WorkloadKind,
    /// The contention knob: distinct senders (and recipients) for transfers, distinct pools
    /// for swaps. 1 means every transaction conflicts with the one before it.
    pub accounts: usize,
    /// Transactions in the block.
    pub txs: usize,
    /// Seed of every address.
    pub seed: u64,
}

/// A generated block and the state it runs on.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The state at the parent block.
    pub state: InMemoryState,
    /// The block's environment.
    pub env: ExecutionEnv,
    /// The transactions, senders recovered.
    pub txs: Vec<TxEnv>,
}

/// Gas price cap of generated transactions.
pub const MAX_FEE: u128 = 2_000_000_000;
/// Priority fee of generated transactions.
pub const PRIORITY_FEE: u128 = 1_000_000_000;
const ETH: u128 = 1_000_000_000_000_000_000;

/// A block environment with room for any generated block.
pub fn bench_block_env() -> BlockEnv {
    BlockEnv {
        number: 1,
        timestamp: 1_700_000_000,
        base_fee: 1_000_000_000,
        prevrandao: B256::repeat_byte(7),
        gas_limit: 1 << 40,
        beneficiary: derive_address(0, "beneficiary", 0),
        chain_id: 31337,
    }
}

/// A transaction template: EIP-1559 with the workload fees.
pub fn eip1559_tx(
    caller: Address,
    nonce: u64,
    to: TxKind,
    value: U256,
    data: Bytes,
    gas_limit: u64,
) -> TxEnv {
    TxEnv {
        tx_type: 2,
        caller,
        gas_limit,
        gas_price: MAX_FEE,
        gas_priority_fee: Some(PRIORITY_FEE),
        kind: to,
        value,
        data,
        nonce,
        chain_id: Some(31337),
        ..TxEnv::default()
    }
}

/// Generates the block of `config`.
pub fn generate(config: &WorkloadConfig) -> Workload {
    let accounts = config.accounts.max(1);
    let env = ExecutionEnv::new(bench_block_env());
    let mut state = InMemoryState::new();
    let funded = Account::with_balance(U256::from(1_000_000u128 * ETH));
    // A permutation of 0..accounts (7919 is prime): every recipient once per round.
    let recipient_of = |i: usize| (i.wrapping_mul(7919) + 1) % accounts;
    let txs = match config.kind {
        WorkloadKind::Transfer => {
            for i in 0..accounts {
                state.insert_account(derive_address(config.seed, "sender", i as u64), funded);
            }
            (0..config.txs)
                .map(|i| {
                    let from = derive_address(config.seed, "sender", (i % accounts) as u64);
                    let to = derive_address(config.seed, "recipient", recipient_of(i) as u64);
                    eip1559_tx(
                        from,
                        (i / accounts) as u64,
                        TxKind::Call(to),
                        U256::from(1000 + i),
                        Bytes::new(),
                        21_000,
                    )
                })
                .collect()
        }
        WorkloadKind::Erc20 => {
            let token = derive_address(config.seed, "token", 0);
            state.insert_code(token, erc20_runtime());
            let holding = U256::from(1_000_000u128 * ETH);
            for i in 0..accounts {
                let holder = derive_address(config.seed, "sender", i as u64);
                state.insert_account(holder, funded);
                state.insert_storage(token, erc20_balance_slot(holder), holding);
            }
            state.insert_storage(token, U256::from(2), holding * U256::from(accounts));
            (0..config.txs)
                .map(|i| {
                    let from = derive_address(config.seed, "sender", (i % accounts) as u64);
                    let to = derive_address(config.seed, "recipient", recipient_of(i) as u64);
                    let data = erc20_transfer_calldata(to, U256::from(1 + i));
                    eip1559_tx(
                        from,
                        (i / accounts) as u64,
                        TxKind::Call(token),
                        U256::ZERO,
                        data,
                        100_000,
                    )
                })
                .collect()
        }
        WorkloadKind::Amm => {
            let token0 = derive_address(config.seed, "token", 0);
            let token1 = derive_address(config.seed, "token", 1);
            state.insert_code(token0, erc20_runtime());
            state.insert_code(token1, erc20_runtime());
            let reserve = U256::from(1_000_000_000u128 * ETH);
            let pairs: Vec<Address> = (0..accounts)
                .map(|p| derive_address(config.seed, "pair", p as u64))
                .collect();
            for pair in &pairs {
                state.insert_code(*pair, pair_runtime());
                state.insert_storage(*pair, U256::ZERO, U256::from_be_bytes(address_word(token0)));
                state.insert_storage(
                    *pair,
                    U256::from(1),
                    U256::from_be_bytes(address_word(token1)),
                );
                state.insert_storage(*pair, U256::from(2), reserve);
                state.insert_storage(*pair, U256::from(3), reserve);
                state.insert_storage(token0, erc20_balance_slot(*pair), reserve);
                state.insert_storage(token1, erc20_balance_slot(*pair), reserve);
            }
            let user_balance = U256::from(1_000_000u128 * ETH);
            (0..config.txs)
                .map(|i| {
                    let user = derive_address(config.seed, "trader", i as u64);
                    let pair = pairs[i % accounts];
                    state.insert_account(user, funded);
                    for token in [token0, token1] {
                        state.insert_storage(token, erc20_balance_slot(user), user_balance);
                        state.insert_storage(token, erc20_allowance_slot(user, pair), U256::MAX);
                    }
                    let amount = U256::from((1 + i as u128 % 1000) * 1_000_000_000_000u128);
                    let data = swap_calldata(amount, i % 2 == 0, U256::ZERO);
                    eip1559_tx(user, 0, TxKind::Call(pair), U256::ZERO, data, 200_000)
                })
                .collect()
        }
    };
    Workload { state, env, txs }
}
