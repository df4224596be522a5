//! `chaind init --config` creates the database with the config file's `[state]` settings, and
//! `chaind node` without a genesis refuses an empty data directory without creating one.

use chaind::dev::{DevOptions, dev_genesis, dev_signers};
use std::process::Command;

/// `chaind init` of `genesis` with `config`, into `datadir` if given.
fn init(
    genesis: &std::path::Path,
    config: &std::path::Path,
    datadir: Option<&std::path::Path>,
) -> std::process::Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "init".as_ref(),
        "--genesis".as_ref(),
        genesis.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ];
    if let Some(datadir) = datadir {
        args.extend(["--datadir".as_ref(), datadir.as_os_str()]);
    }
    chaind(&args)
}

fn chaind(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chaind"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("chaind runs")
}

#[test]
fn init_takes_the_state_section_and_node_does_not_create_empty_databases() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dev_genesis(
        &DevOptions {
            block_time_ms: 1000,
            gas_limit: 30_000_000,
            prefund_loadgen: 0,
            loadgen_seed: 0,
            timestamp: 0,
        },
        &dev_signers().unwrap(),
    )
    .unwrap();
    let genesis_path = dir.path().join("genesis.json");
    std::fs::write(&genesis_path, serde_json::to_vec(&genesis).unwrap()).unwrap();
    let datadir = dir.path().join("node");
    let config_path = dir.path().join("chaind.toml");
    std::fs::write(
        &config_path,
        format!(
            "datadir = {:?}\n[state]\nsmall_storage_max_slots = 0\n",
            datadir.display().to_string()
        ),
    )
    .unwrap();

    let out = init(&genesis_path, &config_path, None);
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Opened later with the default configuration (16), the database keeps its own bound.
    let db = chain_state::StateDb::open(datadir.join("db"), chain_state::StateConfig::default())
        .unwrap();
    assert_eq!(db.small_storage_max_slots(), 0);
    assert_eq!(db.latest().map(|(number, _)| number), Some(0));
    drop(db);

    // An out-of-range value is an error naming the key, and nothing is created.
    std::fs::write(&config_path, "[state]\nsmall_storage_max_slots = 1000\n").unwrap();
    let fresh = dir.path().join("fresh");
    let out = init(&genesis_path, &config_path, Some(&fresh));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("state.small_storage_max_slots"), "{stderr}");
    assert!(
        !fresh.exists(),
        "a refused init created {}",
        fresh.display()
    );

    // A node without a genesis on an empty data directory says what to do and leaves no
    // database behind (one would fix the bound before `chaind init` could choose it).
    let empty = dir.path().join("empty");
    let out = chaind(&["node".as_ref(), "--datadir".as_ref(), empty.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("holds no chain"), "{stderr}");
    assert!(
        !empty.join("db").exists(),
        "the refused start created a database"
    );
}
