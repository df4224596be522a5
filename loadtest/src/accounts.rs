//! Sending accounts and transaction signing: [`Account`] (a key, its address and the next
//! nonce the generator will use), [`SignedTx`] (an encoded, signed EIP-1559 transaction and its
//! hash), and [`FeeParams`].

use crate::error::LoadgenError;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use chain_primitives::dev::loadgen_secret;
use rayon::prelude::*;
use secp256k1::{Message, SECP256K1, SecretKey};

/// Secret key of dev account 0 (the test mnemonic's first key), funded by `chaind dev`.
pub const DEV_ACCOUNT_0_KEY: B256 =
    alloy_primitives::b256!("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");

/// A sending account.
#[derive(Clone, Debug)]
pub struct Account {
    /// Its address.
    pub address: Address,
    /// Its secret key, in the form the signer uses.
    secret: SecretKey,
    /// The nonce of its next transaction, tracked locally.
    pub nonce: u64,
}

impl Account {
    /// The account of secret key `secret`, with nonce 0 until told otherwise.
    pub fn from_secret(secret: B256) -> Result<Self, LoadgenError> {
        // The address is derived exactly as `chaind dev` derives the accounts it funds.
        let address = PrivateKeySigner::from_bytes(&secret)
            .map_err(|e| LoadgenError::Key(e.to_string()))?
            .address();
        let secret =
            SecretKey::from_byte_array(secret.0).map_err(|e| LoadgenError::Key(e.to_string()))?;
        Ok(Self {
            address,
            secret,
            nonce: 0,
        })
    }

    /// Signs `call` with nonce `nonce` (not touching [`Account::nonce`]).
    pub fn sign(&self, call: &Call, nonce: u64, chain_id: u64, fees: FeeParams) -> SignedTx {
        let tx = TxEip1559 {
            chain_id,
            nonce,
            gas_limit: call.gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: call.to,
            value: call.value,
            access_list: Default::default(),
            input: call.input.clone(),
        };
        // libsecp256k1 rather than the pure-Rust signer: pre-signing hundreds of thousands of
        // transactions is the one expensive thing the generator does.
        let digest = tx.signature_hash();
        let (recovery_id, compact) = SECP256K1
            .sign_ecdsa_recoverable(Message::from_digest(digest.0), &self.secret)
            .serialize_compact();
        let y_parity = i32::from(recovery_id) == 1;
        let signature = Signature::from_bytes_and_parity(&compact, y_parity);
        let envelope = TxEnvelope::from(tx.into_signed(signature));
        SignedTx {
            hash: *envelope.tx_hash(),
            raw: Bytes::from(envelope.encoded_2718()),
        }
    }

    /// Signs `call` with the account's next nonce and advances it.
    pub fn sign_next(&mut self, call: &Call, chain_id: u64, fees: FeeParams) -> SignedTx {
        let signed = self.sign(call, self.nonce, chain_id, fees);
        self.nonce += 1;
        signed
    }
}

/// Load-test account `index` under `seed`: the key `chaind dev --prefund-loadgen` funds.
pub fn loadgen_account(seed: u64, index: u64) -> Result<Account, LoadgenError> {
    Account::from_secret(loadgen_secret(seed, index))
}

/// Load-test accounts `0..count` under `seed`, derived in parallel.
pub fn loadgen_accounts(seed: u64, count: usize) -> Result<Vec<Account>, LoadgenError> {
    (0..count as u64)
        .into_par_iter()
        .map(|i| loadgen_account(seed, i))
        .collect()
}

/// What a transaction does, before nonce, fees and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Recipient, or creation.
    pub to: TxKind,
    /// Wei sent along.
    pub value: U256,
    /// Calldata or creation code.
    pub input: Bytes,
    /// Gas limit.
    pub gas_limit: u64,
}

/// EIP-1559 fee caps of every generated transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FeeParams {
    /// `maxFeePerGas`, in wei: high, so that pre-signed transactions stay includable while a
    /// full chain raises the base fee block after block.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`, in wei.
    pub max_priority_fee_per_gas: u128,
}

impl FeeParams {
    /// Caps given in gwei.
    pub fn from_gwei(max_fee: u64, priority_fee: u64) -> Self {
        Self {
            max_fee_per_gas: u128::from(max_fee) * 1_000_000_000,
            max_priority_fee_per_gas: u128::from(priority_fee) * 1_000_000_000,
        }
    }
}

/// A signed transaction ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// Its hash, which the node must return and which receipts carry.
    pub hash: B256,
    /// Its EIP-2718 encoding (the `eth_sendRawTransaction` parameter).
    pub raw: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;

    #[test]
    fn signed_transactions_recover_to_the_sender() {
        let account = loadgen_account(1, 7).unwrap();
        let call = Call {
            to: TxKind::Call(Address::repeat_byte(0x11)),
            value: U256::from(5),
            input: Bytes::new(),
            gas_limit: 21_000,
        };
        let signed = account.sign(&call, 3, 31337, FeeParams::from_gwei(100, 1));
        let decoded = TxEnvelope::decode_2718(&mut signed.raw.as_ref()).unwrap();
        assert_eq!(*decoded.tx_hash(), signed.hash);
        assert_eq!(decoded.recover_signer().unwrap(), account.address);
        let TxEnvelope::Eip1559(tx) = decoded else {
            panic!("not EIP-1559")
        };
        assert_eq!(tx.tx().nonce, 3);
        assert_eq!(tx.tx().chain_id, 31337);
        assert_eq!(tx.tx().max_fee_per_gas, 100_000_000_000);
    }

    #[test]
    fn dev_account_0_is_the_well_known_address() {
        let account = Account::from_secret(DEV_ACCOUNT_0_KEY).unwrap();
        assert_eq!(
            account.address,
            alloy_primitives::address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }

    #[test]
    fn sign_next_advances_the_nonce() {
        let mut account = loadgen_account(1, 0).unwrap();
        account.nonce = 9;
        let call = Call {
            to: TxKind::Create,
            value: U256::ZERO,
            input: Bytes::from_static(&[0]),
            gas_limit: 60_000,
        };
        let first = account.sign_next(&call, 1, FeeParams::from_gwei(1, 1));
        let second = account.sign_next(&call, 1, FeeParams::from_gwei(1, 1));
        assert_eq!(account.nonce, 11);
        assert_ne!(first.hash, second.hash);
    }
}
