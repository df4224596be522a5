//! A single-validator node whose block producer drives the consensus engine, in process and in
//! real time: finality trails the head by one block, seals carry valid RANDAO reveals and
//! signed proposals, a restart resumes production without signing a slot twice, and corrupt
//! consensus files stop the validator from starting.

mod common;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use chain_consensus::{
    SignatureCache, SignedStakingOp, SlashingProtectionRecord, StakingOp, StakingOpKind,
    TrustedCheckpoint, ValidatorKey,
};
use chain_primitives::{Block, StateReader};
use chain_rpc::ChainApi;
use chaind::{
    dev::dev_signers,
    node::{
        Node, NodeConfig, ProducedBlock,
        consensus::{
            CHECKPOINT_FILE, PROTECTION_FILE, RANDAO_CHAIN_EPOCHS, SealPayload, signed_proposal,
        },
        execution::{InvalidBlock, ValidationFailure},
        now_ms,
        staking::{STAKING_ESCROW, WEI_PER_STAKE_UNIT, staking_account, staking_op_hash},
    },
};
use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Short slots keep the tests quick; the vote deadline is half a slot.
const BLOCK_TIME_MS: u64 = 300;

fn config(dir: &Path, validator: bool) -> NodeConfig {
    common::node_config(dir, validator, BLOCK_TIME_MS, now_ms() / 1000)
}

/// A producer running on its own thread.
struct Running {
    shutdown: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<()>>,
    blocks: Arc<Mutex<Vec<ProducedBlock>>>,
}

fn start(node: &Node) -> Running {
    let producer = node.block_producer().expect("the producer starts");
    let shutdown = Arc::new(AtomicBool::new(false));
    let blocks: Arc<Mutex<Vec<ProducedBlock>>> = Arc::default();
    let thread = {
        let shutdown = shutdown.clone();
        let blocks = blocks.clone();
        std::thread::spawn(move || {
            producer.run(&shutdown, |block| {
                blocks.lock().unwrap().push(block.clone())
            })
        })
    };
    Running {
        shutdown,
        thread,
        blocks,
    }
}

impl Running {
    fn stop(self) -> Vec<ProducedBlock> {
        self.shutdown.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap()
            .expect("the producer ran without error");
        self.blocks.lock().unwrap().clone()
    }
}

/// Waits until `done` holds, calling `watch` on every poll; panics after `timeout`.
fn wait_until(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    mut watch: impl FnMut(),
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        watch();
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_protection(dir: &Path) -> Option<SlashingProtectionRecord> {
    let bytes = std::fs::read(dir.join(PROTECTION_FILE)).ok()?;
    Some(serde_json::from_slice(&bytes).expect("the protection record is valid JSON"))
}

/// Asserts that the persisted record's watermarks never go down between two reads.
fn assert_watermarks_rise(previous: &mut Option<SlashingProtectionRecord>, dir: &Path) {
    let Some(record) = read_protection(dir) else {
        return;
    };
    if let Some(before) = previous.as_ref() {
        assert!(
            record.last_proposed_slot >= before.last_proposed_slot,
            "proposal watermark went down: {before:?} -> {record:?}"
        );
        assert!(
            record.last_target_height >= before.last_target_height,
            "vote target watermark went down: {before:?} -> {record:?}"
        );
        assert!(
            record.last_source_height >= before.last_source_height,
            "vote source watermark went down: {before:?} -> {record:?}"
        );
    }
    *previous = Some(record);
}

fn validator_key() -> ValidatorKey {
    let secret = dev_signers().unwrap()[0].to_bytes().0;
    ValidatorKey::from_secret_bytes(secret, RANDAO_CHAIN_EPOCHS).unwrap()
}

/// Every block above genesis: one per slot at most (slots strictly increase), a valid RANDAO
/// reveal for its epoch mixed into `mixHash`, and a signed proposal by the validator.
fn check_chain(node: &Node, key: &ValidatorKey) {
    let config = node.consensus_config().clone();
    let anchor = key.randao_anchor(0).unwrap();
    let cache = SignatureCache::default();
    let mut previous = node.chain().block(0).unwrap().unwrap();
    for number in 1..=node.head_number() {
        let block = node.chain().block(number).unwrap().unwrap();
        let seal = &block.block.block().seal;
        let parent_seal = &previous.block.block().seal;
        assert!(
            number == 1 || seal.slot > parent_seal.slot,
            "block {number}: slot {} not after its parent's {}",
            seal.slot,
            parent_seal.slot
        );
        let epoch = config.epoch_of(seal.slot);
        let reveal = key.randao_reveal(epoch).unwrap();
        assert_eq!(
            seal.randao_reveal.as_ref(),
            reveal.as_slice(),
            "block {number}: reveal"
        );
        assert!(
            anchor.verify(epoch, reveal, epoch + 1).is_some(),
            "block {number}: the reveal does not hash to the genesis commitment"
        );
        assert_eq!(
            block.block.header().mix_hash,
            keccak256(
                [
                    previous.block.header().mix_hash.as_slice(),
                    reveal.as_slice()
                ]
                .concat()
            ),
            "block {number}: mixHash"
        );
        let proposal = signed_proposal(&block.block, config.chain_id).unwrap();
        assert_eq!(proposal.block.proposer, key.address());
        assert_eq!(proposal.block.hash, block.block.hash());
        proposal
            .signed_header()
            .verify(&cache)
            .unwrap_or_else(|e| panic!("block {number}: proposal signature: {e}"));
        previous = block;
    }
}

#[test]
fn finality_trails_the_head_by_one_block_and_seals_carry_valid_reveals() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), true)).unwrap();
    let running = start(&node);
    wait_until(
        Duration::from_secs(30),
        "three blocks",
        || node.head_number() >= 3,
        || {},
    );

    // Sample head, safe and finalized for a few slots.
    let mut samples = Vec::new();
    let sampling_until = Instant::now() + Duration::from_millis(8 * BLOCK_TIME_MS);
    while Instant::now() < sampling_until {
        let head = node.head_number();
        let finalized = ChainApi::finalized_number(&node);
        let safe = ChainApi::safe_number(&node);
        if node.head_number() == head {
            samples.push((head, safe, finalized));
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    let produced = running.stop();
    assert!(!produced.is_empty());

    for &(head, safe, finalized) in &samples {
        assert!(finalized <= safe && safe <= head, "{samples:?}");
        // One behind, or two between a slot's start and its vote deadline.
        assert!((1..=2).contains(&(head - finalized)), "{samples:?}");
    }
    assert!(
        samples
            .iter()
            .any(|&(head, _, finalized)| head - finalized == 1),
        "finalized never reached head - 1: {samples:?}"
    );
    assert!(
        samples.iter().any(|&(head, safe, _)| safe == head),
        "the head was never justified: {samples:?}"
    );
    let (first, last) = (samples[0].2, samples[samples.len() - 1].2);
    assert!(last > first, "finality did not advance: {samples:?}");
    assert!(
        node.block_by_number(ChainApi::finalized_number(&node))
            .unwrap()
            .is_some()
    );

    // The checkpoint file names a finalized block; the database's copy trails by at most one.
    let checkpoint: TrustedCheckpoint =
        serde_json::from_slice(&std::fs::read(dir.path().join(CHECKPOINT_FILE)).unwrap()).unwrap();
    let finalized = ChainApi::finalized_number(&node);
    assert_eq!(checkpoint.block.height, finalized);
    assert_eq!(
        node.chain().block(finalized).unwrap().unwrap().block.hash(),
        checkpoint.block.hash
    );
    let stored = node.chain().finalized().unwrap().unwrap();
    assert!(
        stored <= finalized && stored + 1 >= finalized,
        "db {stored}, live {finalized}"
    );

    check_chain(&node, &validator_key());
}

#[test]
fn restart_resumes_production_without_signing_a_slot_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut watermarks = None;
    let node = Node::open(config(dir.path(), true)).unwrap();
    let running = start(&node);
    wait_until(
        Duration::from_secs(30),
        "four blocks",
        || node.head_number() >= 4,
        || assert_watermarks_rise(&mut watermarks, dir.path()),
    );
    running.stop();
    assert_watermarks_rise(&mut watermarks, dir.path());
    let before = watermarks.clone().unwrap();
    let head_before = node.head_number();
    let head_slot_before = node.head().block.block().seal.slot;
    let finalized_before = ChainApi::finalized_number(&node);
    assert_eq!(before.last_proposed_slot, Some(head_slot_before));
    assert!(before.last_target_height.unwrap() >= head_before - 1);
    drop(node);

    // Reopen: the engine resumes from the checkpoint and the stored head.
    let node = Node::open(config(dir.path(), true)).unwrap();
    assert_eq!(node.head_number(), head_before);
    let running = start(&node);
    let restarted_at_slot = node.slot_at(now_ms());
    // The checkpoint restores the finality the database's copy may trail.
    assert!(ChainApi::finalized_number(&node) >= finalized_before);
    wait_until(
        Duration::from_secs(30),
        "three more blocks",
        || node.head_number() >= head_before + 3,
        || assert_watermarks_rise(&mut watermarks, dir.path()),
    );
    let produced = running.stop();
    assert_watermarks_rise(&mut watermarks, dir.path());

    let first_new = node.chain().block(head_before + 1).unwrap().unwrap();
    let first_slot = first_new.block.block().seal.slot;
    assert!(
        first_slot > head_slot_before,
        "slot {first_slot} signed twice"
    );
    // The engine listens for `sync_slots` (2) before signing; allow some scheduling slack.
    assert!(
        first_slot <= restarted_at_slot + 5,
        "production resumed only at slot {first_slot}, restart at slot {restarted_at_slot}"
    );
    assert_eq!(produced[0].number, head_before + 1);
    // Finality resumed past the head from before the restart.
    assert!(ChainApi::finalized_number(&node) >= head_before);
    let after = read_protection(dir.path()).unwrap();
    assert_eq!(
        after.last_proposed_slot,
        Some(node.head().block.block().seal.slot)
    );
    check_chain(&node, &validator_key());
}

#[test]
fn a_data_directory_without_consensus_files_resumes_from_its_finalized_head() {
    // Blocks made outside the engine (final once committed), as before the consensus engine.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), true)).unwrap();
    let first = node.slot_at(now_ms()).max(1);
    node.produce_block(first).unwrap();
    node.produce_block(first + 1).unwrap();
    assert_eq!(ChainApi::finalized_number(&node), 2);
    let running = start(&node);
    wait_until(
        Duration::from_secs(30),
        "two more blocks",
        || node.head_number() >= 4,
        || {},
    );
    running.stop();
    let record = read_protection(dir.path()).unwrap();
    assert!(record.last_proposed_slot > Some(first + 1));
    let third = node.chain().block(3).unwrap().unwrap();
    assert!(third.block.block().seal.slot > first + 1);
}

#[test]
fn corrupt_consensus_files_stop_the_validator_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), true)).unwrap();
    let protection = dir.path().join(PROTECTION_FILE);

    for garbage in [&b""[..], b"{\"validator\":", b"not json at all"] {
        std::fs::write(&protection, garbage).unwrap();
        let error = format!("{:#}", node.block_producer().unwrap_err());
        assert!(error.contains("corrupt"), "{error}");
        assert!(error.contains(PROTECTION_FILE), "{error}");
        assert!(error.contains("refusing to start"), "{error}");
        // Never reset behind the operator's back.
        assert_eq!(std::fs::read(&protection).unwrap(), garbage);
    }

    // A record of another key protects nothing.
    let other = dev_signers().unwrap()[1].address();
    std::fs::write(
        &protection,
        serde_json::to_vec(&SlashingProtectionRecord::new(other)).unwrap(),
    )
    .unwrap();
    let error = format!("{:#}", node.block_producer().unwrap_err());
    assert!(error.contains("record belongs to"), "{error}");

    // A corrupt checkpoint is refused too (with a valid record).
    std::fs::remove_file(&protection).unwrap();
    std::fs::write(dir.path().join(CHECKPOINT_FILE), b"[1, 2").unwrap();
    let error = format!("{:#}", node.block_producer().unwrap_err());
    assert!(
        error.contains(CHECKPOINT_FILE) && error.contains("corrupt"),
        "{error}"
    );
    std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    node.block_producer()
        .expect("starts once the files are gone on a new chain");

    // A node without a validator key has no producer.
    drop(node);
    let observer = Node::open(config(dir.path(), false)).unwrap();
    let error = format!("{:#}", observer.block_producer().unwrap_err());
    assert!(error.contains("no validator key"), "{error}");
}

const ETH: u128 = 1_000_000_000_000_000_000;

fn balance_at(node: &Node, number: u64, address: Address) -> U256 {
    node.state_at(number)
        .unwrap()
        .account(&address)
        .unwrap()
        .map_or(U256::ZERO, |account| account.balance)
}

/// A join submitted to a running validator: the producer includes it in a block's consensus
/// payload, the block's state moves the deposit from the joiner to the escrow, and the pool
/// forgets it; the transaction pool re-checks the joiner, whose queued transaction the deposit
/// made unpayable. A follower importing the blocks applies the same rule: a block whose state root
/// omits the deposit, or that drops the operation from its payload but keeps the deposit in its
/// root, or whose operation is forged, is refused; the real one imports to the same state.
#[test]
fn a_join_is_included_debited_and_checked_on_import() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let timestamp = now_ms() / 1000;
    let node = Node::open(common::node_config(
        a.path(),
        true,
        BLOCK_TIME_MS,
        timestamp,
    ))
    .unwrap();
    let running = start(&node);
    wait_until(
        Duration::from_secs(30),
        "a block",
        || node.head_number() >= 1,
        || {},
    );

    let joiner_signer = dev_signers().unwrap()[1].clone();
    let joiner = ValidatorKey::from_secret_bytes(joiner_signer.to_bytes().0, 64).unwrap();
    let stake = 2_000_000_000u64; // 2 ETH in gwei units
    let op = SignedStakingOp::sign(
        StakingOp {
            chain_id: node.chain_id(),
            validator: joiner.address(),
            nonce: 0,
            kind: StakingOpKind::Join {
                stake,
                randao_anchor: joiner.randao_anchor(0).unwrap(),
            },
        },
        &joiner,
    );
    // Garbage is an invalid-params error, not a panic.
    let garbage = node.send_staking_op(Bytes::from_static(b"\xc3\x01\x02"));
    assert_eq!(garbage.unwrap_err().code, -32602);
    // A transaction of the joiner that waits for nonce 0 (queued) and costs nearly all its
    // balance: payable before the deposit, not after.
    let genesis_balance = balance_at(&node, 0, joiner.address());
    let queued = node
        .send_raw_transaction(common::transfer(
            &joiner_signer,
            1,
            Address::repeat_byte(0x77),
            genesis_balance - U256::from(ETH),
        ))
        .unwrap();
    assert!(node.pool_transaction(queued).is_some());
    assert_eq!(node.pool_status(), (0, 1), "queued");
    // Only the next nonce is pooled.
    let mut ahead = op;
    ahead.op.nonce = 1;
    let ahead = SignedStakingOp::sign(ahead.op, &joiner);
    let refused = node
        .send_staking_op(Bytes::from(alloy_rlp::encode(ahead)))
        .unwrap_err();
    assert!(refused.message.contains("nonce"), "{}", refused.message);
    let raw = Bytes::from(alloy_rlp::encode(op));
    assert_eq!(
        node.send_staking_op(raw.clone()).unwrap(),
        staking_op_hash(&op)
    );
    assert_eq!(
        node.send_staking_op(raw.clone()).unwrap_err().message,
        "already known"
    );

    let deposit = U256::from(stake) * U256::from(WEI_PER_STAKE_UNIT);
    wait_until(
        Duration::from_secs(30),
        "the join to be included",
        || node.staking_pool().is_empty(),
        || {},
    );
    // The block's commit re-checked the joiner, whose balance the staking rule changed.
    assert!(
        node.pool_transaction(queued).is_none(),
        "the deposit left the queued transaction unpayable"
    );
    assert_eq!(node.pool_status(), (0, 0));
    let blocks = running.stop();
    assert!(!blocks.is_empty());
    let head = node.head_number();
    let carrying: Vec<u64> = (1..=head)
        .filter(|&number| {
            let block = node.chain().block(number).unwrap().unwrap();
            !signed_proposal(&block.block, node.chain_id())
                .unwrap()
                .block
                .staking_ops
                .is_empty()
        })
        .collect();
    assert_eq!(carrying.len(), 1, "exactly one block carries the join");
    let included = carrying[0];
    assert_eq!(
        balance_at(&node, included - 1, joiner.address()),
        genesis_balance
    );
    assert_eq!(balance_at(&node, included - 1, STAKING_ESCROW), U256::ZERO);
    assert_eq!(
        balance_at(&node, included, joiner.address()),
        genesis_balance - deposit
    );
    assert_eq!(balance_at(&node, included, STAKING_ESCROW), deposit);
    assert_eq!(balance_at(&node, head, STAKING_ESCROW), deposit);
    let ledger = staking_account(&node.state_at(head).unwrap(), joiner.address()).unwrap();
    assert_eq!((ledger.nonce, ledger.bonded), (1, stake));
    // Used up: a replay is refused at the door.
    assert!(node.send_staking_op(raw).is_err());

    // A follower imports the chain; the block carrying the join must carry its effect.
    let follower = Node::open(common::node_config(
        b.path(),
        false,
        BLOCK_TIME_MS,
        timestamp,
    ))
    .unwrap();
    let block_of = |number: u64| -> Block {
        node.chain()
            .block(number)
            .unwrap()
            .unwrap()
            .block
            .block()
            .clone()
    };
    for number in 1..included {
        follower.import_block(block_of(number)).unwrap();
    }
    let proposer = dev_signers().unwrap()[0].clone();
    let with_payload = |block: &mut Block, edit: &dyn Fn(&mut SealPayload)| {
        let mut payload = SealPayload::decode_exact(&block.seal.payload).unwrap();
        edit(&mut payload);
        block.seal.payload = payload.encoded();
    };
    let parent_root = node
        .chain()
        .block(included - 1)
        .unwrap()
        .unwrap()
        .block
        .header()
        .state_root;

    let mut omits_effect = block_of(included);
    omits_effect.header.state_root = parent_root;
    let mut drops_op = block_of(included);
    with_payload(&mut drops_op, &|payload| payload.staking_ops.clear());
    let mut forged = block_of(included);
    with_payload(&mut forged, &|payload| {
        payload.staking_ops[0].signature = joiner.sign_unprotected(B256::repeat_byte(7))
    });
    for (name, block, expect_root) in [
        ("root without the deposit", omits_effect, true),
        ("payload without the operation", drops_op, true),
        ("forged operation", forged, false),
    ] {
        match follower.import_block(common::reseal(block, &proposer)) {
            Err(ValidationFailure::Invalid(InvalidBlock::ExecutionMismatch { field, .. }))
                if expect_root =>
            {
                assert_eq!(field, "stateRoot", "{name}")
            }
            Err(ValidationFailure::Invalid(InvalidBlock::StakingOp { index: 0, .. }))
                if !expect_root => {}
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(follower.head_number(), included - 1, "{name}");
    }
    for number in included..=head {
        follower.import_block(block_of(number)).unwrap();
    }
    assert_eq!(follower.head().block.hash(), node.head().block.hash());
    assert_eq!(
        balance_at(&follower, head, joiner.address()),
        genesis_balance - deposit
    );
    assert_eq!(balance_at(&follower, head, STAKING_ESCROW), deposit);
}

/// Operations that consensus or the staking rule refuse although their nonce is the next one
/// leave the pool when a block is built (they would otherwise be offered to every block and
/// keep their validators' places); an includable one next to them is included.
#[test]
fn refused_staking_operations_leave_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), true)).unwrap();
    let signers = dev_signers().unwrap();
    let keys: Vec<ValidatorKey> = signers[2..5]
        .iter()
        .map(|s| ValidatorKey::from_secret_bytes(s.to_bytes().0, 64).unwrap())
        .collect();
    let [stranger, spender, joiner] = &keys[..] else {
        unreachable!()
    };
    let sign = |key: &ValidatorKey, kind| {
        SignedStakingOp::sign(
            StakingOp {
                chain_id: node.chain_id(),
                validator: key.address(),
                nonce: 0,
                kind,
            },
            key,
        )
    };
    let join = |key: &ValidatorKey, stake| {
        sign(
            key,
            StakingOpKind::Join {
                stake,
                randao_anchor: key.randao_anchor(0).unwrap(),
            },
        )
    };
    // Consensus refuses a stake change of someone who is not a validator (the ledger has
    // nothing against it); the staking rule refuses a join whose account the block's
    // transaction empties first.
    let not_a_validator = sign(stranger, StakingOpKind::SetStake { stake: 5 });
    let unpaid = join(spender, 2_000_000_000);
    let fine = join(joiner, 1_000_000_000);
    let state = node.state_at(0).unwrap();
    let cache = SignatureCache::default();
    for op in [not_a_validator, unpaid, fine] {
        node.staking_pool()
            .add(op, node.chain_id(), &state, &cache)
            .unwrap();
    }
    drop(state);
    let spender_balance = balance_at(&node, 0, spender.address());
    node.send_raw_transaction(common::transfer(
        &signers[3],
        0,
        Address::repeat_byte(0x78),
        spender_balance - U256::from(ETH),
    ))
    .unwrap();

    let running = start(&node);
    wait_until(
        Duration::from_secs(30),
        "the staking pool to empty",
        || node.staking_pool().is_empty(),
        || {},
    );
    running.stop();
    let head = node.head_number();
    let carried: Vec<SignedStakingOp> = (1..=head)
        .flat_map(|number| {
            let block = node.chain().block(number).unwrap().unwrap();
            signed_proposal(&block.block, node.chain_id())
                .unwrap()
                .block
                .staking_ops
        })
        .collect();
    assert_eq!(carried, vec![fine]);
    let state = node.state_at(head).unwrap();
    let nonce = |key: &ValidatorKey| staking_account(&state, key.address()).unwrap().nonce;
    assert_eq!((nonce(stranger), nonce(spender), nonce(joiner)), (0, 0, 1));
    assert!(balance_at(&node, head, spender.address()) < U256::from(ETH));
}
