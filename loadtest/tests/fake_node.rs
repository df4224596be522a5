//! Whole runs of the generator against an in-process fake node that produces blocks every
//! 50 ms and can misbehave on purpose (reject, drop, include twice, skip head announcements,
//! refuse subscriptions), checking that the report counts exactly what the fake did.

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use chain_loadtest::{
    LoadgenError,
    app::run_load_with,
    config::{LoadOptions, Pace},
    report::Report,
    rpc::{BlockHeader, NodeRpc, ObservedHead, SendOutcome, TxReceipt},
    workload::LoadKind,
};
use secp256k1::{
    Message, SECP256K1,
    ecdsa::{RecoverableSignature, RecoveryId},
};
use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{sync::mpsc, time::Instant};

/// Deliberate faults, by position among the transactions the fake received (1-based).
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    /// Reject every n-th transaction with "nonce too low: …".
    reject_every: Option<u64>,
    /// Accept every n-th accepted transaction but never include it.
    drop_every: Option<u64>,
    /// Include every n-th included transaction a second time, one block later.
    duplicate_every: Option<u64>,
    /// Do not announce every n-th block on newHeads.
    skip_head_every: Option<u64>,
    /// Refuse newHeads subscriptions.
    no_subscriptions: bool,
    /// Most transactions per block.
    max_per_block: Option<usize>,
    /// Every account has a zero balance.
    unfunded: bool,
}

#[derive(Debug)]
struct PoolTx {
    hash: B256,
    gas_limit: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    received: u64,
    accepted: u64,
    included: u64,
    rejected: u64,
    dropped: u64,
    duplicated: u64,
    pool: Vec<PoolTx>,
    redo: Vec<PoolTx>,
    blocks: Vec<(BlockHeader, Vec<TxReceipt>)>,
    nonces_seen: HashMap<Address, BTreeSet<u64>>,
    recipients: HashMap<Address, u64>,
    max_pending: usize,
    subscribers: Vec<mpsc::Sender<ObservedHead>>,
}

struct FakeNode {
    faults: Faults,
    state: Mutex<FakeState>,
}

fn sender_of(envelope: &TxEnvelope) -> Address {
    let signature = envelope.signature().as_bytes();
    let recovery_id = RecoveryId::try_from(i32::from(signature[64] - 27)).unwrap();
    let recoverable = RecoverableSignature::from_compact(&signature[..64], recovery_id).unwrap();
    let digest = Message::from_digest(envelope.signature_hash().0);
    let public = SECP256K1.recover_ecdsa(digest, &recoverable).unwrap();
    Address::from_slice(&keccak256(&public.serialize_uncompressed()[1..])[12..])
}

impl FakeNode {
    fn new(faults: Faults) -> Arc<Self> {
        Arc::new(Self {
            faults,
            state: Mutex::new(FakeState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    fn accept(&self, raw: &Bytes) -> SendOutcome {
        let envelope = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(|e| e.to_string())?;
        let mut state = self.state();
        state.received += 1;
        let position = state.received;
        if self
            .faults
            .reject_every
            .is_some_and(|n| position.is_multiple_of(n))
        {
            state.rejected += 1;
            return Err(format!("nonce too low: tx {position}"));
        }
        let hash = *envelope.tx_hash();
        let sender = sender_of(&envelope);
        state
            .nonces_seen
            .entry(sender)
            .or_default()
            .insert(envelope.nonce());
        if let TxKind::Call(to) = envelope.kind() {
            *state.recipients.entry(to).or_default() += 1;
        }
        state.accepted += 1;
        if self
            .faults
            .drop_every
            .is_some_and(|n| state.accepted.is_multiple_of(n))
        {
            state.dropped += 1;
        } else {
            state.pool.push(PoolTx {
                hash,
                gas_limit: envelope.gas_limit(),
            });
        }
        let pending = state.pool.len();
        state.max_pending = state.max_pending.max(pending);
        Ok(hash)
    }

    fn produce_block(&self) {
        let mut state = self.state();
        let take = self
            .faults
            .max_per_block
            .unwrap_or(usize::MAX)
            .min(state.pool.len());
        let mut txs: Vec<PoolTx> = std::mem::take(&mut state.redo);
        txs.extend(state.pool.drain(..take));
        let mut receipts = Vec::with_capacity(txs.len());
        for tx in txs {
            receipts.push(TxReceipt {
                transaction_hash: tx.hash,
                gas_used: tx.gas_limit.min(21_000),
                status: true,
                contract_address: None,
            });
            state.included += 1;
            if self
                .faults
                .duplicate_every
                .is_some_and(|n| state.included.is_multiple_of(n))
            {
                state.duplicated += 1;
                state.redo.push(PoolTx {
                    hash: tx.hash,
                    gas_limit: tx.gas_limit,
                });
            }
        }
        let number = state.blocks.len() as u64 + 1;
        let header = BlockHeader {
            number,
            hash: keccak256(number.to_be_bytes()),
            timestamp: 1_700_000_000 + number,
            gas_used: receipts.iter().map(|r| r.gas_used).sum(),
            gas_limit: 30_000_000,
            base_fee_per_gas: Some(1_000_000_000),
        };
        state.blocks.push((header.clone(), receipts));
        if self
            .faults
            .skip_head_every
            .is_some_and(|n| number.is_multiple_of(n))
        {
            return;
        }
        let now = Instant::now();
        state
            .subscribers
            .retain(|s| s.try_send((header.clone(), now)).is_ok());
    }

    /// Produces a block every `interval` until the returned flag is set.
    fn start_producing(self: &Arc<Self>, interval: Duration) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        let (node, flag) = (Arc::clone(self), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            while !flag.load(Ordering::Relaxed) {
                ticker.tick().await;
                node.produce_block();
            }
        });
        stop
    }
}

impl NodeRpc for FakeNode {
    async fn chain_id(&self) -> Result<u64, LoadgenError> {
        Ok(31337)
    }

    async fn block_number(&self) -> Result<u64, LoadgenError> {
        Ok(self.state().blocks.len() as u64)
    }

    async fn header(&self, number: u64) -> Result<Option<BlockHeader>, LoadgenError> {
        Ok(self
            .state()
            .blocks
            .get((number as usize).wrapping_sub(1))
            .map(|(h, _)| h.clone()))
    }

    async fn block_receipts(&self, number: u64) -> Result<Option<Vec<TxReceipt>>, LoadgenError> {
        Ok(self
            .state()
            .blocks
            .get((number as usize).wrapping_sub(1))
            .map(|(_, r)| r.clone()))
    }

    async fn pending_nonces(&self, addresses: &[Address]) -> Result<Vec<u64>, LoadgenError> {
        let state = self.state();
        Ok(addresses
            .iter()
            .map(|a| {
                state
                    .nonces_seen
                    .get(a)
                    .and_then(|n| n.last())
                    .map_or(0, |last| last + 1)
            })
            .collect())
    }

    async fn balances(&self, addresses: &[Address]) -> Result<Vec<U256>, LoadgenError> {
        let balance = if self.faults.unfunded {
            U256::ZERO
        } else {
            U256::from(10u128.pow(21))
        };
        Ok(vec![balance; addresses.len()])
    }

    async fn send_raw_batch(&self, raws: &[Bytes]) -> Result<Vec<SendOutcome>, LoadgenError> {
        Ok(raws.iter().map(|raw| self.accept(raw)).collect())
    }

    async fn subscribe_heads(&self) -> Result<mpsc::Receiver<ObservedHead>, LoadgenError> {
        if self.faults.no_subscriptions {
            return Err(LoadgenError::Rpc {
                method: "eth_subscribe",
                message: "subscriptions disabled".into(),
            });
        }
        let (sender, receiver) = mpsc::channel(1024);
        self.state().subscribers.push(sender);
        Ok(receiver)
    }
}

fn options(accounts: usize, pace: Pace) -> LoadOptions {
    let mut options = LoadOptions::new("fake://");
    options.accounts = accounts;
    options.pace = pace;
    options.duration = Duration::from_millis(1000);
    options.connections = 2;
    options.batch = 10;
    options.requests_per_connection = 4;
    options.threads = 2;
    options.drain = Duration::from_secs(5);
    options.progress = false;
    options
}

async fn run(node: &Arc<FakeNode>, options: &LoadOptions) -> Report {
    let stop = node.start_producing(Duration::from_millis(50));
    let senders = vec![Arc::clone(node), Arc::clone(node)];
    let report = run_load_with(
        options,
        senders,
        Arc::clone(node),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_open_loop_run_includes_everything_once() {
    let node = FakeNode::new(Faults::default());
    let report = run(
        &node,
        &options(
            20,
            Pace::Rate {
                tps: 400.0,
                ramp: None,
            },
        ),
    )
    .await;
    let totals = &report.totals;
    assert_eq!(totals.planned, 400);
    assert_eq!(totals.submitted, 400);
    assert_eq!(totals.accepted, 400);
    assert_eq!(totals.included, 400);
    assert_eq!((totals.lost, totals.duplicates, totals.rejected), (0, 0, 0));
    assert!(report.verdict.all_accepted_included_once);
    assert_eq!(report.latency.count, 400);
    assert!(
        report.latency.p50_ms > 0.0 && report.latency.max_ms < 1000.0,
        "{:?}",
        report.latency
    );
    assert_eq!(
        report.per_second.iter().map(|s| s.included).sum::<u64>(),
        400
    );
    assert!(report.blocks.with_our_txs >= 2);
    assert!(
        report.throughput.included_tps > 200.0,
        "{:?}",
        report.throughput
    );
    // Whether the schedule was kept depends on how busy the test machine is; only its
    // pre-condition is certain.
    assert_ne!(
        report.send.bound,
        chain_loadtest::rate::SenderBound::Exhausted
    );

    // Each account sent nonces 0..20 exactly (400 transactions over 20 accounts).
    let state = node.state();
    assert_eq!(state.nonces_seen.len(), 20);
    assert!(
        state
            .nonces_seen
            .values()
            .all(|n| n.len() == 20 && n.last() == Some(&19))
    );
    // One recipient per account by default.
    assert_eq!(state.recipients.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_exactly_the_rejections_losses_and_duplicates_of_the_node() {
    let node = FakeNode::new(Faults {
        reject_every: Some(7),
        drop_every: Some(11),
        duplicate_every: Some(13),
        ..Faults::default()
    });
    let mut options = options(
        10,
        Pace::Rate {
            tps: 300.0,
            ramp: None,
        },
    );
    options.drain = Duration::from_millis(500);
    let report = run(&node, &options).await;
    let state = node.state();
    let totals = &report.totals;
    assert_eq!(totals.submitted, 300);
    assert_eq!(totals.rejected, state.rejected);
    assert!(state.rejected > 0 && state.dropped > 0 && state.duplicated > 0);
    assert_eq!(
        totals.rejected_by_reason.get("nonce too low"),
        Some(&state.rejected)
    );
    assert_eq!(totals.accepted, state.accepted);
    assert_eq!(totals.lost, state.dropped);
    assert_eq!(totals.lost_examples.len() as u64, state.dropped.min(20));
    assert_eq!(totals.duplicates, state.duplicated);
    assert_eq!(totals.included, state.accepted - state.dropped);
    assert!(!report.verdict.all_accepted_included_once);
    assert!(
        report.drain.timed_out,
        "the drain waits for the dropped transactions in vain"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_keeps_the_window() {
    let node = FakeNode::new(Faults {
        max_per_block: Some(20),
        ..Faults::default()
    });
    let mut options = options(10, Pace::Window(40));
    options.txs = Some(300);
    options.duration = Duration::from_secs(10);
    let report = run(&node, &options).await;
    assert_eq!(report.totals.included, 300);
    assert_eq!(report.totals.lost, 0);
    assert_eq!(
        report.send.bound,
        chain_loadtest::rate::SenderBound::Exhausted
    );
    assert!(report.send.blocked_on_window_s > 0.0);
    let max_pending = node.state().max_pending;
    assert!(
        max_pending <= 40,
        "{max_pending} transactions pending with a window of 40"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_blocks_whose_heads_were_not_announced() {
    let node = FakeNode::new(Faults {
        skip_head_every: Some(3),
        ..Faults::default()
    });
    let report = run(
        &node,
        &options(
            10,
            Pace::Rate {
                tps: 200.0,
                ramp: None,
            },
        ),
    )
    .await;
    assert_eq!(report.totals.included, 200);
    assert_eq!(report.totals.duplicates, 0);
    assert!(!report.polled_heads);
    // Block numbers are consecutive: none skipped, none recorded twice.
    let numbers: Vec<u64> = report.per_block.iter().map(|b| b.number).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_heads_without_a_subscription() {
    let node = FakeNode::new(Faults {
        no_subscriptions: true,
        ..Faults::default()
    });
    let options = options(
        10,
        Pace::Rate {
            tps: 200.0,
            ramp: Some(Duration::from_millis(500)),
        },
    );
    let report = run(&node, &options).await;
    assert!(report.polled_heads);
    assert_eq!(report.totals.lost, 0);
    assert_eq!(report.totals.included, report.totals.planned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc20_setup_deploys_mints_then_calls_the_token() {
    let node = FakeNode::new(Faults::default());
    let mut options = options(
        5,
        Pace::Rate {
            tps: 100.0,
            ramp: None,
        },
    );
    options.workload = LoadKind::Erc20;
    let report = run(&node, &options).await;
    let token = report.setup.contracts.token0.expect("token deployed");
    // One deployment and one mint per account.
    assert_eq!(report.setup.transactions, 6);
    assert_eq!(report.totals.included, 100);
    let state = node.state();
    // 5 mints plus 100 measured transfers call the token.
    assert_eq!(state.recipients.get(&token), Some(&105));
    // Account 0 deployed (nonce 0), minted (1), then sent 20 transfers (2..=21); the others
    // minted (0) and sent 20 transfers (1..=20).
    let mut lengths: Vec<usize> = state.nonces_seen.values().map(BTreeSet::len).collect();
    lengths.sort_unstable();
    assert_eq!(lengths, [21, 21, 21, 21, 22]);
    assert!(
        state
            .nonces_seen
            .values()
            .all(|n| n.last() == Some(&(n.len() as u64 - 1))),
        "gapless nonces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_ends_at_the_duration_when_lost_transactions_hold_the_window() {
    // Every 5th transaction is dropped and never frees its window slot: the window fills up
    // with lost transactions and the dispatcher must still stop at the duration.
    let node = FakeNode::new(Faults {
        drop_every: Some(5),
        ..Faults::default()
    });
    let mut options = options(10, Pace::Window(20));
    options.duration = Duration::from_millis(800);
    options.drain = Duration::from_millis(200);
    // Far more than the window lets through, few enough to sign quickly in a debug build.
    options.txs = Some(1000);
    let started = Instant::now();
    let report = run(&node, &options).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report.send.bound, chain_loadtest::rate::SenderBound::Window);
    let dropped = node.state().dropped;
    assert_eq!(report.totals.lost, dropped);
    // A batch of 10 needs 10 free slots of 20: sending stops once more than 10 are lost, which
    // takes about 55 sends at 1 in 5 lost, and never 100.
    assert!(
        dropped > 10,
        "stopped with only {dropped} slots held by lost transactions"
    );
    assert!(
        report.totals.submitted < 100,
        "{} sent past a window full of lost transactions",
        report.totals.submitted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfunded_accounts_fail_the_setup_with_a_hint() {
    let node = FakeNode::new(Faults {
        unfunded: true,
        ..Faults::default()
    });
    let options = options(
        30,
        Pace::Rate {
            tps: 100.0,
            ramp: None,
        },
    );
    let error = run_load_with(
        &options,
        vec![Arc::clone(&node)],
        Arc::clone(&node),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect_err("nothing can be sent from empty accounts");
    let message = error.to_string();
    assert!(message.contains("--prefund-loadgen 30"), "{message}");
    assert_eq!(node.state().received, 0, "nothing was sent");
}
