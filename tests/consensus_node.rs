//! A single-validator node whose block producer drives the consensus engine, in process and in
//! real time: finality trails the head by one block, seals carry valid RANDAO reveals and
//! signed proposals, a restart resumes production without signing a slot twice, and corrupt
//! consensus files stop the validator from starting.

mod common;

use alloy_primitives::keccak256;
use chain_consensus::{SignatureCache, SlashingProtectionRecord, TrustedCheckpoint, ValidatorKey};
use chain_rpc::ChainApi;
use chaind::{
    dev::dev_signers,
    node::{
        Node, NodeConfig, ProducedBlock,
        consensus::{CHECKPOINT_FILE, PROTECTION_FILE, RANDAO_CHAIN_EPOCHS, signed_proposal},
        now_ms,
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
