use crate::{PoolConfig, PoolError, PooledTx};
use alloy_consensus::{Signed, Transaction, TxEnvelope, TxLegacy};
use alloy_eips::{eip2718::Decodable2718, eip2930::AccessList};
use alloy_primitives::{Address, Bytes, TxHash, U256, keccak256, uint};
use secp256k1::{
    Message, SECP256K1,
    ecdsa::{RecoverableSignature, RecoveryId},
};

/// Base cost of every transaction.
pub const TX_BASE_GAS: u64 = 21_000;
/// Extra cost of a contract creation (Homestead).
pub const TX_CREATE_GAS: u64 = 32_000;
/// Cost of a zero calldata byte.
pub const TX_DATA_ZERO_GAS: u64 = 4;
/// Cost of a non-zero calldata byte (EIP-2028).
pub const TX_DATA_NON_ZERO_GAS: u64 = 16;
/// Cost of an address in the access list (EIP-2930).
pub const ACCESS_LIST_ADDRESS_GAS: u64 = 2_400;
/// Cost of a storage key in the access list (EIP-2930).
pub const ACCESS_LIST_STORAGE_KEY_GAS: u64 = 1_900;
/// Cost per 32-byte word of init code (EIP-3860).
pub const INIT_CODE_WORD_GAS: u64 = 2;
/// Largest init code of a creation transaction (EIP-3860: twice the EIP-170 code limit).
pub const MAX_INIT_CODE_SIZE: usize = 2 * 24_576;
/// Gas per calldata token in the EIP-7623 floor.
pub const FLOOR_GAS_PER_TOKEN: u64 = 10;

/// secp256k1's group order n.
const SECP256K1N: U256 =
    uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);
/// n / 2: EIP-2 refuses signatures with a larger `s` (they are malleable twins of low ones).
const SECP256K1N_HALF: U256 =
    uint!(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0_U256);

/// Zero and non-zero byte counts of calldata.
fn calldata_bytes(input: &[u8]) -> (u64, u64) {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    (zeros, input.len() as u64 - zeros)
}

/// The gas a transaction consumes before any code runs: base, calldata (EIP-2028 prices),
/// creation with its init-code words (EIP-3860), and the access list (EIP-2930).
pub fn intrinsic_gas(input: &[u8], is_create: bool, access_list: Option<&AccessList>) -> u64 {
    let (zeros, non_zeros) = calldata_bytes(input);
    // Saturating arithmetic: inputs are bounded by the size limit, but this is public.
    let mut gas = TX_BASE_GAS
        .saturating_add(zeros.saturating_mul(TX_DATA_ZERO_GAS))
        .saturating_add(non_zeros.saturating_mul(TX_DATA_NON_ZERO_GAS));
    if is_create {
        let words = (input.len() as u64).div_ceil(32);
        gas = gas
            .saturating_add(TX_CREATE_GAS)
            .saturating_add(words.saturating_mul(INIT_CODE_WORD_GAS));
    }
    if let Some(list) = access_list {
        for item in list.iter() {
            gas = gas.saturating_add(ACCESS_LIST_ADDRESS_GAS).saturating_add(
                (item.storage_keys.len() as u64).saturating_mul(ACCESS_LIST_STORAGE_KEY_GAS),
            );
        }
    }
    gas
}

/// The EIP-7623 floor: 21,000 + 10 per calldata token, a zero byte one token, any other byte
/// four. From Prague a transaction's gas limit must reach it.
pub fn calldata_floor_gas(input: &[u8]) -> u64 {
    let (zeros, non_zeros) = calldata_bytes(input);
    let tokens = zeros.saturating_add(non_zeros.saturating_mul(4));
    TX_BASE_GAS.saturating_add(tokens.saturating_mul(FLOOR_GAS_PER_TOKEN))
}

/// Recovers the address that signed `tx`, refusing signatures Ethereum refuses: `r` or `s`
/// zero or not below the group order, and `s` above n/2 (EIP-2).
pub fn recover_sender(tx: &TxEnvelope) -> Result<Address, PoolError> {
    let signature = tx.signature();
    let (r, s) = (signature.r(), signature.s());
    if r.is_zero() || s.is_zero() || r >= SECP256K1N || s > SECP256K1N_HALF {
        return Err(PoolError::InvalidSignature);
    }
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&r.to_be_bytes::<32>());
    compact[32..].copy_from_slice(&s.to_be_bytes::<32>());
    let recovery_id =
        RecoveryId::try_from(i32::from(signature.v())).map_err(|_| PoolError::InvalidSignature)?;
    let recoverable = RecoverableSignature::from_compact(&compact, recovery_id)
        .map_err(|_| PoolError::InvalidSignature)?;
    let message = Message::from_digest(tx.signature_hash().0);
    let public = SECP256K1
        .recover_ecdsa(message, &recoverable)
        .map_err(|_| PoolError::InvalidSignature)?;
    // The address is the last 20 bytes of keccak256 of the 64-byte public key (no 0x04 tag).
    let hash = keccak256(&public.serialize_uncompressed()[1..]);
    Ok(Address::from_slice(&hash[12..]))
}

/// A transaction that passed every check but the signature: the cheap half of admission, kept
/// apart so that the pool can skip recovery for transactions it already holds.
#[derive(Debug)]
pub(crate) struct Unrecovered {
    pub(crate) tx: TxEnvelope,
    pub(crate) hash: TxHash,
    pub(crate) encoded: Bytes,
}

impl Unrecovered {
    /// Recovers the sender: the costly step (tens of microseconds).
    pub(crate) fn recover(self) -> Result<PooledTx, PoolError> {
        let sender = recover_sender(&self.tx)?;
        PooledTx::from_parts(self.tx, self.hash, self.encoded, sender)
    }
}

/// Decodes and checks everything that needs neither the signature, the state nor the base fee.
///
/// The order follows geth's `ValidateTransaction` where it matters to users (which error a
/// transaction with several faults gets), except that signature recovery comes last here
/// because it is the expensive check.
pub(crate) fn decode_unrecovered(
    raw: Bytes,
    config: &PoolConfig,
) -> Result<Unrecovered, PoolError> {
    // Size first: it bounds the work of everything after it.
    if raw.len() > config.max_tx_size {
        return Err(PoolError::Oversized {
            size: raw.len(),
            limit: config.max_tx_size,
        });
    }
    let Some(&first) = raw.first() else {
        return Err(PoolError::Decode {
            reason: "empty input".to_owned(),
        });
    };
    // A type byte is 0x00..=0x7f; a legacy transaction starts with an RLP list header (>= 0xc0).
    // Refuse unsupported types before decoding their (possibly large, blob-carrying) bodies.
    if first <= 0x7f && first != 1 && first != 2 {
        return Err(PoolError::UnsupportedTxType { tx_type: first });
    }
    let tx = if first >= 0xc0 {
        // Decoded directly rather than through the envelope, whose legacy fallback reports
        // every RLP fault as "unexpected type 0".
        let mut buf = &raw[..];
        let signed = Signed::<TxLegacy>::rlp_decode(&mut buf).map_err(|err| PoolError::Decode {
            reason: err.to_string(),
        })?;
        if !buf.is_empty() {
            return Err(PoolError::Decode {
                reason: "trailing bytes".to_owned(),
            });
        }
        TxEnvelope::Legacy(signed)
    } else if first >= 0x80 {
        return Err(PoolError::Decode {
            reason: "expected a list or a type byte".to_owned(),
        });
    } else {
        TxEnvelope::decode_2718_exact(&raw).map_err(|err| PoolError::Decode {
            reason: err.to_string(),
        })?
    };
    // The decoder accepts a few non-canonical forms; the hash is taken over the canonical
    // encoding, so the bytes we keep and relay must be exactly that encoding.
    if tx.eip2718_encoded_length() != raw.len() {
        return Err(PoolError::Decode {
            reason: "non-canonical encoding".to_owned(),
        });
    }
    match tx.chain_id() {
        None if !config.allow_unprotected => return Err(PoolError::Unprotected),
        Some(got) if got != config.chain_id => {
            return Err(PoolError::InvalidChainId {
                expected: config.chain_id,
                got,
            });
        }
        _ => {}
    }
    let input = tx.input();
    let is_create = tx.is_create();
    if is_create && input.len() > MAX_INIT_CODE_SIZE {
        return Err(PoolError::MaxInitCodeSizeExceeded {
            size: input.len(),
            limit: MAX_INIT_CODE_SIZE,
        });
    }
    let gas = tx.gas_limit();
    if let Some(cap) = config.max_tx_gas
        && gas > cap
    {
        return Err(PoolError::GasLimitTooHigh { gas, cap });
    }
    if gas > config.block_gas_limit {
        return Err(PoolError::ExceedsBlockGasLimit {
            gas,
            limit: config.block_gas_limit,
        });
    }
    let max_fee = tx.max_fee_per_gas();
    let tip = tx.max_priority_fee_per_gas().unwrap_or(max_fee);
    if tip > max_fee {
        return Err(PoolError::TipAboveFeeCap {
            max_fee,
            max_priority_fee: tip,
        });
    }
    if tx.nonce() == u64::MAX {
        return Err(PoolError::NonceMax);
    }
    let needed = intrinsic_gas(input, is_create, tx.access_list());
    if gas < needed {
        return Err(PoolError::IntrinsicGasTooLow { gas, needed });
    }
    if config.calldata_floor {
        let floor = calldata_floor_gas(input);
        if gas < floor {
            return Err(PoolError::FloorDataGasTooLow { gas, needed: floor });
        }
    }
    if tip < config.min_priority_fee {
        return Err(PoolError::TipBelowMinimum {
            tip,
            minimum: config.min_priority_fee,
        });
    }
    let hash = *tx.tx_hash();
    Ok(Unrecovered {
        tx,
        hash,
        encoded: raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip2930::AccessListItem;
    use alloy_primitives::B256;

    #[test]
    fn intrinsic_gas_counts_every_component() {
        assert_eq!(intrinsic_gas(&[], false, None), 21_000);
        // Two zero bytes, three non-zero bytes.
        assert_eq!(
            intrinsic_gas(&[0, 1, 0, 2, 3], false, None),
            21_000 + 2 * 4 + 3 * 16
        );
        // Creation with 33 bytes of init code: two words.
        let init = [0xffu8; 33];
        assert_eq!(
            intrinsic_gas(&init, true, None),
            21_000 + 33 * 16 + 32_000 + 2 * 2
        );
        let list = AccessList(vec![
            AccessListItem {
                address: Address::ZERO,
                storage_keys: vec![B256::ZERO; 3],
            },
            AccessListItem {
                address: Address::ZERO,
                storage_keys: vec![],
            },
        ]);
        assert_eq!(
            intrinsic_gas(&[], false, Some(&list)),
            21_000 + 2 * 2_400 + 3 * 1_900
        );
    }

    #[test]
    fn calldata_floor_weighs_non_zero_bytes_four_tokens() {
        assert_eq!(calldata_floor_gas(&[]), 21_000);
        assert_eq!(calldata_floor_gas(&[0, 7]), 21_000 + 10 * (1 + 4));
        // 1 KiB of non-zero bytes: the floor (61,960) is above the standard cost (37,384).
        let data = [1u8; 1024];
        assert_eq!(calldata_floor_gas(&data), 21_000 + 40_960);
        assert!(calldata_floor_gas(&data) > intrinsic_gas(&data, false, None));
    }
}
