//! The setup phase, which is not measured: optional funding from a faucet, the sending
//! accounts' nonces, and the workload's contracts (token, pools, liquidity) plus each account's
//! token balance and approval. Everything is sent in batches and waited for by reading block
//! receipts; a setup transaction that is rejected, reverts or is not included fails the run.
//! [`run_setup`] returns the deployed [`Contracts`] in a [`SetupOutcome`].

use crate::{
    accounts::{Account, Call, FeeParams, SignedTx},
    error::LoadgenError,
    rpc::{NodeRpc, TxReceipt},
    workload::{
        ACCOUNT_TOKENS, Contracts, DEPLOY_GAS, LoadKind, POOL_RESERVE, TOKEN_CALL_GAS,
        TRANSFER_GAS, WorkloadPlan,
    },
};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, map::B256Map};
use chain_executor::workload::{
    ADD_LIQUIDITY_SELECTOR, MINT_SELECTOR, erc20_approve_calldata, erc20_creation, pair_creation,
    with_constructor_args,
};
use rayon::prelude::*;
use std::{sync::Arc, time::Duration};
use tokio::{task::JoinSet, time::Instant};

/// Addresses per `eth_getTransactionCount` / `eth_getBalance` batch.
pub const QUERY_BATCH: usize = 500;
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 8;
/// How often the setup looks for new blocks while waiting for its transactions.
const SETUP_POLL: Duration = Duration::from_millis(200);

/// Options of the setup phase.
#[derive(Clone, Debug)]
pub struct SetupConfig {
    /// The measured workload, which decides what to deploy.
    pub kind: LoadKind,
    /// Pools to deploy (amm, mix).
    pub pools: usize,
    /// Account that funds the sending accounts and deploys the contracts; without one, the
    /// sending accounts must be prefunded and account 0 deploys.
    pub faucet: Option<Account>,
    /// Wei the faucet sends to each account holding less than half of it.
    pub fund_wei: U256,
    /// Most transactions of one sender (faucet, deployer) sent before waiting for them: a
    /// node's pool caps how far one sender may run ahead.
    pub chain_depth: usize,
    /// Transactions per `eth_sendRawTransaction` batch.
    pub batch: usize,
    /// Longest wait for one round of setup transactions to be included.
    pub timeout: Duration,
    /// Fees of setup transactions.
    pub fees: FeeParams,
    /// The chain id to sign for.
    pub chain_id: u64,
}

/// What the setup did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SetupOutcome {
    /// Deployed contracts.
    pub contracts: Contracts,
    /// Accounts the faucet funded.
    pub funded_accounts: usize,
    /// Setup transactions sent and included.
    pub transactions: u64,
    /// Wall-clock seconds the setup took.
    pub elapsed_s: f64,
}

/// Calldata of `mint(to, amount)`.
pub fn mint_calldata(to: Address, amount: U256) -> Bytes {
    [
        &MINT_SELECTOR[..],
        &to.into_word().0,
        &amount.to_be_bytes::<32>(),
    ]
    .concat()
    .into()
}

/// Calldata of `addLiquidity(amount0, amount1)`.
pub fn add_liquidity_calldata(amount0: U256, amount1: U256) -> Bytes {
    [
        &ADD_LIQUIDITY_SELECTOR[..],
        &amount0.to_be_bytes::<32>(),
        &amount1.to_be_bytes::<32>(),
    ]
    .concat()
    .into()
}

fn call(to: Address, input: Bytes, gas_limit: u64) -> Call {
    Call {
        to: TxKind::Call(to),
        value: U256::ZERO,
        input,
        gas_limit,
    }
}

fn create(code: Bytes) -> Call {
    Call {
        to: TxKind::Create,
        value: U256::ZERO,
        input: code,
        gas_limit: DEPLOY_GAS,
    }
}

/// The deployer's transactions and the contracts they create: token0 (and for pools token1
/// and `pools` pairs, seeded with liquidity). Nonces come from `deployer.nonce`, which is
/// advanced.
pub fn deployment_txs(
    deployer: &mut Account,
    kind: LoadKind,
    pools: usize,
    chain_id: u64,
    fees: FeeParams,
) -> (Vec<SignedTx>, Contracts) {
    let mut txs = Vec::new();
    let mut contracts = Contracts::default();
    if !kind.needs_token() {
        return (txs, contracts);
    }
    let token_code = with_constructor_args(&erc20_creation(), &[U256::ZERO.to_be_bytes()]);
    let deploy = |deployer: &mut Account, code: Bytes, txs: &mut Vec<SignedTx>| {
        let address = deployer.address.create(deployer.nonce);
        txs.push(deployer.sign_next(&create(code), chain_id, fees));
        address
    };
    let token0 = deploy(deployer, token_code.clone(), &mut txs);
    contracts.token0 = Some(token0);
    if !kind.needs_pools() {
        return (txs, contracts);
    }
    let token1 = deploy(deployer, token_code, &mut txs);
    contracts.token1 = Some(token1);
    let pair_code = with_constructor_args(
        &pair_creation(),
        &[token0.into_word().0, token1.into_word().0],
    );
    contracts.pairs = (0..pools.max(1))
        .map(|_| deploy(deployer, pair_code.clone(), &mut txs))
        .collect();
    let reserve = U256::from(POOL_RESERVE);
    let supply = reserve * U256::from(contracts.pairs.len());
    let own = deployer.address;
    for token in [token0, token1] {
        txs.push(deployer.sign_next(
            &call(token, mint_calldata(own, supply), TOKEN_CALL_GAS),
            chain_id,
            fees,
        ));
        for pair in &contracts.pairs {
            let approve = erc20_approve_calldata(*pair, U256::MAX);
            txs.push(deployer.sign_next(&call(token, approve, TOKEN_CALL_GAS), chain_id, fees));
        }
    }
    for pair in &contracts.pairs {
        let add = add_liquidity_calldata(reserve, reserve);
        txs.push(deployer.sign_next(&call(*pair, add, DEPLOY_GAS), chain_id, fees));
    }
    (txs, contracts)
}

/// Each sending account's own setup: mint token0 for itself, and for pools also token1 and
/// approve its pool (the one [`WorkloadPlan::pair_of`] gives it) on both tokens. Nonces come
/// from each account's `nonce`, which is advanced. Signed in parallel.
pub fn account_setup_txs(
    accounts: &mut [Account],
    kind: LoadKind,
    contracts: &Contracts,
    chain_id: u64,
    fees: FeeParams,
) -> Vec<SignedTx> {
    let Some(token0) = contracts.token0.filter(|_| kind.needs_token()) else {
        return Vec::new();
    };
    let pools = kind
        .needs_pools()
        .then_some(())
        .and(contracts.token1.zip(Some(&contracts.pairs)));
    let per_account: Vec<Vec<SignedTx>> = accounts
        .par_iter_mut()
        .enumerate()
        .map(|(i, account)| {
            let amount = U256::from(ACCOUNT_TOKENS);
            let own = account.address;
            let mut txs = vec![account.sign_next(
                &call(token0, mint_calldata(own, amount), TOKEN_CALL_GAS),
                chain_id,
                fees,
            )];
            if let Some((token1, pairs)) = pools
                && let Some(pair) = WorkloadPlan::pair_of(pairs, i)
            {
                txs.push(account.sign_next(
                    &call(token1, mint_calldata(own, amount), TOKEN_CALL_GAS),
                    chain_id,
                    fees,
                ));
                for token in [token0, token1] {
                    let approve = erc20_approve_calldata(pair, U256::MAX);
                    txs.push(account.sign_next(
                        &call(token, approve, TOKEN_CALL_GAS),
                        chain_id,
                        fees,
                    ));
                }
            }
            txs
        })
        .collect();
    // Round-robin over accounts, so that each batch spreads over many senders.
    let depth = per_account.iter().map(Vec::len).max().unwrap_or(0);
    (0..depth)
        .flat_map(|k| {
            per_account
                .iter()
                .filter_map(move |txs| txs.get(k).cloned())
        })
        .collect()
}

/// The pending nonces of `addresses`, in batches.
pub async fn fetch_nonces<R: NodeRpc>(
    rpc: &R,
    addresses: &[Address],
) -> Result<Vec<u64>, LoadgenError> {
    let mut nonces = Vec::with_capacity(addresses.len());
    for chunk in addresses.chunks(QUERY_BATCH) {
        nonces.extend(rpc.pending_nonces(chunk).await?);
    }
    Ok(nonces)
}

/// Sends `txs` in batches, several requests at once, and fails on any rejection.
pub async fn send_all<R: NodeRpc>(
    rpc: &Arc<R>,
    txs: &[SignedTx],
    batch: usize,
) -> Result<(), LoadgenError> {
    let mut requests = JoinSet::new();
    let mut rejections: Vec<String> = Vec::new();
    let mut collect = |result: Result<
        Result<Vec<crate::rpc::SendOutcome>, LoadgenError>,
        tokio::task::JoinError,
    >| {
        match result {
            Ok(Ok(outcomes)) => rejections.extend(outcomes.into_iter().filter_map(Result::err)),
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(LoadgenError::Setup(format!("send task failed: {error}"))),
        }
        Ok(())
    };
    for chunk in txs.chunks(batch.max(1)) {
        if requests.len() >= SETUP_CONCURRENCY
            && let Some(done) = requests.join_next().await
        {
            collect(done)?;
        }
        let raws: Vec<Bytes> = chunk.iter().map(|t| t.raw.clone()).collect();
        let rpc = Arc::clone(rpc);
        requests.spawn(async move { rpc.send_raw_batch(&raws).await });
    }
    while let Some(done) = requests.join_next().await {
        collect(done)?;
    }
    if rejections.is_empty() {
        Ok(())
    } else {
        let examples: Vec<&str> = rejections.iter().take(3).map(String::as_str).collect();
        Err(LoadgenError::Setup(format!(
            "{} setup transactions rejected, e.g. {examples:?}",
            rejections.len()
        )))
    }
}

/// Waits until every hash is in a block after `after`, reading block receipts; fails if one
/// reverted or `timeout` passes.
pub async fn wait_for_receipts<R: NodeRpc>(
    rpc: &R,
    hashes: &[B256],
    after: u64,
    timeout: Duration,
) -> Result<B256Map<TxReceipt>, LoadgenError> {
    let deadline = Instant::now() + timeout;
    let mut waiting: B256Map<()> = hashes.iter().map(|h| (*h, ())).collect();
    let mut found = B256Map::default();
    let mut next = after + 1;
    while !waiting.is_empty() {
        let head = rpc.block_number().await?;
        while next <= head {
            let Some(receipts) = rpc.block_receipts(next).await? else {
                break;
            };
            for receipt in receipts {
                if waiting.remove(&receipt.transaction_hash).is_some() {
                    found.insert(receipt.transaction_hash, receipt);
                }
            }
            next += 1;
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(LoadgenError::Setup(format!(
                "{} of {} setup transactions not included after {timeout:?}",
                waiting.len(),
                hashes.len()
            )));
        }
        tokio::time::sleep(SETUP_POLL).await;
    }
    let reverted = found.values().filter(|r| !r.status).count();
    if reverted > 0 {
        return Err(LoadgenError::Setup(format!(
            "{reverted} of {} setup transactions reverted",
            hashes.len()
        )));
    }
    Ok(found)
}

/// Sends `txs` and waits for them, in rounds of `round` transactions (one round if `round` is
/// at least `txs.len()`).
pub async fn send_and_wait<R: NodeRpc>(
    rpc: &Arc<R>,
    txs: &[SignedTx],
    round: usize,
    config: &SetupConfig,
) -> Result<(), LoadgenError> {
    for chunk in txs.chunks(round.max(1)) {
        let after = rpc.block_number().await?;
        send_all(rpc, chunk, config.batch).await?;
        let hashes: Vec<B256> = chunk.iter().map(|t| t.hash).collect();
        wait_for_receipts(&**rpc, &hashes, after, config.timeout).await?;
    }
    Ok(())
}

/// Without a faucet the accounts must have been funded at genesis: checks the first and the
/// last, so that a node started with too few prefunded accounts (or another seed) fails here
/// with a hint rather than as a run full of "insufficient funds" rejections.
async fn check_prefunded<R: NodeRpc>(rpc: &R, addresses: &[Address]) -> Result<(), LoadgenError> {
    let (Some(first), Some(last)) = (addresses.first(), addresses.last()) else {
        return Ok(());
    };
    let balances = rpc.balances(&[*first, *last]).await?;
    if let Some(position) = balances.iter().position(U256::is_zero) {
        let index = if position == 0 {
            0
        } else {
            addresses.len() - 1
        };
        return Err(LoadgenError::Setup(format!(
            "load-test account {index} ({}) has no ETH: start the node with `chaind dev --prefund-loadgen {}` and \
             the same --loadgen-seed, or pass --faucet-key",
            addresses[index],
            addresses.len()
        )));
    }
    Ok(())
}

/// Runs the setup for `accounts`, leaving each account's `nonce` at its next free nonce.
pub async fn run_setup<R: NodeRpc>(
    rpc: &Arc<R>,
    accounts: &mut [Account],
    config: &SetupConfig,
) -> Result<SetupOutcome, LoadgenError> {
    let started = Instant::now();
    let mut outcome = SetupOutcome::default();
    let addresses: Vec<Address> = accounts.iter().map(|a| a.address).collect();
    let (chain_id, fees) = (config.chain_id, config.fees);

    let mut faucet = config.faucet.clone();
    if faucet.is_none() {
        check_prefunded(&**rpc, &addresses).await?;
    }
    if let Some(faucet) = faucet.as_mut() {
        faucet.nonce = fetch_nonces(&**rpc, &[faucet.address]).await?[0];
        let mut balances = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(QUERY_BATCH) {
            balances.extend(rpc.balances(chunk).await?);
        }
        let threshold = config.fund_wei / U256::from(2);
        let needy: Vec<Address> = addresses
            .iter()
            .zip(&balances)
            .filter(|(_, b)| **b < threshold)
            .map(|(a, _)| *a)
            .collect();
        let transfers: Vec<SignedTx> = needy
            .iter()
            .map(|to| {
                let transfer = Call {
                    to: TxKind::Call(*to),
                    value: config.fund_wei,
                    input: Bytes::new(),
                    gas_limit: TRANSFER_GAS,
                };
                faucet.sign_next(&transfer, chain_id, fees)
            })
            .collect();
        tracing::info!(accounts = needy.len(), "funding accounts from the faucet");
        send_and_wait(rpc, &transfers, config.chain_depth, config).await?;
        outcome.funded_accounts = needy.len();
        outcome.transactions += transfers.len() as u64;
    }

    for (account, nonce) in accounts
        .iter_mut()
        .zip(fetch_nonces(&**rpc, &addresses).await?)
    {
        account.nonce = nonce;
    }

    if config.kind.needs_token() {
        // The deployer is the faucet if there is one, else sending account 0 (whose nonce the
        // measured phase then continues from).
        let (txs, contracts) = match faucet.as_mut() {
            Some(faucet) => deployment_txs(faucet, config.kind, config.pools, chain_id, fees),
            None => {
                let deployer = accounts
                    .first_mut()
                    .ok_or_else(|| LoadgenError::Config("no accounts".into()))?;
                deployment_txs(deployer, config.kind, config.pools, chain_id, fees)
            }
        };
        tracing::info!(transactions = txs.len(), "deploying contracts");
        send_and_wait(rpc, &txs, config.chain_depth, config).await?;
        outcome.transactions += txs.len() as u64;
        let account_txs = account_setup_txs(accounts, config.kind, &contracts, chain_id, fees);
        tracing::info!(
            transactions = account_txs.len(),
            "minting tokens and approving pools for every account"
        );
        // Each account sends at most four, so the whole lot goes in one round.
        send_and_wait(rpc, &account_txs, account_txs.len(), config).await?;
        outcome.transactions += account_txs.len() as u64;
        outcome.contracts = contracts;
    }
    outcome.elapsed_s = started.elapsed().as_secs_f64();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::loadgen_accounts;

    #[test]
    fn deployments_predict_contract_addresses_from_nonces() {
        let mut deployer = loadgen_accounts(1, 1).unwrap().remove(0);
        deployer.nonce = 5;
        let (txs, contracts) = deployment_txs(
            &mut deployer,
            LoadKind::Amm,
            3,
            31337,
            FeeParams::from_gwei(10, 1),
        );
        // 2 tokens + 3 pools, 2 mints, 2 x 3 approvals, 3 addLiquidity.
        assert_eq!(txs.len(), 2 + 3 + 2 + 6 + 3);
        assert_eq!(deployer.nonce, 5 + txs.len() as u64);
        assert_eq!(contracts.token0, Some(deployer.address.create(5)));
        assert_eq!(contracts.pairs[2], deployer.address.create(9));

        let mut other = loadgen_accounts(1, 1).unwrap().remove(0);
        let (txs, contracts) = deployment_txs(
            &mut other,
            LoadKind::Erc20,
            3,
            31337,
            FeeParams::from_gwei(10, 1),
        );
        assert_eq!(txs.len(), 1);
        assert!(contracts.pairs.is_empty());
        let (txs, _) = deployment_txs(
            &mut other,
            LoadKind::Transfer,
            3,
            31337,
            FeeParams::from_gwei(10, 1),
        );
        assert!(txs.is_empty());
    }

    #[test]
    fn account_setup_interleaves_senders() {
        let mut accounts = loadgen_accounts(1, 3).unwrap();
        let contracts = Contracts {
            token0: Some(Address::repeat_byte(1)),
            token1: Some(Address::repeat_byte(2)),
            pairs: vec![Address::repeat_byte(3)],
        };
        let txs = account_setup_txs(
            &mut accounts,
            LoadKind::Amm,
            &contracts,
            31337,
            FeeParams::from_gwei(10, 1),
        );
        assert_eq!(txs.len(), 12);
        assert!(accounts.iter().all(|a| a.nonce == 4));
        let erc20 = account_setup_txs(
            &mut accounts,
            LoadKind::Erc20,
            &contracts,
            31337,
            FeeParams::from_gwei(10, 1),
        );
        assert_eq!(erc20.len(), 3);
        assert!(
            account_setup_txs(
                &mut accounts,
                LoadKind::Transfer,
                &contracts,
                1,
                FeeParams::from_gwei(1, 1)
            )
            .is_empty()
        );
    }

    #[test]
    fn calldata_has_selector_and_words() {
        let data = mint_calldata(Address::repeat_byte(9), U256::from(5));
        assert_eq!(data.len(), 68);
        assert_eq!(data[..4], MINT_SELECTOR);
        assert_eq!(data[67], 5);
        assert_eq!(
            add_liquidity_calldata(U256::from(1), U256::from(2))[..4],
            ADD_LIQUIDITY_SELECTOR
        );
    }
}
