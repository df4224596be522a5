//! The GeneralStateTests and execution-spec-tests fixtures in ../shared/fixtures through the
//! executor: every case passes except the documented ones.

use chaind::statetest::{CaseResult, collect_files, run_file, summarize};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// Cases that fail because revm does not implement EIP-7610 (creation onto an address that
/// has storage but no code or nonce must fail); revm's and reth's runners skip the same files.
const KNOWN_FAILURES: [&str; 2] = ["InitCollisionParis.json", "RevertInCreateInInit_Paris.json"];

#[test]
fn state_tests_pass() {
    let mut reports = Vec::new();
    for dir in ["GeneralStateTests", "eest"] {
        for file in collect_files(&fixtures().join(dir)).expect("fixtures are readable") {
            reports.extend(run_file(&file));
        }
    }
    let summary = summarize(&reports);
    println!("{summary}");
    let unexpected: Vec<_> = reports
        .iter()
        .filter(|r| matches!(r.result, CaseResult::Fail(_)))
        .filter(|r| !KNOWN_FAILURES.iter().any(|known| r.file.ends_with(known)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected failures: {unexpected:#?}"
    );
    for known in KNOWN_FAILURES {
        assert!(
            reports
                .iter()
                .any(|r| r.file.ends_with(known) && matches!(r.result, CaseResult::Fail(_))),
            "{known} passes now: remove it from the known failures and the README"
        );
    }
    assert!(summary.passed >= 70, "too few cases ran: {summary}");
    // Skips are only transaction types this chain rejects by design.
    for r in reports
        .iter()
        .filter(|r| matches!(r.result, CaseResult::Skip(_)))
    {
        let CaseResult::Skip(reason) = &r.result else {
            unreachable!()
        };
        assert!(
            reason.contains("EIP-4844") || reason.contains("EIP-7702"),
            "{reason}"
        );
    }
}
