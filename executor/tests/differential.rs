//! The parallel executor against the sequential one on random blocks: same outcomes,
//! receipts, gas, logs bloom and state diff, with 1, 2 and 8 worker threads.

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use chain_executor::BlockStm;
use chain_executor::{
    BlockEnv, CodeCache, ExecutionEnv, TxEnv, TxOutcome, execute_parallel, execute_sequential,
    workload::{
        self, derive_address, eip1559_tx, erc20_allowance_slot, erc20_balance_slot,
        erc20_transfer_calldata, swap_calldata, with_constructor_args,
    },
};
use chain_primitives::{Account, InMemoryState};
use proptest::prelude::*;
use std::{num::NonZeroUsize, sync::LazyLock};

/// Runners with 1, 2 and 8 workers, shared by every case (each owns a thread pool). They never
/// give up on contended blocks, so that every case exercises Block-STM to the end.
static RUNNERS: LazyLock<[BlockStm; 3]> = LazyLock::new(|| {
    [1, 2, 8].map(|n| BlockStm::new(NonZeroUsize::new(n).unwrap()).with_contention_limit(None))
});

fn runner(threads: usize) -> &'static BlockStm {
    RUNNERS
        .iter()
        .find(|r| r.threads().get() == threads)
        .expect("a runner with that many threads")
}

const ETH: u128 = 1_000_000_000_000_000_000;
const ACCOUNTS: usize = 12;

fn eoa(i: usize) -> Address {
    derive_address(1, "eoa", i as u64)
}
fn token() -> Address {
    derive_address(1, "token", 0)
}
fn token1() -> Address {
    derive_address(1, "token", 1)
}
fn pair(i: usize) -> Address {
    derive_address(1, "pair", i as u64)
}
fn coinbase_reader() -> Address {
    derive_address(1, "coinbase-reader", 0)
}

/// The state every random block runs on.
fn pre_state() -> InMemoryState {
    let mut state = InMemoryState::new();
    for i in 0..ACCOUNTS {
        // The last two accounts are poor: their transactions fail for lack of funds.
        let balance = if i >= ACCOUNTS - 2 {
            30_000 * 2_000_000_000u128
        } else {
            1000 * ETH
        };
        state.insert_account(eoa(i), Account::with_balance(U256::from(balance)));
    }
    for t in [token(), token1()] {
        state.insert_code(t, workload::erc20_runtime());
        for i in 0..ACCOUNTS {
            state.insert_storage(t, erc20_balance_slot(eoa(i)), U256::from(1_000_000u64));
        }
    }
    for p in 0..2 {
        let pair = pair(p);
        state.insert_code(pair, workload::pair_runtime());
        state.insert_storage(pair, U256::ZERO, U256::from_be_bytes(token().into_word().0));
        state.insert_storage(
            pair,
            U256::from(1),
            U256::from_be_bytes(token1().into_word().0),
        );
        state.insert_storage(pair, U256::from(2), U256::from(10_000_000u64));
        state.insert_storage(pair, U256::from(3), U256::from(10_000_000u64));
        for t in [token(), token1()] {
            state.insert_storage(t, erc20_balance_slot(pair), U256::from(10_000_000u64));
            for i in 0..ACCOUNTS {
                state.insert_storage(t, erc20_allowance_slot(eoa(i), pair), U256::MAX);
            }
        }
    }
    // COINBASE BALANCE PUSH1 0 SSTORE STOP: stores the beneficiary's balance, which depends on
    // every fee paid before it in the block.
    state.insert_code(
        coinbase_reader(),
        Bytes::from_static(&[0x41, 0x31, 0x60, 0x00, 0x55, 0x00]),
    );
    state.insert_block_hash(0, B256::repeat_byte(0xaa));
    state
}

/// One random transaction, as drawn by proptest; turned into a [`TxEnv`] by [`build_block`].
#[derive(Clone, Debug)]
struct TxSpec {
    kind: u8,
    from: usize,
    to: usize,
    amount: u64,
    tx_type: u8,
    nonce_skew: i8,
}

fn tx_spec() -> impl Strategy<Value = TxSpec> {
    (
        0u8..10,
        0..ACCOUNTS,
        0..ACCOUNTS + 3,
        prop_oneof![Just(0u64), 1u64..1000, 1u64..2_000_000],
        0u8..3,
        prop_oneof![8 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)],
    )
        .prop_map(|(kind, from, to, amount, tx_type, nonce_skew)| TxSpec {
            kind,
            from,
            to,
            amount,
            tx_type,
            nonce_skew,
        })
}

fn create_address(sender: Address, nonce: u64) -> Address {
    sender.create(nonce)
}

fn build_block(specs: &[TxSpec]) -> Vec<TxEnv> {
    let mut nonces = [0u64; ACCOUNTS];
    specs
        .iter()
        .map(|s| {
            let from = eoa(s.from);
            let nonce = nonces[s.from].saturating_add_signed(i64::from(s.nonce_skew));
            nonces[s.from] += 1;
            let to_eoa = if s.to < ACCOUNTS {
                eoa(s.to)
            } else {
                derive_address(2, "fresh", s.to as u64)
            };
            let (kind, value, data, gas) = match s.kind {
                // Plain transfer, sometimes of more than the sender has.
                0 | 1 => (
                    TxKind::Call(to_eoa),
                    U256::from(s.amount) * U256::from(1_000_000_000_000u64),
                    Bytes::new(),
                    21_000,
                ),
                // ERC-20 transfer; amounts above the holding revert.
                2 | 3 => (
                    TxKind::Call(token()),
                    U256::ZERO,
                    erc20_transfer_calldata(to_eoa, U256::from(s.amount)),
                    90_000,
                ),
                // Swap on one of two pools.
                4 => (
                    TxKind::Call(pair(s.to % 2)),
                    U256::ZERO,
                    swap_calldata(
                        U256::from(s.amount % 100_000 + 1),
                        s.amount % 2 == 0,
                        U256::ZERO,
                    ),
                    150_000,
                ),
                // Deploy a token.
                5 => (
                    TxKind::Create,
                    U256::ZERO,
                    with_constructor_args(
                        &workload::erc20_creation(),
                        &[U256::from(s.amount).to_be_bytes()],
                    ),
                    1_500_000,
                ),
                // Read the beneficiary's balance.
                6 => (
                    TxKind::Call(coinbase_reader()),
                    U256::ZERO,
                    Bytes::new(),
                    60_000,
                ),
                // Pay the address a sender's next creation will deploy to (counterfactual).
                7 => (
                    TxKind::Call(create_address(eoa(s.to % ACCOUNTS), s.amount % 3)),
                    U256::from(7),
                    Bytes::new(),
                    21_000,
                ),
                // Out of gas in an ERC-20 transfer.
                8 => (
                    TxKind::Call(token()),
                    U256::ZERO,
                    erc20_transfer_calldata(to_eoa, U256::from(1)),
                    23_500,
                ),
                // A creation whose code self-destructs to a fresh address.
                _ => {
                    let mut code = vec![0x73];
                    code.extend_from_slice(to_eoa.as_slice());
                    code.push(0xff);
                    (
                        TxKind::Create,
                        U256::from(s.amount),
                        Bytes::from(code),
                        100_000,
                    )
                }
            };
            let mut tx = eip1559_tx(from, nonce, kind, value, data, gas);
            match s.tx_type {
                0 => {
                    tx.tx_type = 0;
                    tx.gas_priority_fee = None;
                    tx.gas_price = 1_500_000_000;
                }
                1 => {
                    tx.tx_type = 1;
                    tx.gas_priority_fee = None;
                    tx.gas_price = 1_200_000_000;
                    tx.access_list = vec![alloy_eips::eip2930::AccessListItem {
                        address: token(),
                        storage_keys: vec![B256::from(
                            erc20_balance_slot(from).to_be_bytes::<32>(),
                        )],
                    }]
                    .into();
                }
                _ => {}
            }
            tx
        })
        .collect()
}

fn env(beneficiary_is_sender: bool) -> ExecutionEnv {
    ExecutionEnv::new(BlockEnv {
        number: 1,
        timestamp: 1_700_000_000,
        base_fee: 1_000_000_000,
        prevrandao: B256::repeat_byte(3),
        gas_limit: 30_000_000,
        beneficiary: if beneficiary_is_sender {
            eoa(0)
        } else {
            derive_address(1, "coinbase", 0)
        },
        chain_id: 31337,
    })
}

fn check(specs: &[TxSpec], beneficiary_is_sender: bool) -> Result<(), TestCaseError> {
    let state = pre_state();
    let env = env(beneficiary_is_sender);
    let txs = build_block(specs);
    let codes = CodeCache::default();
    let expected = execute_sequential(&state, &env, &txs, &codes).expect("sequential runs");
    for threads in [1, 2, 8] {
        let (output, stats) =
            execute_parallel(&state, &env, &txs, &codes, runner(threads)).expect("parallel runs");
        prop_assert_eq!(
            &output.outcomes,
            &expected.outcomes,
            "outcomes, {} threads",
            threads
        );
        prop_assert_eq!(output.gas_used, expected.gas_used);
        prop_assert_eq!(output.logs_bloom, expected.logs_bloom);
        prop_assert_eq!(
            &output.diff,
            &expected.diff,
            "diff, {} threads, {:?}",
            threads,
            stats
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn parallel_equals_sequential(
        specs in prop::collection::vec(tx_spec(), 1..60),
        beneficiary_is_sender in any::<bool>(),
    ) {
        check(&specs, beneficiary_is_sender)?;
    }
}

#[test]
fn blocks_exercise_every_outcome() {
    // The generator must produce successes, reverts, halts and skips, or the property test
    // above proves less than it claims.
    let specs: Vec<TxSpec> = (0..200u64)
        .map(|i| TxSpec {
            kind: (i % 10) as u8,
            from: (i as usize * 5) % ACCOUNTS,
            to: (i as usize * 7) % (ACCOUNTS + 3),
            amount: [0, 5, 999, 1_999_999][(i % 4) as usize],
            tx_type: (i % 3) as u8,
            nonce_skew: if i % 17 == 0 { 1 } else { 0 },
        })
        .collect();
    let txs = build_block(&specs);
    let output =
        execute_sequential(&pre_state(), &env(false), &txs, &CodeCache::default()).unwrap();
    let count = |f: &dyn Fn(&TxOutcome) -> bool| output.outcomes.iter().filter(|o| f(o)).count();
    use chain_executor::TxStatus::*;
    assert!(count(&|o| matches!(o, TxOutcome::Included(r) if r.status == Success)) > 20);
    assert!(count(&|o| matches!(o, TxOutcome::Included(r) if r.status == Revert)) > 0);
    assert!(count(&|o| matches!(o, TxOutcome::Included(r) if r.status == Halt)) > 0);
    assert!(count(&|o| matches!(o, TxOutcome::Skipped(_))) > 0);
    assert!(count(&|o| matches!(o, TxOutcome::Included(r) if r.contract_address.is_some())) > 0);
    assert!(count(&|o| matches!(o, TxOutcome::Included(r) if !r.logs.is_empty())) > 0);
    check(&specs, false).unwrap();
    check(&specs, true).unwrap();
}

#[test]
fn workloads_parallel_equals_sequential() {
    use workload::{WorkloadConfig, WorkloadKind, generate};
    for kind in [
        WorkloadKind::Transfer,
        WorkloadKind::Erc20,
        WorkloadKind::Amm,
    ] {
        for accounts in [1, 7, 400] {
            let w = generate(&WorkloadConfig {
                kind,
                accounts,
                txs: 400,
                seed: 9,
            });
            let codes = CodeCache::default();
            let expected = execute_sequential(&w.state, &w.env, &w.txs, &codes).unwrap();
            assert_eq!(
                expected.included(),
                w.txs.len(),
                "{kind} {accounts}: all included"
            );
            assert!(
                expected.receipts().all(|r| r.success()),
                "{kind} {accounts}: all succeed"
            );
            for threads in [2, 8] {
                // Production runners: contended blocks may fall back to sequential execution.
                let production = BlockStm::new(NonZeroUsize::new(threads).unwrap());
                let (output, stats) =
                    execute_parallel(&w.state, &w.env, &w.txs, &codes, &production).unwrap();
                // Contended blocks may be handed to the sequential executor; a block of
                // independent transactions must run in parallel to the end.
                if accounts >= w.txs.len() {
                    assert_eq!(stats.fallback, None, "{kind} {accounts}");
                }
                assert_eq!(output, expected, "{kind} {accounts} {threads} threads");
            }
        }
    }
}

#[test]
fn a_block_dominated_by_one_sender_runs_sequentially_from_the_start() {
    use workload::{WorkloadConfig, WorkloadKind, generate};
    // Transfers from 1 sender (all 300 chained by nonce), then from 2 (150 each: not more than
    // half), each with the production runner.
    for (senders, expect_sequential) in [(1, true), (2, false)] {
        let w = generate(&WorkloadConfig {
            kind: WorkloadKind::Transfer,
            accounts: senders,
            txs: 300,
            seed: 4,
        });
        let codes = CodeCache::default();
        let expected = execute_sequential(&w.state, &w.env, &w.txs, &codes).unwrap();
        let production = BlockStm::new(NonZeroUsize::new(2).unwrap());
        let (output, stats) =
            execute_parallel(&w.state, &w.env, &w.txs, &codes, &production).unwrap();
        assert_eq!(output, expected, "{senders} senders");
        let upfront = stats
            .fallback
            .as_deref()
            .is_some_and(|reason| reason.contains("share one sender"));
        assert_eq!(upfront, expect_sequential, "{senders} senders: {stats:?}");
        if expect_sequential {
            assert_eq!(stats.executions, 0, "no parallel attempt was made");
        }
    }
    // Without a contention limit Block-STM runs such a block to the end.
    let w = generate(&WorkloadConfig {
        kind: WorkloadKind::Transfer,
        accounts: 1,
        txs: 100,
        seed: 4,
    });
    let codes = CodeCache::default();
    let expected = execute_sequential(&w.state, &w.env, &w.txs, &codes).unwrap();
    let (output, stats) = execute_parallel(&w.state, &w.env, &w.txs, &codes, runner(2)).unwrap();
    assert_eq!(output, expected);
    assert_eq!(stats.fallback, None);
    assert!(stats.executions >= 100);
}

#[test]
fn contract_deployed_at_a_paid_address_falls_back_to_sequential() {
    // Transaction 1 pays the address transaction 0 deploys to, expecting a plain account.
    let state = pre_state();
    let sender = eoa(3);
    let target = sender.create(0);
    let txs = vec![
        eip1559_tx(
            sender,
            0,
            TxKind::Create,
            U256::ZERO,
            with_constructor_args(&workload::erc20_creation(), &[U256::from(5).to_be_bytes()]),
            1_500_000,
        ),
        eip1559_tx(
            eoa(4),
            0,
            TxKind::Call(target),
            U256::from(1),
            Bytes::new(),
            100_000,
        ),
    ];
    let env = env(false);
    let codes = CodeCache::default();
    let expected = execute_sequential(&state, &env, &txs, &codes).unwrap();
    // The token has no payable fallback: the payment reverts.
    assert_eq!(
        expected.outcomes[1].receipt().unwrap().status,
        chain_executor::TxStatus::Revert
    );
    let (output, stats) = execute_parallel(&state, &env, &txs, &codes, runner(2)).unwrap();
    assert_eq!(output, expected);
    assert!(
        stats.fallback.is_some(),
        "the deferred credit must be detected"
    );
}

#[test]
fn the_block_gas_limit_cuts_the_block_as_sequentially() {
    use workload::{WorkloadConfig, WorkloadKind, generate};
    // 300 transfers of 21,000 gas each, spread over 4 shares of 8 workers' outcomes. A limit
    // of 6,300,000 fits all of them exactly; 4,000,000 stops the block after 190, so that the
    // rest are skipped and the parallel run must not keep them.
    let w = generate(&WorkloadConfig {
        kind: WorkloadKind::Transfer,
        accounts: 300,
        txs: 300,
        seed: 5,
    });
    let codes = CodeCache::default();
    for (limit, fits) in [(6_300_000u64, true), (4_000_000, false)] {
        let mut block = w.env.block.clone();
        block.gas_limit = limit;
        let env = ExecutionEnv::with_spec(block, w.env.spec);
        let expected = execute_sequential(&w.state, &env, &w.txs, &codes).unwrap();
        let skipped = expected
            .outcomes
            .iter()
            .filter(|o| matches!(o, TxOutcome::Skipped(_)))
            .count();
        assert_eq!(skipped, if fits { 0 } else { 110 }, "limit {limit}");
        for threads in [1, 2, 8] {
            let (output, stats) =
                execute_parallel(&w.state, &env, &w.txs, &codes, runner(threads)).unwrap();
            assert_eq!(output, expected, "limit {limit}, {threads} threads");
            assert_eq!(stats.fallback.is_none(), fits, "limit {limit}: {stats:?}");
        }
    }
}
