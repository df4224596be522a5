//! What the measured transactions do: [`LoadKind`] (transfer, erc20, amm, mix), the contracts
//! the setup phase deployed ([`Contracts`]), and [`WorkloadPlan`], which maps a transaction's
//! position in the run to its sender, nonce offset and [`Call`].

use crate::accounts::Call;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use chain_executor::workload::{derive_address, erc20_transfer_calldata, swap_calldata};

/// Gas limit of an ETH transfer.
pub const TRANSFER_GAS: u64 = 21_000;
/// Gas limit of an ERC-20 `transfer`, `mint` or `approve`: about 52,000 are used when the
/// recipient's balance slot is new, the rest is margin.
pub const TOKEN_CALL_GAS: u64 = 80_000;
/// Gas limit of an AMM `swap` (two token calls and four storage writes, about 120,000 used).
pub const SWAP_GAS: u64 = 200_000;
/// Gas limit of a contract creation or `addLiquidity`.
pub const DEPLOY_GAS: u64 = 3_000_000;
/// Token units each sending account mints for itself during setup.
pub const ACCOUNT_TOKENS: u128 = 1_000_000 * 10u128.pow(18);
/// Token units of each token a pool is seeded with.
pub const POOL_RESERVE: u128 = 1_000_000_000 * 10u128.pow(18);
/// Input of every swap: small against the reserves, so prices barely move.
pub const SWAP_AMOUNT: u128 = 10u128.pow(15);

/// Which transactions the measured phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// ETH transfers to shared recipients.
    Transfer,
    /// ERC-20 `transfer`s of one token to shared recipients.
    Erc20,
    /// AMM `swap`s spread over the pools, alternating direction.
    Amm,
    /// Transfer, erc20 and amm in turn.
    Mix,
}

impl LoadKind {
    /// Whether the setup must deploy the token (token0 for amm and mix).
    pub fn needs_token(self) -> bool {
        self != Self::Transfer
    }

    /// Whether the setup must deploy the second token and the pools.
    pub fn needs_pools(self) -> bool {
        matches!(self, Self::Amm | Self::Mix)
    }
}

impl std::str::FromStr for LoadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transfer" | "eth" => Ok(Self::Transfer),
            "erc20" => Ok(Self::Erc20),
            "amm" | "swap" => Ok(Self::Amm),
            "mix" => Ok(Self::Mix),
            other => Err(format!(
                "unknown workload {other:?} (transfer, erc20, amm, mix)"
            )),
        }
    }
}

impl std::fmt::Display for LoadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transfer => "transfer",
            Self::Erc20 => "erc20",
            Self::Amm => "amm",
            Self::Mix => "mix",
        })
    }
}

/// Contracts deployed by the setup phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Contracts {
    /// The ERC-20 of the erc20 workload, token0 of the pools.
    pub token0: Option<Address>,
    /// token1 of the pools.
    pub token1: Option<Address>,
    /// The pools.
    pub pairs: Vec<Address>,
}

/// The measured transactions: transaction `i` is sent by account `i % accounts` with that
/// account's `i / accounts`-th nonce after setup, so that every account's nonces are used in
/// order and consecutive transactions come from different senders.
#[derive(Clone, Debug)]
pub struct WorkloadPlan {
    /// Kind of transactions.
    pub kind: LoadKind,
    /// Sending accounts.
    pub accounts: usize,
    /// Shared recipients (transfer, erc20).
    pub recipients: usize,
    /// Deployed contracts.
    pub contracts: Contracts,
    /// Seed of the recipient addresses.
    pub seed: u64,
}

impl WorkloadPlan {
    /// The sending account of transaction `i`.
    pub fn sender(&self, i: u64) -> usize {
        (i % self.accounts as u64) as usize
    }

    /// How many transactions the sender of `i` sends before `i`.
    pub fn nonce_offset(&self, i: u64) -> u64 {
        i / self.accounts as u64
    }

    /// The pool account `sender` trades on (the setup approves exactly this one).
    pub fn pair_of(pairs: &[Address], sender: usize) -> Option<Address> {
        (!pairs.is_empty()).then(|| pairs[sender % pairs.len()])
    }

    /// Recipient `i mod recipients`: fresh addresses, so that only the contention knob
    /// decides how many transactions write the same account.
    pub fn recipient(&self, i: u64) -> Address {
        derive_address(
            self.seed,
            "loadgen-recipient",
            i % self.recipients.max(1) as u64,
        )
    }

    /// What transaction `i` does. `None` if the contract it calls was not deployed.
    pub fn call(&self, i: u64) -> Option<Call> {
        let kind = match self.kind {
            LoadKind::Mix => [LoadKind::Transfer, LoadKind::Erc20, LoadKind::Amm][(i % 3) as usize],
            other => other,
        };
        Some(match kind {
            LoadKind::Transfer => Call {
                to: TxKind::Call(self.recipient(i)),
                value: U256::from(1),
                input: Bytes::new(),
                gas_limit: TRANSFER_GAS,
            },
            LoadKind::Erc20 => Call {
                to: TxKind::Call(self.contracts.token0?),
                value: U256::ZERO,
                input: erc20_transfer_calldata(self.recipient(i), U256::from(1)),
                gas_limit: TOKEN_CALL_GAS,
            },
            LoadKind::Amm | LoadKind::Mix => {
                let pair = Self::pair_of(&self.contracts.pairs, self.sender(i))?;
                // Alternating direction keeps every trader's two balances from draining.
                let zero_for_one = self.nonce_offset(i).is_multiple_of(2);
                Call {
                    to: TxKind::Call(pair),
                    value: U256::ZERO,
                    input: swap_calldata(U256::from(SWAP_AMOUNT), zero_for_one, U256::ZERO),
                    gas_limit: SWAP_GAS,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chain_executor::workload::{SWAP_SELECTOR, TRANSFER_SELECTOR};

    fn plan(kind: LoadKind, contracts: Contracts) -> WorkloadPlan {
        WorkloadPlan {
            kind,
            accounts: 4,
            recipients: 2,
            contracts,
            seed: 1,
        }
    }

    #[test]
    fn senders_rotate_and_nonces_follow() {
        let p = plan(LoadKind::Transfer, Contracts::default());
        let senders: Vec<usize> = (0..6).map(|i| p.sender(i)).collect();
        assert_eq!(senders, [0, 1, 2, 3, 0, 1]);
        assert_eq!(p.nonce_offset(3), 0);
        assert_eq!(p.nonce_offset(4), 1);
    }

    #[test]
    fn contention_bounds_the_distinct_recipients() {
        let p = plan(LoadKind::Transfer, Contracts::default());
        let distinct: std::collections::HashSet<Address> =
            (0..100).map(|i| p.recipient(i)).collect();
        assert_eq!(distinct.len(), 2);
    }

    #[test]
    fn calls_target_the_deployed_contracts() {
        let contracts = Contracts {
            token0: Some(Address::repeat_byte(1)),
            token1: Some(Address::repeat_byte(2)),
            pairs: vec![Address::repeat_byte(3), Address::repeat_byte(4)],
        };
        let erc20 = plan(LoadKind::Erc20, contracts.clone()).call(0).unwrap();
        assert_eq!(erc20.to, TxKind::Call(Address::repeat_byte(1)));
        assert_eq!(erc20.input[..4], TRANSFER_SELECTOR);

        let mix = plan(LoadKind::Mix, contracts);
        assert_eq!(mix.call(0).unwrap().gas_limit, TRANSFER_GAS);
        assert_eq!(mix.call(1).unwrap().input[..4], TRANSFER_SELECTOR);
        let swap = mix.call(5).unwrap();
        assert_eq!(swap.input[..4], SWAP_SELECTOR);
        // Sender 1 trades on pool 1 % 2.
        assert_eq!(swap.to, TxKind::Call(Address::repeat_byte(4)));
    }

    #[test]
    fn missing_contracts_yield_no_call() {
        assert!(
            plan(LoadKind::Erc20, Contracts::default())
                .call(0)
                .is_none()
        );
        assert!(plan(LoadKind::Amm, Contracts::default()).call(0).is_none());
    }
}
