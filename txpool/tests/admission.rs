//! Admission: every refusal reason, its geth message, and the boundary that still passes.

mod common;

use alloy_consensus::{Signed, TxEip4844, TxEip7702, TxEnvelope};
use alloy_eips::{
    eip2718::{Decodable2718, Encodable2718},
    eip2930::{AccessList, AccessListItem},
};
use alloy_primitives::{Address, B256, Bytes, Signature, U256, hex, keccak256};
use chain_primitives::{Account, InMemoryState, StateReader};
use chain_txpool::{PoolConfig, PoolError, PooledTx, TxPool, validation};
use common::*;

fn state_for(key: &Key) -> InMemoryState {
    funded(&[key], ETH_100)
}

#[test]
fn accepts_a_valid_transaction_of_each_supported_type() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    let raws = [
        key.legacy(0, 2 * GWEI, Some(CHAIN_ID)),
        key.eip2930(1, 2 * GWEI, 21_000, AccessList::default()),
        key.transfer(2, 10 * GWEI, GWEI),
    ];
    for raw in raws {
        let hash = pool.add_raw(raw.clone(), &state).expect("valid");
        assert_eq!(hash, keccak256(&raw));
        let pooled = pool.get(&hash).expect("pooled");
        assert_eq!(pooled.sender(), key.address);
        assert_eq!(pooled.encoded(), &raw);
    }
    assert_eq!(pool.status().pending, 3);
}

#[test]
fn refuses_undecodable_bytes() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    for raw in [
        Bytes::new(),
        Bytes::from_static(&[0xc0]),
        Bytes::from_static(&[0x02, 0xc0]),
        Bytes::from_static(&[0xb8]),
    ] {
        assert!(
            matches!(
                pool.add_raw(raw.clone(), &state),
                Err(PoolError::Decode { .. })
            ),
            "{raw} must not decode"
        );
    }
    // A valid transaction followed by one extra byte.
    let mut raw = key.transfer(0, 10 * GWEI, GWEI).to_vec();
    raw.push(0);
    let err = pool.add_raw(raw.into(), &state).unwrap_err();
    assert!(matches!(err, PoolError::Decode { .. }), "{err:?}");
    assert!(err.geth_message().starts_with("rlp: "));
}

#[test]
fn refuses_blob_set_code_and_unknown_types_distinctly() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    let blob = TxEip4844 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: RECIPIENT,
        value: U256::ZERO,
        access_list: AccessList::default(),
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        max_fee_per_blob_gas: GWEI,
        input: Bytes::new(),
    };
    let blob: Signed<TxEip4844> = key.sign(blob);
    let set_code = TxEip7702 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 100_000,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: RECIPIENT,
        value: U256::ZERO,
        access_list: AccessList::default(),
        authorization_list: vec![],
        input: Bytes::new(),
    };
    let set_code = key.sign(set_code);
    let blob_raw = encode(TxEnvelope::from(blob));
    let set_code_raw = encode(TxEnvelope::from(set_code));
    assert_eq!(blob_raw[0], 3);
    assert_eq!(set_code_raw[0], 4);
    assert_eq!(
        pool.add_raw(blob_raw, &state),
        Err(PoolError::UnsupportedTxType { tx_type: 3 })
    );
    assert_eq!(
        pool.add_raw(set_code_raw, &state),
        Err(PoolError::UnsupportedTxType { tx_type: 4 })
    );
    let unknown = Bytes::from_static(&[0x05, 0xc0]);
    assert_eq!(
        pool.add_raw(unknown, &state),
        Err(PoolError::UnsupportedTxType { tx_type: 5 })
    );
    assert_eq!(
        PoolError::UnsupportedTxType { tx_type: 3 }.geth_message(),
        "transaction type not supported: tx type 3 not supported by this pool"
    );
    assert!(pool.is_empty());
}

#[test]
fn size_limit_is_inclusive() {
    let key = Key::new(1);
    let state = state_for(&key);
    let spec = TxSpec::new(0).input(vec![1; 1000]).gas(100_000);
    let raw = key.eip1559(spec);
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.max_tx_size = raw.len() - 1;
    assert_eq!(
        pool_with(config.clone()).add_raw(raw.clone(), &state),
        Err(PoolError::Oversized {
            size: raw.len(),
            limit: raw.len() - 1
        })
    );
    config.max_tx_size = raw.len();
    assert!(pool_with(config).add_raw(raw, &state).is_ok());
    // The default limit is geth's 128 KiB.
    assert_eq!(PoolConfig::default().max_tx_size, 131_072);
    let huge = key.eip1559(TxSpec::new(0).input(vec![1; 131_072]).gas(16_000_000));
    assert!(matches!(
        pool().add_raw(huge, &state),
        Err(PoolError::Oversized { .. })
    ));
}

#[test]
fn chain_id_rules() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    assert_eq!(
        pool.add_raw(key.legacy(0, 2 * GWEI, None), &state),
        Err(PoolError::Unprotected)
    );
    assert_eq!(
        pool.add_raw(key.legacy(0, 2 * GWEI, Some(1)), &state),
        Err(PoolError::InvalidChainId {
            expected: CHAIN_ID,
            got: 1
        })
    );
    assert_eq!(
        pool.add_raw(key.eip1559(TxSpec::new(0).chain(5)), &state),
        Err(PoolError::InvalidChainId {
            expected: CHAIN_ID,
            got: 5
        })
    );
    assert_eq!(
        PoolError::InvalidChainId {
            expected: CHAIN_ID,
            got: 5
        }
        .geth_message(),
        "invalid sender: invalid chain id for signer: have 5 want 31337"
    );
    // Unprotected legacy transactions pass when the configuration allows them.
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.allow_unprotected = true;
    assert!(
        pool_with(config)
            .add_raw(key.legacy(0, 2 * GWEI, None), &state)
            .is_ok()
    );
}

/// Re-signs `raw` with its signature replaced by `f(signature)`.
fn with_signature(raw: &Bytes, f: impl FnOnce(&Signature) -> Signature) -> Bytes {
    let TxEnvelope::Eip1559(signed) = TxEnvelope::decode_2718_exact(raw).unwrap() else {
        panic!("EIP-1559 expected")
    };
    let signature = f(signed.signature());
    let tx = signed.strip_signature();
    encode(TxEnvelope::from(Signed::new_unhashed(tx, signature)))
}

#[test]
fn refuses_bad_signatures() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    let raw = key.transfer(0, 10 * GWEI, GWEI);
    let n = U256::from_be_slice(&hex!(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"
    ));
    // The malleable twin (n - s, flipped parity) recovers the same key but breaks EIP-2.
    let high_s = with_signature(&raw, |sig| Signature::new(sig.r(), n - sig.s(), !sig.v()));
    let zero_r = with_signature(&raw, |sig| Signature::new(U256::ZERO, sig.s(), sig.v()));
    let r_overflow = with_signature(&raw, |sig| Signature::new(n, sig.s(), sig.v()));
    for bad in [high_s, zero_r, r_overflow] {
        assert_eq!(pool.add_raw(bad, &state), Err(PoolError::InvalidSignature));
    }
    assert_eq!(
        PoolError::InvalidSignature.geth_message(),
        "invalid sender: invalid transaction v, r, s values"
    );
    assert!(pool.add_raw(raw, &state).is_ok());
}

#[test]
fn refuses_max_nonce() {
    let key = Key::new(1);
    let state = state_for(&key);
    let raw = key.transfer(u64::MAX, 10 * GWEI, GWEI);
    assert_eq!(pool().add_raw(raw, &state), Err(PoolError::NonceMax));
    assert_eq!(PoolError::NonceMax.geth_message(), "nonce has max value");
}

#[test]
fn intrinsic_gas_boundaries() {
    let key = Key::new(1);
    let state = state_for(&key);
    // Without the calldata floor, which is above the intrinsic gas of small calldata.
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.calldata_floor = false;
    let pool = pool_with(config);
    let cases: Vec<(TxSpec, u64)> = vec![
        (TxSpec::new(0), 21_000),
        // 2 zero bytes and 3 non-zero ones.
        (TxSpec::new(0).input(vec![0, 1, 0, 2, 3]), 21_000 + 8 + 48),
        // Creation: 32,000 more and 2 per init-code word (EIP-3860).
        (
            TxSpec::new(0).input(vec![0x60; 40]).create(),
            21_000 + 40 * 16 + 32_000 + 2 * 2,
        ),
    ];
    for (spec, needed) in cases {
        let short = key.eip1559(spec.clone().gas(needed - 1));
        assert_eq!(
            pool.add_raw(short, &state),
            Err(PoolError::IntrinsicGasTooLow {
                gas: needed - 1,
                needed
            })
        );
        let exact = key.eip1559(spec.gas(needed));
        let hash = pool
            .add_raw(exact, &state)
            .expect("exact intrinsic gas passes");
        pool.remove(&hash);
    }
    // Access lists: 2,400 per address, 1,900 per key.
    let list = AccessList(vec![AccessListItem {
        address: Address::repeat_byte(7),
        storage_keys: vec![B256::ZERO, B256::repeat_byte(1)],
    }]);
    let needed = 21_000 + 2_400 + 2 * 1_900;
    assert_eq!(
        pool.add_raw(key.eip2930(0, 2 * GWEI, needed - 1, list.clone()), &state),
        Err(PoolError::IntrinsicGasTooLow {
            gas: needed - 1,
            needed
        })
    );
    assert!(
        pool.add_raw(key.eip2930(0, 2 * GWEI, needed, list), &state)
            .is_ok()
    );
    assert_eq!(
        PoolError::IntrinsicGasTooLow {
            gas: 1,
            needed: 21_000
        }
        .geth_message(),
        "intrinsic gas too low: gas 1, minimum needed 21000"
    );
}

#[test]
fn calldata_floor_applies_when_configured() {
    let key = Key::new(1);
    let state = state_for(&key);
    let data = vec![0xab; 1024];
    let standard = validation::intrinsic_gas(&data, false, None);
    let floor = validation::calldata_floor_gas(&data);
    assert!(floor > standard);
    let raw = key.eip1559(TxSpec::new(0).input(data.clone()).gas(floor - 1));
    assert_eq!(
        pool().add_raw(raw.clone(), &state),
        Err(PoolError::FloorDataGasTooLow {
            gas: floor - 1,
            needed: floor
        })
    );
    assert!(
        pool()
            .add_raw(key.eip1559(TxSpec::new(0).input(data).gas(floor)), &state)
            .is_ok()
    );
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.calldata_floor = false;
    assert!(pool_with(config).add_raw(raw, &state).is_ok());
}

#[test]
fn gas_limit_caps() {
    let key = Key::new(1);
    let state = state_for(&key);
    let cap = chain_txpool::MAX_TX_GAS_OSAKA;
    assert_eq!(
        pool().add_raw(key.eip1559(TxSpec::new(0).gas(cap + 1)), &state),
        Err(PoolError::GasLimitTooHigh { gas: cap + 1, cap })
    );
    assert!(
        pool()
            .add_raw(key.eip1559(TxSpec::new(0).gas(cap)), &state)
            .is_ok()
    );

    let config = PoolConfig::new(CHAIN_ID, 1_000_000);
    assert_eq!(
        pool_with(config.clone()).add_raw(key.eip1559(TxSpec::new(0).gas(1_000_001)), &state),
        Err(PoolError::ExceedsBlockGasLimit {
            gas: 1_000_001,
            limit: 1_000_000
        })
    );
    assert!(
        pool_with(config)
            .add_raw(key.eip1559(TxSpec::new(0).gas(1_000_000)), &state)
            .is_ok()
    );
    assert_eq!(
        PoolError::ExceedsBlockGasLimit { gas: 2, limit: 1 }.geth_message(),
        "exceeds block gas limit"
    );
}

#[test]
fn init_code_size_limit() {
    let key = Key::new(1);
    let state = state_for(&key);
    let limit = validation::MAX_INIT_CODE_SIZE;
    let too_big = key.eip1559(
        TxSpec::new(0)
            .create()
            .input(vec![0; limit + 1])
            .gas(1_000_000),
    );
    assert_eq!(
        pool().add_raw(too_big, &state),
        Err(PoolError::MaxInitCodeSizeExceeded {
            size: limit + 1,
            limit
        })
    );
    let at_limit = key.eip1559(TxSpec::new(0).create().input(vec![0; limit]).gas(1_000_000));
    assert!(pool().add_raw(at_limit, &state).is_ok());
}

#[test]
fn fee_rules() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    assert_eq!(
        pool.add_raw(key.transfer(0, 5 * GWEI, 6 * GWEI), &state),
        Err(PoolError::TipAboveFeeCap {
            max_fee: 5 * GWEI,
            max_priority_fee: 6 * GWEI
        })
    );
    assert_eq!(
        PoolError::TipAboveFeeCap {
            max_fee: 1,
            max_priority_fee: 2
        }
        .geth_message(),
        "max priority fee per gas higher than max fee per gas"
    );

    pool.set_base_fee(3 * GWEI as u64);
    let err = pool
        .add_raw(key.transfer(0, 3 * GWEI - 1, 0), &state)
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::FeeCapBelowBaseFee {
            sender: key.address,
            max_fee: 3 * GWEI - 1,
            base_fee: 3 * GWEI as u64
        }
    );
    assert_eq!(
        err.geth_message(),
        format!(
            "max fee per gas less than block base fee: address {}, maxFeePerGas: 2999999999, baseFee: 3000000000",
            key.address.to_checksum(None)
        )
    );
    assert!(pool.add_raw(key.transfer(0, 3 * GWEI, 0), &state).is_ok());

    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.min_priority_fee = 2;
    assert_eq!(
        pool_with(config.clone()).add_raw(key.transfer(0, 10 * GWEI, 1), &state),
        Err(PoolError::TipBelowMinimum { tip: 1, minimum: 2 })
    );
    assert!(
        pool_with(config)
            .add_raw(key.transfer(0, 10 * GWEI, 2), &state)
            .is_ok()
    );
}

#[test]
fn refuses_contract_senders() {
    let key = Key::new(1);
    let mut state = state_for(&key);
    state.insert_code(key.address, Bytes::from_static(&[0x00]));
    assert_eq!(
        pool().add_raw(key.transfer(0, 10 * GWEI, GWEI), &state),
        Err(PoolError::SenderNotEoa {
            sender: key.address
        })
    );
}

#[test]
fn refuses_duplicates() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    let raw = key.transfer(0, 10 * GWEI, GWEI);
    pool.add_raw(raw.clone(), &state).unwrap();
    assert_eq!(
        pool.add_raw(raw.clone(), &state),
        Err(PoolError::AlreadyKnown)
    );
    assert_eq!(
        pool.add_raw_batch(vec![raw], &state),
        vec![Err(PoolError::AlreadyKnown)]
    );
    assert_eq!(PoolError::AlreadyKnown.geth_message(), "already known");
}

#[test]
fn refuses_used_nonces() {
    let key = Key::new(1);
    let mut state = InMemoryState::new();
    set_account(&mut state, &key, 5, ETH_100);
    let pool = pool();
    let err = pool
        .add_raw(key.transfer(4, 10 * GWEI, GWEI), &state)
        .unwrap_err();
    assert_eq!(
        err,
        PoolError::NonceTooLow {
            tx_nonce: 4,
            state_nonce: 5
        }
    );
    assert_eq!(
        err.geth_message(),
        "nonce too low: next nonce 5, tx nonce 4"
    );
    assert!(
        pool.add_raw(key.transfer(5, 10 * GWEI, GWEI), &state)
            .is_ok()
    );
}

#[test]
fn balance_must_cover_this_and_earlier_pooled_transactions() {
    let key = Key::new(1);
    let max_fee = 10 * GWEI;
    let one_cost = 21_000 * max_fee + 1_000;
    let spec = |nonce| {
        TxSpec::new(nonce)
            .fees(max_fee, GWEI)
            .value(U256::from(1_000))
    };
    // Enough for one transaction, one wei short of two.
    let state = funded(&[&key], 2 * one_cost - 1);
    let pool = pool();
    pool.add_raw(key.eip1559(spec(0)), &state).unwrap();
    let err = pool.add_raw(key.eip1559(spec(1)), &state).unwrap_err();
    let cost = U256::from(one_cost);
    assert_eq!(
        err,
        PoolError::InsufficientFunds {
            balance: U256::from(2 * one_cost - 1),
            queued_cost: cost,
            tx_cost: cost,
        }
    );
    assert_eq!(
        err.geth_message(),
        format!(
            "insufficient funds for gas * price + value: balance {}, queued cost {one_cost}, tx cost {one_cost}, overshot 1",
            2 * one_cost - 1
        )
    );
    // A queued transaction with a gap ahead counts too: nonce 2 pays after nonce 0.
    assert!(matches!(
        pool.add_raw(key.eip1559(spec(2)), &state),
        Err(PoolError::InsufficientFunds { .. })
    ));

    let poor = funded(&[&key], one_cost - 1);
    let err = TxPool::new(PoolConfig::default())
        .add_raw(key.eip1559(spec(0)), &poor)
        .unwrap_err();
    assert_eq!(
        err.geth_message(),
        format!(
            "insufficient funds for gas * price + value: balance {}, tx cost {one_cost}, overshot 1",
            one_cost - 1
        )
    );
}

#[test]
fn refuses_cost_overflow() {
    let key = Key::new(1);
    let state = state_for(&key);
    let raw = key.eip1559(TxSpec::new(0).value(U256::MAX));
    assert_eq!(pool().add_raw(raw, &state), Err(PoolError::CostOverflow));
}

#[test]
fn replacement_needs_ten_percent_on_both_fees() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    let (fee, tip) = (100 * GWEI, 10 * GWEI);
    let original = pool.add_raw(key.transfer(0, fee, tip), &state).unwrap();
    let underpriced = Err(PoolError::ReplacementUnderpriced { bump_percent: 10 });
    // 9% on both.
    assert_eq!(
        pool.add_raw(key.transfer(0, fee * 109 / 100, tip * 109 / 100), &state),
        underpriced
    );
    // 10% on the cap only, and on the tip only.
    assert_eq!(
        pool.add_raw(key.transfer(0, fee * 110 / 100, tip), &state),
        underpriced
    );
    assert_eq!(
        pool.add_raw(key.transfer(0, fee, tip * 110 / 100), &state),
        underpriced
    );
    assert!(pool.contains(&original));
    // 10% on both replaces.
    let replacement = pool
        .add_raw(key.transfer(0, fee * 110 / 100, tip * 110 / 100), &state)
        .unwrap();
    assert!(!pool.contains(&original));
    assert_eq!(
        pool.get(&replacement).unwrap().max_fee_per_gas(),
        110 * GWEI
    );
    assert_eq!(pool.len(), 1);
    assert_eq!(
        PoolError::ReplacementUnderpriced { bump_percent: 10 }.geth_message(),
        "replacement transaction underpriced"
    );
    // Zero fees: any percentage of zero is zero, yet the replacement must pay more.
    let zero = Key::new(2);
    let state = funded(&[&zero], ETH_100);
    let pool = TxPool::new(PoolConfig::default());
    pool.add_raw(zero.transfer(0, 0, 0), &state).unwrap();
    assert_eq!(
        pool.add_raw(zero.transfer(0, 0, 0), &state),
        Err(PoolError::AlreadyKnown)
    );
    assert_eq!(
        pool.add_raw(
            zero.eip1559(TxSpec::new(0).fees(0, 0).value(U256::from(1))),
            &state
        ),
        underpriced
    );
    assert!(pool.add_raw(zero.transfer(0, 1, 1), &state).is_ok());
}

#[test]
fn replacement_of_a_queued_transaction_keeps_it_queued() {
    let key = Key::new(1);
    let state = state_for(&key);
    let pool = pool();
    pool.add_raw(key.transfer(3, 10 * GWEI, GWEI), &state)
        .unwrap();
    pool.add_raw(key.transfer(3, 11 * GWEI, 2 * GWEI), &state)
        .unwrap();
    assert_eq!(pool.status().queued, 1);
    pool.check_invariants().unwrap();
}

/// A state reader whose reads all fail.
struct BrokenState;

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct DiskError;

impl StateReader for BrokenState {
    type Error = DiskError;
    fn account(&self, _: &Address) -> Result<Option<Account>, DiskError> {
        Err(DiskError)
    }
    fn storage(&self, _: &Address, _: &U256) -> Result<U256, DiskError> {
        Err(DiskError)
    }
    fn code(&self, _: &B256) -> Result<Option<Bytes>, DiskError> {
        Err(DiskError)
    }
    fn block_hash(&self, _: u64) -> Result<B256, DiskError> {
        Err(DiskError)
    }
}

#[test]
fn state_read_failures_are_reported() {
    let key = Key::new(1);
    let err = pool()
        .add_raw(key.transfer(0, 10 * GWEI, GWEI), &BrokenState)
        .unwrap_err();
    assert_eq!(err, PoolError::StateRead("disk on fire".to_owned()));
}

#[test]
fn eip155_example_decodes_to_the_known_sender_and_hash() {
    // The worked example of EIP-155: key 0x4646..46, nonce 9, 20 gwei, chain 1.
    let raw = Bytes::from_static(&hex!(
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    ));
    let key = Key::from_bytes([0x46; 32]);
    let tx = PooledTx::decode(raw.clone(), &PoolConfig::new(1, 30_000_000)).unwrap();
    assert_eq!(tx.sender(), key.address);
    assert_eq!(tx.hash(), keccak256(&raw));
    assert_eq!(tx.nonce(), 9);
    assert_eq!(tx.max_fee_per_gas(), 20 * GWEI);
    assert_eq!(tx.max_priority_fee_per_gas(), 20 * GWEI);
    assert_eq!(
        tx.cost(),
        U256::from(21_000u128 * 20 * GWEI + 1_000_000_000_000_000_000)
    );
}

#[test]
fn pooled_tx_from_recovered_matches_decode() {
    let key = Key::new(3);
    let raw = key.transfer(0, 10 * GWEI, GWEI);
    let decoded = PooledTx::decode(raw.clone(), &PoolConfig::default()).unwrap();
    let envelope = TxEnvelope::decode_2718_exact(&raw).unwrap();
    let wrapped = PooledTx::from_recovered(envelope, key.address).unwrap();
    assert_eq!(decoded, wrapped);
    assert_eq!(
        wrapped.encoded().as_ref(),
        decoded.tx().encoded_2718().as_slice()
    );
}

#[test]
fn geth_messages_of_pool_level_refusals() {
    assert_eq!(
        PoolError::Underpriced.geth_message(),
        "transaction underpriced"
    );
    assert_eq!(PoolError::PoolFull.geth_message(), "txpool is full");
    assert_eq!(
        PoolError::AccountLimitExceeded { pooled: 80 }.geth_message(),
        "account limit exceeded: pooled 80 txs"
    );
    assert_eq!(
        PoolError::Oversized {
            size: 200_000,
            limit: 131_072
        }
        .geth_message(),
        "oversized data: transaction size 200000, limit 131072"
    );
    assert_eq!(
        PoolError::Unprotected.geth_message(),
        "only replay-protected (EIP-155) transactions allowed over RPC"
    );
    assert_eq!(
        PoolError::FloorDataGasTooLow { gas: 1, needed: 2 }.geth_message(),
        "insufficient gas for floor data gas cost: gas 1, minimum needed 2"
    );
    assert_eq!(
        PoolError::CostOverflow.geth_message(),
        "insufficient funds for gas * price + value"
    );
}
