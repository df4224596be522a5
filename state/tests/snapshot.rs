//! Snapshot export and import: round trip, rejection of tampered, truncated and garbage
//! streams, and refusal to import into a database with state.

mod common;

use alloy_primitives::U256;
use chain_primitives::InMemoryState;
use chain_state::{StateConfig, StateDb, StateError, diff_of_state};
use common::{
    BlockShape, address, alloy_root, assert_same_state, expected_storage_trie_nodes, funded,
    random_block,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A database with genesis and some random blocks; returns it with its model.
fn populated(dir: &tempfile::TempDir, shape: BlockShape) -> (StateDb, InMemoryState) {
    let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
    let mut model = InMemoryState::new();
    for i in 0..shape.accounts {
        model.insert_account(address(i), funded(i + 1));
    }
    db.genesis(&diff_of_state(&model), &[]).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    for number in 1..=12 {
        let diff = random_block(&mut rng, &mut model, shape);
        db.commit_block(number, &diff, &[]).unwrap();
    }
    (db, model)
}

fn export(db: &StateDb) -> Vec<u8> {
    let mut bytes = Vec::new();
    let info = db.export_snapshot(&mut bytes).unwrap();
    assert_eq!(info.bytes, bytes.len() as u64);
    bytes
}

#[test]
fn round_trip_reproduces_the_state_and_root() {
    let shape = BlockShape::default();
    let source_dir = tempfile::tempdir().unwrap();
    let (source, mut model) = populated(&source_dir, shape);
    let mut bytes = Vec::new();
    let info = source.export_snapshot(&mut bytes).unwrap();
    assert_eq!((info.block, info.root), source.latest().unwrap());
    assert_eq!(info.accounts, model.len() as u64);
    assert!(info.storage_slots > 0 && info.codes > 0, "{info:?}");

    let target_dir = tempfile::tempdir().unwrap();
    let (target, block, root) =
        StateDb::import_snapshot(target_dir.path(), StateConfig::for_tests(), &bytes[..]).unwrap();
    assert_eq!((block, root), (info.block, info.root));
    assert_eq!(target.latest(), Some((block, root)));
    assert_same_state(&target.reader(), &model, shape, "imported");
    assert_eq!(target.recompute_root_from_flat().unwrap(), root);
    for (hash, code) in model.codes() {
        use chain_primitives::StateReader;
        assert_eq!(target.reader().code(hash).unwrap().as_ref(), Some(code));
    }
    // The imported database carries on like the original.
    let mut rng = StdRng::seed_from_u64(12);
    let diff = random_block(&mut rng, &mut model, shape);
    let next = source.commit_block(block + 1, &diff, &[]).unwrap();
    assert_eq!(target.commit_block(block + 1, &diff, &[]).unwrap(), next);
    assert_eq!(next, alloy_root(&model));
    assert_eq!(export(&source), export(&target));
}

#[test]
fn multi_chunk_snapshots_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
    let mut model = InMemoryState::new();
    for i in 0..20_000 {
        model.insert_account(address(i), funded(i));
    }
    for i in 0..2_000 {
        model.insert_storage(address(7), U256::from(i), U256::from(i + 1));
    }
    let root = db.genesis(&diff_of_state(&model), &[]).unwrap();
    let bytes = export(&db);
    assert!(
        bytes.len() > 1 << 20,
        "expected more than one 1 MiB chunk, got {} bytes",
        bytes.len()
    );
    let target = tempfile::tempdir().unwrap();
    let (_, _, imported) =
        StateDb::import_snapshot(target.path(), StateConfig::for_tests(), &bytes[..]).unwrap();
    assert_eq!(imported, root);
}

#[test]
fn tampered_snapshots_are_rejected() {
    let shape = BlockShape::default();
    let source_dir = tempfile::tempdir().unwrap();
    let (source, _) = populated(&source_dir, shape);
    let bytes = export(&source);

    // The last balance byte of the first account record: header (50), chunk length (4),
    // tag (1), address (20), nonce (8), balance (32).
    let mut balance = bytes.clone();
    balance[50 + 4 + 1 + 20 + 8 + 31] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    let err =
        StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &balance[..]).unwrap_err();
    assert!(
        matches!(err, StateError::SnapshotRootMismatch { .. }),
        "{err}"
    );
    // Nothing of the rejected import stays behind: the directory holds an empty database.
    let reopened = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
    assert_eq!(reopened.latest(), None);
    assert_eq!(reopened.stats().unwrap().accounts, 0);
    drop(reopened);

    // A different root in the header.
    let mut header_root = bytes.clone();
    header_root[20] ^= 0x80;
    let dir = tempfile::tempdir().unwrap();
    let err = StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &header_root[..])
        .unwrap_err();
    assert!(
        matches!(err, StateError::SnapshotRootMismatch { .. }),
        "{err}"
    );

    // The last code byte (codes come last, right before the end marker and trailer).
    let mut code = bytes;
    let last_code_byte = code.len() - 28 - 1;
    code[last_code_byte] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    let err =
        StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &code[..]).unwrap_err();
    assert!(matches!(err, StateError::BadSnapshot(_)), "{err}");
}

#[test]
fn truncated_and_garbage_streams_are_errors_not_panics() {
    let shape = BlockShape {
        accounts: 8,
        touched: 4,
        slots: 4,
        writes: 2,
    };
    let source_dir = tempfile::tempdir().unwrap();
    let (source, _) = populated(&source_dir, shape);
    let bytes = export(&source);
    let dir = tempfile::tempdir().unwrap();
    // Cuts in the header, the first chunk's length, records, and the trailer.
    let step = (bytes.len() / 12).max(1);
    for cut in (0..bytes.len())
        .step_by(step)
        .chain([10, 52, bytes.len() - 20, bytes.len() - 1])
    {
        let err = StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &bytes[..cut])
            .unwrap_err();
        assert!(
            matches!(err, StateError::BadSnapshot(_)),
            "cut at {cut}: {err}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &trailing[..]),
        Err(StateError::BadSnapshot(_))
    ));
    let mut rng = StdRng::seed_from_u64(13);
    for _ in 0..8 {
        let mut garbage = bytes.clone();
        for _ in 0..4 {
            let at = rand::Rng::random_range(&mut rng, 50..garbage.len());
            garbage[at] = rand::Rng::random(&mut rng);
        }
        // Any error will do; what matters is that none panics and none is accepted.
        if let Ok((db, _, root)) =
            StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &garbage[..])
        {
            // Flipped bytes that land in, e.g., an unused padding position could still be a
            // valid snapshot of the same state; then the root must be the original's.
            assert_eq!(root, source.latest().unwrap().1);
            drop(db);
            std::fs::remove_dir_all(dir.path()).unwrap();
        }
    }
    let mut bad_magic = bytes;
    bad_magic[0] = b'X';
    assert!(matches!(
        StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &bad_magic[..]),
        Err(StateError::BadSnapshot(_))
    ));
}

#[test]
fn import_refuses_a_database_with_state() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = populated(&dir, BlockShape::default());
    let bytes = export(&db);
    drop(db);
    let err =
        StateDb::import_snapshot(dir.path(), StateConfig::for_tests(), &bytes[..]).unwrap_err();
    assert!(matches!(err, StateError::NotEmpty), "{err}");
    // And the existing state is untouched.
    let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
    assert_eq!(db.latest().unwrap().0, 12);
}

#[test]
fn imported_storage_keeps_nodes_only_above_the_small_bound() {
    // The test configuration's bound is 4 slots: one account above it, one below.
    let (large, small) = (address(1), address(2));
    let mut model = InMemoryState::new();
    for (account, slots) in [(large, 10u64), (small, 2)] {
        model.insert_account(account, funded(7));
        for slot in 0..slots {
            model.insert_storage(account, U256::from(slot), U256::from(slot + 1));
        }
    }
    let source_dir = tempfile::tempdir().unwrap();
    let source = StateDb::open(source_dir.path(), StateConfig::for_tests()).unwrap();
    source.genesis(&diff_of_state(&model), &[]).unwrap();
    assert_eq!(
        source.stats().unwrap().storage_trie_nodes,
        expected_storage_trie_nodes(&model, 4)
    );

    let target_dir = tempfile::tempdir().unwrap();
    let (target, block, root) = StateDb::import_snapshot(
        target_dir.path(),
        StateConfig::for_tests(),
        &export(&source)[..],
    )
    .unwrap();
    assert_eq!((block, root), (0, alloy_root(&model)));
    let nodes = target.stats().unwrap().storage_trie_nodes;
    assert!(nodes > 0);
    assert_eq!(nodes, expected_storage_trie_nodes(&model, 4));

    // The large storage shrinks below the bound and the small one grows above it.
    let mut diff = chain_primitives::StateDiff::default();
    let mut shrink = chain_primitives::AccountUpdate {
        info: Some(funded(7)),
        ..Default::default()
    };
    for slot in 3..10u64 {
        shrink.storage.insert(U256::from(slot), U256::ZERO);
    }
    let mut grow = chain_primitives::AccountUpdate {
        info: Some(funded(7)),
        ..Default::default()
    };
    for slot in 2..9u64 {
        grow.storage
            .insert(U256::from(slot), U256::from(100 + slot));
    }
    diff.accounts.insert(large, shrink);
    diff.accounts.insert(small, grow);
    model.apply(&diff);
    assert_eq!(
        target.commit_block(1, &diff, &[]).unwrap(),
        alloy_root(&model)
    );
    assert_eq!(
        target.stats().unwrap().storage_trie_nodes,
        expected_storage_trie_nodes(&model, 4)
    );
    assert_eq!(model.accounts()[&large].storage.len(), 3);
    assert_eq!(model.accounts()[&small].storage.len(), 9);
}
