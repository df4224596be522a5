//! `chaind dev`: a one-command chain with the well-known test accounts funded, like anvil.

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use chain_primitives::{
    ChainGenesis, ConsensusGenesis, GenesisValidator,
    dev::{DEV_ACCOUNTS, DEV_MNEMONIC, loadgen_secret},
    genesis::BlockTime,
};
use rayon::prelude::*;

/// Chain id of dev chains (anvil's and hardhat's).
pub const DEV_CHAIN_ID: u64 = 31337;
const ETH: u128 = 1_000_000_000_000_000_000;

/// The dev accounts: keys derived from the test mnemonic at m/44'/60'/0'/0/i.
pub fn dev_signers() -> anyhow::Result<Vec<PrivateKeySigner>> {
    (0..DEV_ACCOUNTS)
        .map(|i| {
            Ok(MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(i)?
                .build()?)
        })
        .collect()
}

/// Addresses of `count` load-test accounts under `seed` (the ones `loadgen` signs with).
pub fn loadgen_addresses(seed: u64, count: u64) -> anyhow::Result<Vec<Address>> {
    (0..count)
        .into_par_iter()
        .map(|i| Ok(PrivateKeySigner::from_bytes(&loadgen_secret(seed, i))?.address()))
        .collect()
}

/// Options of the dev chain.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Slot length.
    pub block_time_ms: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Load-test accounts to fund.
    pub prefund_loadgen: u64,
    /// Their seed.
    pub loadgen_seed: u64,
    /// Genesis time in seconds.
    pub timestamp: u64,
}

/// The dev genesis: the dev accounts with 10,000 ETH each, the load-test accounts with 1,000
/// ETH each, dev account 0 the only validator.
pub fn dev_genesis(
    options: &DevOptions,
    signers: &[PrivateKeySigner],
) -> anyhow::Result<ChainGenesis> {
    let mut genesis = alloy_genesis::Genesis::default();
    genesis.config.chain_id = DEV_CHAIN_ID;
    genesis.gas_limit = options.gas_limit;
    genesis.base_fee_per_gas = Some(1_000_000_000);
    genesis.timestamp = options.timestamp;
    genesis.coinbase = signers[0].address();
    genesis.mix_hash = B256::ZERO;
    for signer in signers {
        genesis.alloc.insert(
            signer.address(),
            alloy_genesis::GenesisAccount::default().with_balance(U256::from(10_000 * ETH)),
        );
    }
    for address in loadgen_addresses(options.loadgen_seed, options.prefund_loadgen)? {
        genesis.alloc.insert(
            address,
            alloy_genesis::GenesisAccount::default().with_balance(U256::from(1_000 * ETH)),
        );
    }
    Ok(ChainGenesis {
        eth: genesis,
        consensus: ConsensusGenesis {
            block_time: BlockTime(options.block_time_ms),
            validators: vec![GenesisValidator {
                address: signers[0].address(),
                stake: U256::from(32 * ETH),
            }],
            epoch_length: 32,
        },
    })
}

/// The banner `chaind dev` prints: accounts and keys, as anvil does.
pub fn banner(
    signers: &[PrivateKeySigner],
    rpc: &str,
    datadir: &std::path::Path,
    prefunded: u64,
) -> String {
    let mut out = String::new();
    out.push_str("\nchaind dev chain (chain id 31337)\n\nAvailable accounts (10,000 ETH each)\n==================\n");
    for (i, signer) in signers.iter().enumerate() {
        out.push_str(&format!("({i}) {}\n", signer.address()));
    }
    out.push_str("\nPrivate keys\n==================\n");
    for (i, signer) in signers.iter().enumerate() {
        out.push_str(&format!(
            "({i}) 0x{}\n",
            alloy_primitives::hex::encode(signer.to_bytes())
        ));
    }
    out.push_str(&format!(
        "\nMnemonic: {DEV_MNEMONIC}\nDerivation path: m/44'/60'/0'/0/\n"
    ));
    if prefunded > 0 {
        out.push_str(&format!(
            "Load-test accounts funded: {prefunded} (1,000 ETH each)\n"
        ));
    }
    out.push_str(&format!(
        "\nData directory: {}\nJSON-RPC (HTTP and WebSocket): {rpc}\n",
        datadir.display()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_the_well_known_ones() {
        let signers = dev_signers().unwrap();
        assert_eq!(signers.len(), 10);
        assert_eq!(
            signers[0].address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(
            signers[1].address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );
    }
}
