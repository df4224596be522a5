//! secp256k1 signing and recovery, validator keys and the RANDAO hash chains.

use alloy_primitives::map::HashMap;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, keccak256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message as SecpMessage, PublicKey, SECP256K1, SecretKey};
use serde::{Deserialize, Serialize};

use crate::error::ConsensusError;

/// Half the secp256k1 group order: signatures with a larger `s` are refused so that a
/// signature cannot be altered into a second valid encoding of the same statement.
const SECP256K1_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// Default length of a validator's RANDAO hash chain, in epochs (2^20: about a year with
/// 32-slot epochs of one second). A validator must re-register before it runs out.
pub const DEFAULT_RANDAO_CHAIN_EPOCHS: u64 = 1 << 20;

/// Every `RANDAO_CHECKPOINT_INTERVAL`-th element of a key's hash chain is kept in memory, so
/// a reveal costs at most that many hashes and the key holds `length / interval` hashes.
const RANDAO_CHECKPOINT_INTERVAL: u64 = 128;

/// A recoverable secp256k1 signature (Ethereum layout: `r`, `s`, recovery id `v` in {0, 1}).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    RlpEncodable,
    RlpDecodable,
)]
pub struct Signature {
    /// The `r` scalar.
    pub r: B256,
    /// The `s` scalar; must be in the lower half of the group order.
    pub s: B256,
    /// The recovery id, 0 or 1.
    pub v: u8,
}

impl Signature {
    /// Signs a 32-byte digest with `secret` (RFC 6979 deterministic nonce, low `s`).
    pub(crate) fn sign(secret: &SecretKey, digest: B256) -> Self {
        let signature =
            SECP256K1.sign_ecdsa_recoverable(SecpMessage::from_digest(digest.0), secret);
        let (recovery_id, bytes) = signature.serialize_compact();
        Self {
            r: B256::from_slice(&bytes[..32]),
            s: B256::from_slice(&bytes[32..]),
            v: i32::from(recovery_id) as u8,
        }
    }

    /// The address whose key produced this signature over `digest`. Refuses high-`s` and
    /// recovery ids other than 0 and 1, so that each signer has one encoding per statement.
    pub fn recover(&self, digest: B256) -> Result<Address, ConsensusError> {
        let invalid = || ConsensusError::BadSignature {
            expected: Address::ZERO,
        };
        if self.v > 1 || self.s.0 > SECP256K1_HALF_ORDER {
            return Err(invalid());
        }
        let recovery_id = RecoveryId::try_from(i32::from(self.v)).map_err(|_| invalid())?;
        let mut compact = [0u8; 64];
        compact[..32].copy_from_slice(self.r.as_slice());
        compact[32..].copy_from_slice(self.s.as_slice());
        let signature =
            RecoverableSignature::from_compact(&compact, recovery_id).map_err(|_| invalid())?;
        let public = SECP256K1
            .recover_ecdsa(SecpMessage::from_digest(digest.0), &signature)
            .map_err(|_| invalid())?;
        Ok(address_of(&public))
    }
}

/// The Ethereum address of a public key: the last 20 bytes of keccak of its uncompressed form.
pub fn address_of(public: &PublicKey) -> Address {
    let uncompressed = public.serialize_uncompressed();
    Address::from_slice(&keccak256(&uncompressed[1..])[12..])
}

/// Signer (or `None` for an invalid signature) by digest and signature.
type RecoveryMemo = HashMap<(B256, Signature), Option<Address>>;

/// A memo of signature recoveries, shared by clones.
///
/// Recovery is the costly step of checking a message (tens of microseconds). The network layer
/// checks a message before relaying it and the engine checks it again when it handles it; a
/// cache shared by both (and, in the simulator, by all nodes of one process) recovers each
/// signature once. It memoizes a pure function, so it cannot change any outcome.
#[derive(Clone)]
pub struct SignatureCache {
    inner: Arc<Mutex<RecoveryMemo>>,
    capacity: usize,
}

impl std::fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCache")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl SignatureCache {
    /// A cache that forgets everything once it holds `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::default())),
            capacity: capacity.max(1),
        }
    }

    /// Checks that `signature` over `digest` was made by `expected`.
    pub fn verify(
        &self,
        digest: B256,
        signature: &Signature,
        expected: Address,
    ) -> Result<(), ConsensusError> {
        match self.recover(digest, signature) {
            Some(signer) if signer == expected => Ok(()),
            _ => Err(ConsensusError::BadSignature { expected }),
        }
    }

    /// The signer of `digest`, or `None` if the signature is invalid.
    pub fn recover(&self, digest: B256, signature: &Signature) -> Option<Address> {
        let key = (digest, *signature);
        // A poisoned lock only means another thread panicked mid-insert of a pure value; the
        // map is still consistent, so keep using it.
        if let Some(hit) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return *hit;
        }
        let signer = signature.recover(digest).ok();
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, signer);
        signer
    }
}

impl Default for SignatureCache {
    fn default() -> Self {
        Self::new(1 << 16)
    }
}

/// A validator's registered RANDAO commitment: `value` is the reveal for epoch `epoch - 1`,
/// so the reveal `R` for epoch `e >= epoch` satisfies `keccak^(e - epoch + 1)(R) == value`.
///
/// Reveals are elements of a hash chain walked backwards (a "hash onion"): each validator has
/// exactly one valid reveal per epoch, so a proposer can withhold its reveal but cannot grind
/// it. An ECDSA signature over the slot would not do: ECDSA is not a unique signature scheme,
/// and a proposer could try many nonces to steer the seed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct RandaoAnchor {
    /// The last known chain element.
    pub value: B256,
    /// The first epoch whose reveal hashes (once) to `value`.
    pub epoch: u64,
}

impl RandaoAnchor {
    /// Checks `reveal` as the validator's reveal for `epoch`; on success returns the anchor to
    /// keep afterwards. `max_hashes` bounds the work an old anchor may cost.
    pub fn verify(&self, epoch: u64, reveal: B256, max_hashes: u64) -> Option<RandaoAnchor> {
        let next_epoch = epoch.checked_add(1)?;
        if next_epoch == self.epoch {
            // A second proposal in the same epoch repeats that epoch's reveal.
            return (reveal == self.value).then_some(*self);
        }
        let steps = next_epoch.checked_sub(self.epoch)?;
        if steps > max_hashes {
            return None;
        }
        let mut value = reveal;
        for _ in 0..steps {
            value = keccak256(value);
        }
        (value == self.value).then_some(RandaoAnchor {
            value: reveal,
            epoch: next_epoch,
        })
    }
}

/// A validator's signing key with its RANDAO hash chain.
///
/// The chain's seed is derived from the secret key, so the key alone is the validator's whole
/// secret: element `i` is `keccak^i(seed)`, the reveal for epoch `e` is element
/// `length - 1 - e`, and the genesis commitment is element `length`.
pub struct ValidatorKey {
    secret: SecretKey,
    address: Address,
    randao_length: u64,
    /// Element `i * RANDAO_CHECKPOINT_INTERVAL` of the chain at index `i`.
    randao_checkpoints: Vec<B256>,
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("ValidatorKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Clone for ValidatorKey {
    fn clone(&self) -> Self {
        Self {
            secret: self.secret,
            address: self.address,
            randao_length: self.randao_length,
            randao_checkpoints: self.randao_checkpoints.clone(),
        }
    }
}

impl ValidatorKey {
    /// A key from 32 secret bytes, with a RANDAO chain covering epochs `0..randao_chain_epochs`
    /// (computing it costs `randao_chain_epochs` hashes).
    pub fn from_secret_bytes(
        secret: [u8; 32],
        randao_chain_epochs: u64,
    ) -> Result<Self, ConsensusError> {
        let secret = SecretKey::from_byte_array(secret)
            .map_err(|_| ConsensusError::InvalidConfig("secret key out of range".into()))?;
        if randao_chain_epochs == 0 || randao_chain_epochs > 1 << 32 {
            return Err(ConsensusError::InvalidConfig("RANDAO chain length".into()));
        }
        let address = address_of(&PublicKey::from_secret_key(SECP256K1, &secret));
        let mut seed_input = b"chaind/randao/v1".to_vec();
        seed_input.extend_from_slice(&secret.secret_bytes());
        let mut element = keccak256(&seed_input);
        let mut randao_checkpoints =
            Vec::with_capacity((randao_chain_epochs / RANDAO_CHECKPOINT_INTERVAL + 1) as usize);
        for index in 0..=randao_chain_epochs {
            if index % RANDAO_CHECKPOINT_INTERVAL == 0 {
                randao_checkpoints.push(element);
            }
            element = keccak256(element);
        }
        Ok(Self {
            secret,
            address,
            randao_length: randao_chain_epochs,
            randao_checkpoints,
        })
    }

    /// The validator's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a digest. Crate-internal on purpose: honest signing goes through the engine and
    /// its slashing protection; the simulator's Byzantine nodes use [`Self::sign_unprotected`].
    pub(crate) fn sign(&self, digest: B256) -> Signature {
        Signature::sign(&self.secret, digest)
    }

    /// Signs any digest without slashing protection. Only for tests and the simulator's
    /// Byzantine validators; an honest node signs only through the engine.
    pub fn sign_unprotected(&self, digest: B256) -> Signature {
        self.sign(digest)
    }

    /// The RANDAO reveal for `epoch`, or `None` once the chain is used up.
    pub fn randao_reveal(&self, epoch: u64) -> Option<B256> {
        let index = self.randao_length.checked_sub(epoch.checked_add(1)?)?;
        Some(self.randao_element(index))
    }

    /// The commitment to register so that reveals are accepted from `epoch` on.
    pub fn randao_anchor(&self, epoch: u64) -> Option<RandaoAnchor> {
        let index = self.randao_length.checked_sub(epoch)?;
        Some(RandaoAnchor {
            value: self.randao_element(index),
            epoch,
        })
    }

    fn randao_element(&self, index: u64) -> B256 {
        let checkpoint = (index / RANDAO_CHECKPOINT_INTERVAL) as usize;
        let mut element = self.randao_checkpoints[checkpoint];
        for _ in 0..index % RANDAO_CHECKPOINT_INTERVAL {
            element = keccak256(element);
        }
        element
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ValidatorKey {
        ValidatorKey::from_secret_bytes([byte; 32], 300).unwrap()
    }

    #[test]
    fn signature_recovers_signer_and_rejects_tampering() {
        let key = key(3);
        let digest = keccak256(b"statement");
        let signature = key.sign(digest);
        assert_eq!(signature.recover(digest).unwrap(), key.address());
        // Another digest recovers someone else (or fails), never the signer.
        assert_ne!(
            signature.recover(keccak256(b"other")).ok(),
            Some(key.address())
        );
        let mut flipped = signature;
        flipped.r.0[5] ^= 1;
        assert_ne!(flipped.recover(digest).ok(), Some(key.address()));
        let mut bad_v = signature;
        bad_v.v = 2;
        assert!(bad_v.recover(digest).is_err());
        let zero = Signature {
            r: B256::ZERO,
            s: B256::ZERO,
            v: 0,
        };
        assert!(zero.recover(digest).is_err());
    }

    #[test]
    fn high_s_encoding_is_refused() {
        let key = key(4);
        let digest = keccak256(b"malleable");
        let signature = key.sign(digest);
        // n - s with the recovery id flipped is the same signature in its high-s form.
        let order = alloy_primitives::U256::from_be_bytes([
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
            0xd0, 0x36, 0x41, 0x41,
        ]);
        let high_s = order - alloy_primitives::U256::from_be_bytes(signature.s.0);
        let malleated = Signature {
            r: signature.r,
            s: B256::from(high_s.to_be_bytes()),
            v: 1 - signature.v,
        };
        assert!(malleated.recover(digest).is_err());
    }

    #[test]
    fn cache_agrees_with_direct_recovery() {
        let cache = SignatureCache::new(2);
        let key = key(5);
        for i in 0..5u8 {
            let digest = keccak256([i]);
            let signature = key.sign(digest);
            assert!(cache.verify(digest, &signature, key.address()).is_ok());
            assert!(
                cache
                    .verify(digest, &signature, Address::repeat_byte(1))
                    .is_err()
            );
        }
    }

    #[test]
    fn randao_reveals_chain_back_to_the_anchor() {
        let key = key(6);
        let genesis = key.randao_anchor(0).unwrap();
        let mut anchor = genesis;
        for epoch in [0u64, 0, 3, 4, 150, 299] {
            let reveal = key.randao_reveal(epoch).unwrap();
            anchor = anchor.verify(epoch, reveal, 1000).expect("valid reveal");
            assert_eq!(anchor.epoch, epoch + 1);
        }
        // Going back, or revealing another epoch's value, fails.
        assert!(
            anchor
                .verify(10, key.randao_reveal(10).unwrap(), 1000)
                .is_none()
        );
        assert!(
            genesis
                .verify(5, key.randao_reveal(6).unwrap(), 1000)
                .is_none()
        );
        assert!(
            genesis
                .verify(5, key.randao_reveal(5).unwrap(), 3)
                .is_none(),
            "work bound"
        );
        assert!(key.randao_reveal(300).is_none());
        // A late anchor (for joiners) accepts reveals from its epoch on.
        let late = key.randao_anchor(40).unwrap();
        assert!(
            late.verify(40, key.randao_reveal(40).unwrap(), 10)
                .is_some()
        );
        assert!(
            late.verify(38, key.randao_reveal(38).unwrap(), 10)
                .is_none()
        );
    }
}
