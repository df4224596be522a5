//! Deterministic keys of dev and load-test accounts, shared by `chaind dev` (which funds them)
//! and `loadgen` (which signs with them), so that both agree without exchanging files.

use alloy_primitives::{B256, keccak256};

/// The well-known test mnemonic (anvil's and hardhat's).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Number of dev accounts derived from [`DEV_MNEMONIC`] and funded by `chaind dev`.
pub const DEV_ACCOUNTS: u32 = 10;

/// Secret key of load-test account `index` under `seed`: keccak256("chaind-loadgen" || seed ||
/// index), re-hashed in the negligible case that it is not a valid secp256k1 scalar.
pub fn loadgen_secret(seed: u64, index: u64) -> B256 {
    let mut input = Vec::with_capacity(30);
    input.extend_from_slice(b"chaind-loadgen");
    input.extend_from_slice(&seed.to_be_bytes());
    input.extend_from_slice(&index.to_be_bytes());
    keccak256(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_deterministic_and_distinct() {
        assert_eq!(loadgen_secret(1, 2), loadgen_secret(1, 2));
        assert_ne!(loadgen_secret(1, 2), loadgen_secret(1, 3));
        assert_ne!(loadgen_secret(1, 2), loadgen_secret(2, 2));
    }
}
