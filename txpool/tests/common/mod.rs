//! Shared helpers of the integration tests: local keys, signed transactions, funded states.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::{eip2718::Encodable2718, eip2930::AccessList};
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256, keccak256};
use chain_primitives::{Account, InMemoryState};
use chain_txpool::{PoolConfig, TxPool};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};

pub const CHAIN_ID: u64 = 31337;
pub const GWEI: u128 = 1_000_000_000;
/// Plenty for any test transaction.
pub const ETH_100: u128 = 100_000_000_000_000_000_000;
pub const RECIPIENT: Address = Address::repeat_byte(0xee);

/// A local secp256k1 key and its address.
#[derive(Clone, Debug)]
pub struct Key {
    secret: SecretKey,
    pub address: Address,
}

impl Key {
    /// A deterministic key per seed.
    pub fn new(seed: u64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[0] = 0x11;
        bytes[24..].copy_from_slice(&seed.to_be_bytes());
        Self::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let secret = SecretKey::from_byte_array(bytes).expect("valid key");
        let public = PublicKey::from_secret_key(SECP256K1, &secret);
        // Address derivation written out here, independently of the pool's recovery code.
        let hash = keccak256(&public.serialize_uncompressed()[1..]);
        Self {
            secret,
            address: Address::from_slice(&hash[12..]),
        }
    }

    pub fn sign<T: SignableTransaction<Signature>>(&self, tx: T) -> Signed<T> {
        let hash = tx.signature_hash();
        let signature =
            SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), &self.secret);
        let (id, rs) = signature.serialize_compact();
        let signature = Signature::new(
            U256::from_be_slice(&rs[..32]),
            U256::from_be_slice(&rs[32..]),
            i32::from(id) != 0,
        );
        tx.into_signed(signature)
    }

    /// A signed EIP-1559 transaction built from `spec`.
    pub fn eip1559(&self, spec: TxSpec) -> Bytes {
        encode(self.sign(spec.eip1559()))
    }

    /// A signed EIP-1559 transfer of nothing to [`RECIPIENT`].
    pub fn transfer(&self, nonce: u64, max_fee: u128, tip: u128) -> Bytes {
        self.eip1559(TxSpec::new(nonce).fees(max_fee, tip))
    }

    /// A signed legacy transfer with EIP-155 chain id `chain_id` (`None`: unprotected).
    pub fn legacy(&self, nonce: u64, gas_price: u128, chain_id: Option<u64>) -> Bytes {
        let tx = TxLegacy {
            chain_id,
            nonce,
            gas_price,
            gas_limit: 21_000,
            to: TxKind::Call(RECIPIENT),
            value: U256::from(1),
            input: Bytes::new(),
        };
        encode(self.sign(tx))
    }

    /// A signed EIP-2930 transfer with an access list.
    pub fn eip2930(
        &self,
        nonce: u64,
        gas_price: u128,
        gas_limit: u64,
        access_list: AccessList,
    ) -> Bytes {
        let tx = TxEip2930 {
            chain_id: CHAIN_ID,
            nonce,
            gas_price,
            gas_limit,
            to: TxKind::Call(RECIPIENT),
            value: U256::ZERO,
            access_list,
            input: Bytes::new(),
        };
        encode(self.sign(tx))
    }
}

/// The fields of a test EIP-1559 transaction.
#[derive(Clone, Debug)]
pub struct TxSpec {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_fee: u128,
    pub tip: u128,
    pub gas_limit: u64,
    pub to: TxKind,
    pub value: U256,
    pub input: Bytes,
    pub access_list: AccessList,
}

impl TxSpec {
    /// A 21,000-gas transfer of nothing to [`RECIPIENT`] at 10 gwei cap, 1 gwei tip.
    pub fn new(nonce: u64) -> Self {
        Self {
            chain_id: CHAIN_ID,
            nonce,
            max_fee: 10 * GWEI,
            tip: GWEI,
            gas_limit: 21_000,
            to: TxKind::Call(RECIPIENT),
            value: U256::ZERO,
            input: Bytes::new(),
            access_list: AccessList::default(),
        }
    }

    pub fn fees(mut self, max_fee: u128, tip: u128) -> Self {
        self.max_fee = max_fee;
        self.tip = tip;
        self
    }

    pub fn gas(mut self, gas_limit: u64) -> Self {
        self.gas_limit = gas_limit;
        self
    }

    pub fn value(mut self, value: U256) -> Self {
        self.value = value;
        self
    }

    pub fn input(mut self, input: Vec<u8>) -> Self {
        self.input = input.into();
        self
    }

    pub fn create(mut self) -> Self {
        self.to = TxKind::Create;
        self
    }

    pub fn chain(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }

    pub fn eip1559(self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee,
            max_priority_fee_per_gas: self.tip,
            to: self.to,
            value: self.value,
            access_list: self.access_list,
            input: self.input,
        }
    }
}

pub fn encode(tx: impl Into<TxEnvelope>) -> Bytes {
    Bytes::from(tx.into().encoded_2718())
}

/// A state in which each key's account holds `balance` wei at nonce 0.
pub fn funded(keys: &[&Key], balance: u128) -> InMemoryState {
    let mut state = InMemoryState::new();
    for key in keys {
        state.insert_account(key.address, Account::with_balance(U256::from(balance)));
    }
    state
}

/// Sets `key`'s account to `nonce` and `balance`.
pub fn set_account(state: &mut InMemoryState, key: &Key, nonce: u64, balance: u128) {
    state.insert_account(
        key.address,
        Account {
            nonce,
            ..Account::with_balance(U256::from(balance))
        },
    );
}

/// A pool with geth's defaults on the test chain, base fee 1 gwei.
pub fn pool() -> TxPool {
    pool_with(PoolConfig::new(CHAIN_ID, 30_000_000))
}

pub fn pool_with(config: PoolConfig) -> TxPool {
    let pool = TxPool::new(config);
    pool.set_base_fee(GWEI as u64);
    pool
}

/// `(sender, nonce)` of the pool's pending transactions in `best_transactions` order.
pub fn best_order(pool: &TxPool, base_fee: u64) -> Vec<(Address, u64)> {
    pool.best_transactions(base_fee)
        .map(|tx| (tx.sender(), tx.nonce()))
        .collect()
}
