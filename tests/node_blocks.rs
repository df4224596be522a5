//! Block production, import and validation, and restart of a node, in process.

mod common;

use alloy_primitives::{Address, B256, Bytes, U256};
use chain_primitives::Block;
use chain_rpc::ChainApi;
use chaind::{
    dev::dev_signers,
    node::{
        Node, NodeConfig,
        execution::{InvalidBlock, ValidationFailure},
    },
};
use std::path::Path;

fn config(dir: &Path, validator: bool) -> NodeConfig {
    common::node_config(dir, validator, 1000, 1_700_000_000)
}

/// A producer node with `blocks` blocks of a few transfers each, and its blocks.
fn produce(dir: &Path, blocks: u64) -> (Node, Vec<Block>) {
    let node = Node::open(config(dir, true)).unwrap();
    let signers = dev_signers().unwrap();
    let mut produced = Vec::new();
    for b in 0..blocks {
        for (i, signer) in signers.iter().enumerate().skip(1).take(3) {
            node.send_raw_transaction(common::transfer(
                signer,
                b,
                Address::repeat_byte(0x40 + i as u8),
                U256::from(1_000 + b),
            ))
            .expect("pool accepts");
        }
        let block = node.produce_block(b + 1).unwrap();
        assert_eq!(block.transactions, 3);
        produced.push(
            node.chain()
                .block(block.number)
                .unwrap()
                .unwrap()
                .block
                .block()
                .clone(),
        );
    }
    (node, produced)
}

#[test]
fn imported_blocks_reproduce_the_producer_chain() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (producer, blocks) = produce(a.path(), 4);
    let follower = Node::open(config(b.path(), false)).unwrap();
    for block in blocks {
        follower.import_block(block).expect("valid block imports");
    }
    assert_eq!(follower.head().block.hash(), producer.head().block.hash());
    assert_eq!(
        follower.chain().db().latest().unwrap(),
        producer.chain().db().latest().unwrap(),
        "same state root"
    );
}

#[test]
fn every_invalid_field_is_rejected_and_changes_nothing() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_producer, blocks) = produce(a.path(), 2);
    let follower = Node::open(config(b.path(), false)).unwrap();
    follower.import_block(blocks[0].clone()).unwrap();
    let good = blocks[1].clone();
    let head_before = follower.head().block.hash();
    let root_before = follower.chain().db().latest().unwrap();

    type Tamper = fn(&mut Block);
    type Expect = fn(&InvalidBlock) -> bool;
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        (
            "parent hash",
            |b| b.header.parent_hash = B256::repeat_byte(1),
            |e| matches!(e, InvalidBlock::ParentHash { .. }),
        ),
        (
            "number",
            |b| b.header.number += 1,
            |e| matches!(e, InvalidBlock::Number { .. }),
        ),
        (
            "timestamp",
            |b| b.header.timestamp = 1,
            |e| matches!(e, InvalidBlock::Timestamp { .. }),
        ),
        (
            "gas limit",
            |b| b.header.gas_limit += 1,
            |e| matches!(e, InvalidBlock::GasLimit { .. }),
        ),
        (
            "base fee",
            |b| b.header.base_fee_per_gas = Some(7),
            |e| matches!(e, InvalidBlock::BaseFee { .. }),
        ),
        (
            "difficulty",
            |b| b.header.difficulty = U256::from(1),
            |e| matches!(e, InvalidBlock::ConstantField { .. }),
        ),
        (
            "ommers",
            |b| b.header.ommers_hash = B256::ZERO,
            |e| matches!(e, InvalidBlock::ConstantField { .. }),
        ),
        (
            "extra data",
            |b| b.header.extra_data = Bytes::from(vec![0; 33]),
            |e| matches!(e, InvalidBlock::ExtraData(33)),
        ),
        (
            "transactions root",
            |b| b.header.transactions_root = B256::ZERO,
            |e| matches!(e, InvalidBlock::TransactionsRoot { .. }),
        ),
        (
            "dropped transaction",
            |b| {
                b.transactions.pop();
            },
            |e| matches!(e, InvalidBlock::TransactionsRoot { .. }),
        ),
        (
            "seal",
            |b| b.seal.signature = Bytes::from(vec![1; 65]),
            |e| matches!(e, InvalidBlock::Seal(_)),
        ),
        // The seal is outside the header hash: its slot is checked against the parent's.
        (
            "seal slot equal to the parent's",
            |b| b.seal.slot = 1,
            |e| matches!(e, InvalidBlock::SlotNotAfterParent { parent: 1, got: 1 }),
        ),
        (
            "seal slot before the parent's",
            |b| b.seal.slot = 0,
            |e| matches!(e, InvalidBlock::SlotNotAfterParent { parent: 1, got: 0 }),
        ),
        (
            "gas used",
            |b| b.header.gas_used += 1,
            |e| {
                matches!(
                    e,
                    InvalidBlock::ExecutionMismatch {
                        field: "gasUsed",
                        ..
                    } | InvalidBlock::Seal(_)
                )
            },
        ),
        (
            "state root",
            |b| b.header.state_root = B256::repeat_byte(9),
            |e| {
                matches!(
                    e,
                    InvalidBlock::ExecutionMismatch { .. } | InvalidBlock::Seal(_)
                )
            },
        ),
        (
            "receipts root",
            |b| b.header.receipts_root = B256::repeat_byte(9),
            |e| {
                matches!(
                    e,
                    InvalidBlock::ExecutionMismatch { .. } | InvalidBlock::Seal(_)
                )
            },
        ),
        (
            "logs bloom",
            |b| b.header.logs_bloom = alloy_primitives::Bloom::repeat_byte(1),
            |e| {
                matches!(
                    e,
                    InvalidBlock::ExecutionMismatch { .. } | InvalidBlock::Seal(_)
                )
            },
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut block = good.clone();
        tamper(&mut block);
        match follower.import_block(block) {
            Err(ValidationFailure::Invalid(error)) => {
                assert!(expected(&error), "{name}: unexpected error {error}")
            }
            other => panic!("{name}: expected rejection, got {other:?}"),
        }
        assert_eq!(
            follower.head().block.hash(),
            head_before,
            "{name}: head changed"
        );
        assert_eq!(
            follower.chain().db().latest().unwrap(),
            root_before,
            "{name}: state changed"
        );
    }
    follower
        .import_block(good)
        .expect("the untampered block still imports");
}

#[test]
fn fields_after_a_valid_seal_are_checked_by_execution() {
    // Re-sealing a tampered block with the proposer's key isolates each execution check from
    // the seal check.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_producer, blocks) = produce(a.path(), 1);
    let follower = Node::open(config(b.path(), false)).unwrap();
    let proposer = dev_signers().unwrap()[0].clone();
    type Tamper = fn(&mut Block);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        ("gas used", |b| b.header.gas_used += 1, "gasUsed"),
        (
            "state root",
            |b| b.header.state_root = B256::repeat_byte(9),
            "stateRoot",
        ),
        (
            "receipts root",
            |b| b.header.receipts_root = B256::repeat_byte(9),
            "receiptsRoot",
        ),
        (
            "logs bloom",
            |b| b.header.logs_bloom = alloy_primitives::Bloom::repeat_byte(1),
            "logsBloom",
        ),
    ];
    for (name, tamper, field) in cases {
        let mut block = blocks[0].clone();
        tamper(&mut block);
        match follower.import_block(common::reseal(block, &proposer)) {
            Err(ValidationFailure::Invalid(InvalidBlock::ExecutionMismatch {
                field: f, ..
            })) => assert_eq!(f, field, "{name}"),
            other => panic!("{name}: expected an execution mismatch, got {other:?}"),
        }
        assert_eq!(follower.head_number(), 0);
    }
}

#[test]
fn restart_continues_from_the_last_block_with_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = produce(dir.path(), 3);
    let head = node.head().block.hash();
    let latest = node.chain().db().latest().unwrap();
    let balance = node.state_at(3).unwrap();
    let probe = Address::repeat_byte(0x41);
    let before = chain_primitives::StateReader::account(&balance, &probe).unwrap();
    drop(balance);
    drop(node);
    let reopened = Node::open(config(dir.path(), true)).unwrap();
    assert_eq!(reopened.head().block.hash(), head);
    assert_eq!(reopened.chain().db().latest().unwrap(), latest);
    let state = reopened.state_at(3).unwrap();
    assert_eq!(
        chain_primitives::StateReader::account(&state, &probe).unwrap(),
        before
    );
    assert!(before.is_some());
    // And it keeps producing on top.
    let next = reopened.produce_block(10).unwrap();
    assert_eq!(next.number, 4);
}

/// The builder refuses a slot that is not after the parent's (import would refuse the block);
/// the first block needs a slot above the genesis' 0.
#[test]
fn the_builder_refuses_a_slot_not_after_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(config(dir.path(), true)).unwrap();
    assert!(node.produce_block(0).is_err());
    assert_eq!(node.produce_block(5).unwrap().number, 1);
    for slot in [5, 4] {
        let error = node.produce_block(slot).unwrap_err().to_string();
        assert!(error.contains("slot"), "{error}");
    }
    assert_eq!(node.head_number(), 1);
    assert_eq!(node.head().block.block().seal.slot, 5);
}
