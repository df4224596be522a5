//! A short load against a real node, when one is given: `CHAIND_RPC=http://127.0.0.1:8545`
//! (a `chaind dev --prefund-loadgen N` with N at least `CHAIND_ACCOUNTS`, default 100). Without
//! CHAIND_RPC the test prints why it did not run and passes.

use chain_loadtest::{
    app::run_load,
    config::{LoadOptions, Pace},
    workload::LoadKind,
};
use std::{
    io::Write as _,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

fn live_options(rpc: &str, workload: LoadKind) -> LoadOptions {
    let accounts = std::env::var("CHAIND_ACCOUNTS")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let mut options = LoadOptions::new(rpc);
    options.accounts = accounts;
    options.workload = workload;
    options.pace = Pace::Rate {
        tps: 200.0,
        ramp: None,
    };
    options.duration = Duration::from_secs(3);
    options.connections = 2;
    options.batch = 20;
    options.threads = 2;
    options.drain = Duration::from_secs(30);
    options.progress = false;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_load_against_a_live_node_loses_nothing() {
    let Ok(rpc) = std::env::var("CHAIND_RPC") else {
        // Written to stderr directly rather than with eprintln!, which the test harness captures,
        // so that the skip is visible in every test run.
        let _ = writeln!(
            std::io::stderr(),
            "live_node: skipped: set CHAIND_RPC to a dev node's URL (chaind dev --prefund-loadgen 100) to run it"
        );
        return;
    };
    for workload in [LoadKind::Transfer, LoadKind::Erc20] {
        let options = live_options(&rpc, workload);
        let report = run_load(&options, Arc::new(AtomicBool::new(false)))
            .await
            .expect("the run completes");
        println!("{}", report.table());
        let totals = &report.totals;
        assert_eq!(totals.submitted, 600, "{workload}: 200 tps for 3 s");
        assert_eq!(
            totals.rejected, 0,
            "{workload}: {:?}",
            totals.rejected_by_reason
        );
        assert_eq!(
            totals.transport_errors, 0,
            "{workload}: {:?}",
            totals.transport_errors_by_reason
        );
        assert_eq!(
            totals.lost, 0,
            "{workload}: lost {:?}",
            totals.lost_examples
        );
        assert_eq!(totals.duplicates, 0, "{workload}");
        assert_eq!(totals.included, totals.accepted, "{workload}");
        assert_eq!(totals.reverted, 0, "{workload}");
        assert!(report.verdict.all_accepted_included_once);
        assert_eq!(report.latency.count as u64, totals.included);
    }
}
