//! The RocksDB state: commits against a reference model and alloy-trie, reads through the
//! caches, history, reverts, pruning, reopening, chain data.

mod common;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use chain_primitives::{Account, AccountUpdate, InMemoryState, StateDiff, StateReader};
use chain_state::{ChainColumn, StateConfig, StateDb, StateError, diff_of_state, state_root_of};
use common::{BlockShape, address, alloy_root, assert_same_state, funded, random_block};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeMap;

fn open(dir: &tempfile::TempDir, config: StateConfig) -> StateDb {
    StateDb::open(dir.path(), config).expect("open state db")
}

fn small_genesis() -> (InMemoryState, StateDiff) {
    let mut state = InMemoryState::new();
    for i in 0..10 {
        state.insert_account(address(i), funded(1_000 + i));
    }
    state.insert_storage(address(0), U256::from(1), U256::from(11));
    state.insert_code(address(1), Bytes::from_static(&[0x60, 0x00]));
    let diff = diff_of_state(&state);
    (state, diff)
}

#[test]
fn random_blocks_match_the_model_and_alloy_trie() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    assert_eq!(db.latest(), None);
    let (mut model, genesis) = small_genesis();
    let root = db.genesis(&genesis, &[]).unwrap();
    assert_eq!(root, alloy_root(&model));
    assert_eq!(root, state_root_of(&model));

    let shape = BlockShape::default();
    let mut rng = StdRng::seed_from_u64(1);
    let reader = db.reader();
    for number in 1..=60 {
        let diff = random_block(&mut rng, &mut model, shape);
        let dry_run = db.state_root_after(&diff).unwrap();
        let root = db.commit_block(number, &diff, &[]).unwrap();
        assert_eq!(root, alloy_root(&model), "block {number}");
        assert_eq!(dry_run, root, "block {number}: dry run");
        assert_eq!(db.latest(), Some((number, root)));
        assert_same_state(&reader, &model, shape, &format!("block {number}"));
    }
    assert_eq!(
        db.recompute_root_from_flat().unwrap(),
        db.latest().unwrap().1
    );
    // Code is readable by hash.
    let code_hash = model.account(&address(1)).unwrap().unwrap().code_hash;
    assert_eq!(
        reader.code(&code_hash).unwrap(),
        model.code(&code_hash).unwrap()
    );
}

#[test]
fn blocks_must_be_consecutive() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let err = db.commit_block(1, &StateDiff::default(), &[]).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::NonConsecutiveBlock {
                expected: 0,
                got: 1
            }
        ),
        "{err}"
    );
    db.commit_block(0, &StateDiff::default(), &[]).unwrap();
    assert!(matches!(
        db.commit_block(0, &StateDiff::default(), &[]),
        Err(StateError::NonConsecutiveBlock {
            expected: 1,
            got: 0
        })
    ));
    assert!(matches!(
        db.commit_block(2, &StateDiff::default(), &[]),
        Err(StateError::NonConsecutiveBlock { .. })
    ));
    assert!(matches!(
        db.genesis(&StateDiff::default(), &[]),
        Err(StateError::NotEmpty)
    ));
    assert_eq!(db.latest(), Some((0, chain_state::EMPTY_ROOT_HASH)));
}

#[test]
fn historical_reads_equal_the_state_at_that_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let shape = BlockShape::default();
    let mut rng = StdRng::seed_from_u64(2);
    let mut models = vec![model.clone()];
    for number in 1..=30 {
        let diff = random_block(&mut rng, &mut model, shape);
        db.commit_block(number, &diff, &[]).unwrap();
        models.push(model.clone());
    }
    for (number, past) in models.iter().enumerate() {
        let reader = db.reader_at(number as u64).unwrap();
        assert_same_state(&reader, past, shape, &format!("state at {number}"));
        assert_eq!(db.root_at(number as u64).unwrap(), alloy_root(past));
    }
    assert!(matches!(
        db.reader_at(31),
        Err(StateError::UnknownBlock { number: 31, .. })
    ));
}

#[test]
fn historical_reads_across_multi_chunk_changesets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    // Blocks of up to ~1,500 changed keys: changesets of several 256-entry chunks.
    let shape = BlockShape {
        accounts: 500,
        touched: 300,
        slots: 8,
        writes: 4,
    };
    let mut rng = StdRng::seed_from_u64(21);
    let mut models = vec![model.clone()];
    for number in 1..=4 {
        let diff = random_block(&mut rng, &mut model, shape);
        db.commit_block(number, &diff, &[]).unwrap();
        models.push(model.clone());
    }
    assert!(db.stats().unwrap().history_entries > 1000);
    for (number, past) in models.iter().enumerate() {
        assert_same_state(
            &db.reader_at(number as u64).unwrap(),
            past,
            shape,
            &format!("state at {number}"),
        );
    }
    db.revert_to(1).unwrap();
    assert_same_state(&db.reader(), &models[1], shape, "reverted to 1");
    assert_eq!(
        db.recompute_root_from_flat().unwrap(),
        alloy_root(&models[1])
    );
}

#[test]
fn revert_restores_root_values_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let shape = BlockShape::default();
    let mut rng = StdRng::seed_from_u64(3);
    let mut models = vec![model.clone()];
    for number in 1..=20 {
        let diff = random_block(&mut rng, &mut model, shape);
        db.commit_block(number, &diff, &[]).unwrap();
        models.push(model.clone());
    }
    let reader = db.reader();
    // Warm the caches with the latest values, so stale entries would show after the revert.
    assert_same_state(&reader, &models[20], shape, "before revert");

    db.revert_to(12).unwrap();
    assert_eq!(db.latest(), Some((12, alloy_root(&models[12]))));
    assert_same_state(&reader, &models[12], shape, "after revert to 12");
    assert_eq!(
        db.recompute_root_from_flat().unwrap(),
        alloy_root(&models[12])
    );
    assert!(matches!(
        db.reader_at(13),
        Err(StateError::UnknownBlock { .. })
    ));
    assert_same_state(
        &db.reader_at(5).unwrap(),
        &models[5],
        shape,
        "history after revert",
    );

    // A different chain continues from block 12.
    let mut model = models[12].clone();
    let mut rng = StdRng::seed_from_u64(33);
    for number in 13..=25 {
        let diff = random_block(&mut rng, &mut model, shape);
        let root = db.commit_block(number, &diff, &[]).unwrap();
        assert_eq!(root, alloy_root(&model), "block {number} after reorg");
    }
    assert_same_state(&reader, &model, shape, "after reorg");
    db.revert_to(0).unwrap();
    assert_same_state(&reader, &models[0], shape, "back to genesis");
    assert_eq!(db.latest().unwrap().1, alloy_root(&models[0]));
    let stats = db.stats().unwrap();
    assert_eq!((stats.changesets, stats.history_entries), (0, 0));
}

#[test]
fn pruning_bounds_history_and_rejects_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        history_blocks: 5,
        ..StateConfig::for_tests()
    };
    let db = open(&dir, config.clone());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let shape = BlockShape::default();
    let mut rng = StdRng::seed_from_u64(4);
    let mut models = vec![model.clone()];
    let mut max_history = 0;
    for number in 1..=40 {
        let diff = random_block(&mut rng, &mut model, shape);
        db.commit_block(number, &diff, &[]).unwrap();
        models.push(model.clone());
        let stats = db.stats().unwrap();
        assert!(
            stats.changesets <= 5,
            "block {number}: {} changesets",
            stats.changesets
        );
        max_history = max_history.max(stats.history_entries);
    }
    assert_eq!(db.oldest_readable(), Some(35));
    for number in 0..35 {
        let err = db.reader_at(number).unwrap_err();
        assert!(
            matches!(err, StateError::PrunedBlock { oldest: 35, .. }),
            "{number}: {err}"
        );
        assert!(matches!(
            db.root_at(number),
            Err(StateError::PrunedBlock { .. })
        ));
        assert!(matches!(
            db.revert_to(number),
            Err(StateError::PrunedBlock { .. })
        ));
    }
    for number in 35..=40 {
        assert_same_state(
            &db.reader_at(number).unwrap(),
            &models[number as usize],
            shape,
            "retained",
        );
        assert_eq!(
            db.root_at(number).unwrap(),
            alloy_root(&models[number as usize])
        );
    }
    // History entries are bounded by 5 blocks' worth of changes.
    assert!(max_history <= 5 * (shape.touched * (1 + shape.slots as usize)) as u64);

    // A reader made while the block was retained fails once it is pruned.
    let old_reader = db.reader_at(35).unwrap();
    let diff = random_block(&mut rng, &mut model, shape);
    db.commit_block(41, &diff, &[]).unwrap();
    assert!(matches!(
        old_reader.account(&address(0)),
        Err(StateError::PrunedBlock { .. })
    ));

    // Shrinking the history on reopen prunes the excess at the next commit.
    drop(old_reader);
    drop(db);
    let db = open(
        &dir,
        StateConfig {
            history_blocks: 2,
            ..config
        },
    );
    let diff = random_block(&mut rng, &mut model, shape);
    db.commit_block(42, &diff, &[]).unwrap();
    assert_eq!(db.oldest_readable(), Some(40));
    assert_eq!(db.stats().unwrap().changesets, 2);
    db.revert_to(40).unwrap();
    assert_eq!(db.latest().unwrap().1, alloy_root(&models[40]));
}

#[test]
fn no_history_keeps_only_the_latest_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(
        &dir,
        StateConfig {
            history_blocks: 0,
            ..StateConfig::for_tests()
        },
    );
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for number in 1..=5 {
        let diff = random_block(&mut rng, &mut model, BlockShape::default());
        assert_eq!(
            db.commit_block(number, &diff, &[]).unwrap(),
            alloy_root(&model)
        );
    }
    let stats = db.stats().unwrap();
    assert_eq!((stats.changesets, stats.history_entries), (0, 0));
    assert!(matches!(
        db.reader_at(4),
        Err(StateError::PrunedBlock { oldest: 5, .. })
    ));
    assert!(db.reader_at(5).is_ok());
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut model, genesis) = small_genesis();
    let shape = BlockShape::default();
    let mut rng = StdRng::seed_from_u64(6);
    {
        let db = open(&dir, StateConfig::for_tests());
        db.genesis(&genesis, &[]).unwrap();
        for number in 1..=10 {
            let diff = random_block(&mut rng, &mut model, shape);
            db.commit_block(number, &diff, &[]).unwrap();
        }
    }
    let db = open(&dir, StateConfig::for_tests());
    assert_eq!(db.latest(), Some((10, alloy_root(&model))));
    assert_same_state(&db.reader(), &model, shape, "after reopen");
    let diff = random_block(&mut rng, &mut model, shape);
    assert_eq!(db.commit_block(11, &diff, &[]).unwrap(), alloy_root(&model));
}

#[test]
fn chain_writes_commit_with_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let hash0 = B256::repeat_byte(0xaa);
    let writes = vec![
        (
            ChainColumn::BlockHashes,
            0u64.to_be_bytes().to_vec(),
            Some(hash0.to_vec()),
        ),
        (
            ChainColumn::Headers,
            b"h/0".to_vec(),
            Some(b"header0".to_vec()),
        ),
        (
            ChainColumn::Headers,
            b"h/1".to_vec(),
            Some(b"header1".to_vec()),
        ),
        (
            ChainColumn::Headers,
            b"x/0".to_vec(),
            Some(b"other".to_vec()),
        ),
    ];
    db.genesis(&StateDiff::default(), &writes).unwrap();
    assert_eq!(
        db.get_chain(ChainColumn::Headers, b"h/1").unwrap(),
        Some(b"header1".to_vec())
    );
    assert_eq!(db.get_chain(ChainColumn::Receipts, b"h/1").unwrap(), None);
    let scanned: Vec<_> = db
        .scan_chain_prefix(ChainColumn::Headers, b"h/")
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        scanned,
        vec![
            (b"h/0".to_vec(), b"header0".to_vec()),
            (b"h/1".to_vec(), b"header1".to_vec())
        ]
    );
    assert_eq!(db.reader().block_hash(0).unwrap(), hash0);
    assert_eq!(db.reader().block_hash(1).unwrap(), B256::ZERO);

    let delete = vec![(ChainColumn::Headers, b"h/0".to_vec(), None)];
    db.commit_block(1, &StateDiff::default(), &delete).unwrap();
    assert_eq!(db.get_chain(ChainColumn::Headers, b"h/0").unwrap(), None);
}

#[test]
fn deleted_and_recreated_accounts_lose_their_old_storage() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let a = address(0);
    let slots: BTreeMap<U256, U256> = (1..50u64)
        .map(|i| (U256::from(i), U256::from(i * 7)))
        .collect();
    let mut diff = StateDiff::default();
    diff.accounts.insert(
        a,
        AccountUpdate {
            info: Some(funded(5)),
            storage_cleared: false,
            storage: slots,
        },
    );
    model.apply(&diff);
    assert_eq!(db.commit_block(1, &diff, &[]).unwrap(), alloy_root(&model));

    // Re-created with cleared storage and one slot (rewritten with its old value).
    let mut diff = StateDiff::default();
    diff.accounts.insert(
        a,
        AccountUpdate {
            info: Some(funded(6)),
            storage_cleared: true,
            storage: [(U256::from(3), U256::from(21))].into_iter().collect(),
        },
    );
    model.apply(&diff);
    assert_eq!(db.commit_block(2, &diff, &[]).unwrap(), alloy_root(&model));
    let reader = db.reader();
    assert_eq!(reader.storage(&a, &U256::from(4)).unwrap(), U256::ZERO);
    assert_eq!(reader.storage(&a, &U256::from(3)).unwrap(), U256::from(21));

    // Deleted.
    let mut diff = StateDiff::default();
    diff.accounts.insert(
        a,
        AccountUpdate {
            info: None,
            storage_cleared: true,
            storage: BTreeMap::new(),
        },
    );
    model.apply(&diff);
    assert_eq!(db.commit_block(3, &diff, &[]).unwrap(), alloy_root(&model));
    assert_eq!(reader.account(&a).unwrap(), None);
    assert_eq!(reader.storage(&a, &U256::from(3)).unwrap(), U256::ZERO);
    assert_eq!(db.recompute_root_from_flat().unwrap(), alloy_root(&model));
    let stats = db.stats().unwrap();
    assert_eq!(
        stats.storage_slots, 0,
        "the deleted account held the only slots"
    );

    // Reverting brings the 49 slots back.
    db.revert_to(1).unwrap();
    assert_eq!(reader.storage(&a, &U256::from(4)).unwrap(), U256::from(28));
    assert_eq!(reader.account(&a).unwrap(), Some(funded(5)));
}

#[test]
fn absent_accounts_are_answered_and_created_accounts_become_visible() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    db.genesis(&StateDiff::default(), &[]).unwrap();
    let reader = db.reader();
    let fresh = Address::repeat_byte(0x42);
    assert_eq!(reader.account(&fresh).unwrap(), None);
    let mut diff = StateDiff::default();
    let account = Account {
        nonce: 1,
        balance: U256::from(9),
        code_hash: keccak256([1]),
    };
    diff.accounts.insert(
        fresh,
        AccountUpdate {
            info: Some(account),
            ..Default::default()
        },
    );
    db.commit_block(1, &diff, &[]).unwrap();
    assert_eq!(reader.account(&fresh).unwrap(), Some(account));
    // The filter is rebuilt at open from the flat state.
    drop(reader);
    drop(db);
    let db = open(&dir, StateConfig::for_tests());
    assert_eq!(db.reader().account(&fresh).unwrap(), Some(account));
}

#[test]
fn existence_filter_grows_past_its_initial_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(
        &dir,
        StateConfig {
            filter_expected_accounts: 1024,
            ..StateConfig::for_tests()
        },
    );
    let mut model = InMemoryState::new();
    for i in 0..3000 {
        model.insert_account(address(i), funded(i + 1));
    }
    db.genesis(&diff_of_state(&model), &[]).unwrap();
    let reader = db.reader();
    for i in 0..3000 {
        assert_eq!(reader.account(&address(i)).unwrap(), Some(funded(i + 1)));
    }
    assert_eq!(db.latest().unwrap().1, alloy_root(&model));
}

#[test]
fn readers_run_concurrently_with_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StateConfig::for_tests());
    let (mut model, genesis) = small_genesis();
    db.genesis(&genesis, &[]).unwrap();
    let shape = BlockShape {
        accounts: 30,
        ..BlockShape::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let reader = db.reader();
            let stop = &stop;
            scope.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for i in 0..shape.accounts {
                        reader.account(&address(i)).unwrap();
                        reader
                            .storage(&address(i), &U256::from(i % shape.slots))
                            .unwrap();
                    }
                }
            });
        }
        let mut rng = StdRng::seed_from_u64(7);
        for number in 1..=40 {
            let diff = random_block(&mut rng, &mut model, shape);
            assert_eq!(
                db.commit_block(number, &diff, &[]).unwrap(),
                alloy_root(&model)
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // Whatever the readers cached while commits went on, the caches hold the latest state.
    assert_same_state(&db.reader(), &model, shape, "after concurrent reads");
}
