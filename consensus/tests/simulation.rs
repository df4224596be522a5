//! The deterministic simulator's proofs: many random seeds (safety, liveness after healing,
//! slashing of every observed equivocation, no reorg beyond finality), the normal case, a
//! healed partition, staking changes, and the 1/3 bound shown from both sides.
//!
//! `SIM_SEEDS=n` runs `n` random seeds instead of 1,000 (`SIM_SEED_START` shifts them;
//! `SIM_FULL_LENGTH=1` runs every scenario to its nominal end instead of stopping once
//! everything is settled); `SIM_SEED=s` replays one seed (add `SIM_TRACE=1` to print every
//! node's view per slot). A long run:
//! `SIM_SEEDS=100000 cargo test --release -p chain-consensus --test simulation random_seeds`.

use std::time::Instant;

use chain_consensus::sim::{
    ByzantineBehaviour, Crash, Partition, Scenario, SimReport, StakingChange, StakingEvent, run,
};

const DEFAULT_SEEDS: u64 = 1_000;
/// The random seeds are split over this many tests so that the harness runs them in parallel.
const SHARDS: u64 = 4;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

fn run_shard(shard: u64) {
    let total = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("SIM_SEED_START").unwrap_or(0);
    let full_length = std::env::var_os("SIM_FULL_LENGTH").is_some();
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut runs, mut slots, mut sent, mut equivocations, mut slashed, mut faults) =
        (0u64, 0, 0, 0, 0, 0);
    let mut finality_after_stable = Vec::new();
    for seed in (start..start + total).filter(|seed| seed % SHARDS == shard) {
        let mut scenario = Scenario::random(seed);
        if full_length {
            scenario.stop_when_settled = false;
        }
        let report = run(&scenario);
        runs += 1;
        slots += report.slots_run;
        sent += report.stats.equivocations_sent;
        equivocations += report.stats.equivocations_observed;
        slashed += report.stats.offenders_slashed;
        faults += report.stats.hops_lost
            + report.stats.hops_partitioned
            + report.stats.hops_duplicated
            + report.stats.crashes
            + report.stats.garbage_sent
            + report.stats.withheld_blocks
            + report.stats.invalid_blocks;
        if let Some(after) = report.slots_to_finality_after_stable {
            finality_after_stable.push(after);
        }
        if !report.violations.is_empty() {
            eprintln!(
                "FAILING SEED {seed} (replay: SIM_SEED={seed} SIM_TRACE=1 cargo test -p chain-consensus --test simulation replay_one_seed -- --nocapture):"
            );
            for violation in &report.violations {
                eprintln!("  {violation}");
            }
            failures.push(seed);
        }
    }
    finality_after_stable.sort_unstable();
    let percentile = |p: usize| {
        finality_after_stable
            .get(finality_after_stable.len().saturating_sub(1) * p / 100)
            .copied()
    };
    eprintln!(
        "shard {shard}: {runs} seeds, {slots} slots in {:.1?}; faults injected {faults}, equivocations sent {sent}, seen by an honest node {equivocations}, offenders slashed {slashed}; slots to finality after stability p50 {:?} p99 {:?} max {:?}",
        started.elapsed(),
        percentile(50),
        percentile(99),
        finality_after_stable.last()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

#[test]
fn random_seeds_shard_0() {
    run_shard(0);
}

#[test]
fn random_seeds_shard_1() {
    run_shard(1);
}

#[test]
fn random_seeds_shard_2() {
    run_shard(2);
}

#[test]
fn random_seeds_shard_3() {
    run_shard(3);
}

/// Replays `SIM_SEED` (seed 0 when unset) and fails on any violation.
#[test]
fn replay_one_seed() {
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let scenario = Scenario::random(seed);
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("{scenario:#?}");
    }
    let report = run(&scenario);
    if std::env::var_os("SIM_TRACE").is_some() {
        eprintln!("{report:#?}");
    }
    assert!(
        report.violations.is_empty(),
        "seed {seed}: {:#?}",
        report.violations
    );
}

fn assert_clean(report: &SimReport) {
    assert!(
        report.violations.is_empty(),
        "seed {}: {:#?}",
        report.seed,
        report.violations
    );
}

/// No faults: every block is final one slot after its own (its child's votes, cast in the next
/// slot, use it as source), for 4, 7 and 20 validators.
#[test]
fn normal_case_finality_takes_one_slot() {
    for n in [4, 7, 20] {
        let report = run(&Scenario::calm(n as u64, n, 16));
        assert_clean(&report);
        assert!(
            report.min_finalized_height >= 13,
            "{n} validators: {}",
            report.min_finalized_height
        );
        let late = report.finality_lags.iter().filter(|lag| **lag > 1).count();
        eprintln!(
            "{n} validators, calm: finalized height {}, lags {:?}",
            report.min_finalized_height, report.finality_lags
        );
        assert_eq!(
            late, 0,
            "{n} validators: some blocks took more than one slot"
        );
    }
}

/// Two halves of the stake cannot finalize while apart (neither has 2/3), keep building their
/// own branches, and finalize again within a few slots of healing; the losing branch is reorged
/// away, never a finalized block.
#[test]
fn finality_resumes_after_a_partition_heals() {
    let mut figures = Vec::new();
    for seed in 0..10 {
        let mut scenario = Scenario::calm(100 + seed, 6, 40);
        scenario.max_delay_ms = 200;
        scenario.loss = 0.05;
        scenario.partitions = vec![Partition {
            from_ms: 3_000,
            to_ms: 15_000,
            side: vec![true, true, true, false, false, false],
        }];
        scenario.stable_from_slot = 15;
        scenario.liveness_bound_slots = 12 + 12;
        let report = run(&scenario);
        assert_clean(&report);
        let after = report
            .slots_to_finality_after_stable
            .expect("finality resumed");
        figures.push(after);
        assert!(
            report.stats.reorgs > 0,
            "one side's branch must be abandoned"
        );
        assert!(report.min_finalized_height > 10);
    }
    eprintln!("slots from heal to finality on every node: {figures:?}");
}

/// Joins, stake changes and leaves enter the validator set at epoch boundaries (after a
/// one-epoch lag and within the churn limit), end to end through blocks.
#[test]
fn staking_operations_change_the_validator_set() {
    let mut scenario = Scenario::calm(7, 5, 40);
    scenario.epoch_slots = 4;
    scenario.observers = 1;
    scenario.staking = vec![
        StakingEvent {
            slot: 2,
            node: 5,
            change: StakingChange::Join(40),
        },
        StakingEvent {
            slot: 3,
            node: 1,
            change: StakingChange::SetStake(150),
        },
        StakingEvent {
            slot: 4,
            node: 2,
            change: StakingChange::Leave,
        },
    ];
    let report = run(&scenario);
    assert_clean(&report);
    assert_eq!(report.stats.staking_ops_finalized, 3);
    let stake_of = |node: usize| {
        let address = report.node_addresses[node];
        report
            .final_validators
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, stake)| *stake)
    };
    assert_eq!(stake_of(5), Some(40), "the joiner is a validator");
    assert_eq!(stake_of(1), Some(150), "the stake change took effect");
    assert_eq!(stake_of(2), None, "the leaver is gone");
    assert_eq!(stake_of(0), Some(100));
}

/// A Byzantine validator (under 1/3 of stake) that does every kind of harm is caught: every
/// equivocation an honest node sees ends with the offender slashed in a finalized block, and
/// the chain stays safe and live.
#[test]
fn equivocators_are_slashed() {
    for seed in 0..5 {
        let mut scenario = Scenario::calm(200 + seed, 7, 30);
        scenario.stakes = vec![100, 100, 100, 100, 100, 100, 90];
        scenario.byzantine[6] = Some(ByzantineBehaviour::aggressive());
        scenario.max_extra_slots = 20;
        let report = run(&scenario);
        assert_clean(&report);
        assert!(report.stats.equivocations_observed > 0);
        assert_eq!(report.stats.offenders_slashed, 1);
        assert!(report.stats.rejected > 0, "garbage was sent and refused");
        let byzantine = report.node_addresses[6];
        assert!(
            report.final_validators.iter().all(|(a, _)| *a != byzantine),
            "ejected"
        );
    }
}

/// Crashes right after persisting the slashing-protection record and before sending, then
/// restarts from the persisted record and finalized checkpoint: never a double signature (the
/// checker flags any slashing of an honest validator), and the chain goes on.
#[test]
fn crash_restart_never_double_signs() {
    for seed in 0..5 {
        let mut scenario = Scenario::calm(300 + seed, 5, 40);
        scenario.crashes = (0..5)
            .map(|node| Crash {
                node,
                at_ms: 2_000 + 2_700 * node as u64,
                restart_ms: 3_500 + 2_700 * node as u64,
                after_persist: true,
            })
            .collect();
        scenario.stable_from_slot = 18;
        scenario.liveness_bound_slots = 10;
        let report = run(&scenario);
        assert_clean(&report);
        assert!(report.stats.crashes_after_persist >= 3);
        assert_eq!(report.stats.restarts, 5);
    }
}

/// The bound, shown from the unsafe side: a validator with 34% of stake runs its key on two
/// machines, one in each half of a network split between two honest validators of 33% each.
/// Each half then has 67% > 2/3 and finalizes its own branch: two conflicting finalized blocks.
/// The double votes make the offender identifiable (accountable safety).
#[test]
fn one_third_byzantine_stake_can_break_safety() {
    let report = run(&split_brain_scenario([33, 33, 34]));
    assert!(
        report.violations.iter().any(|v| v.contains("SAFETY")),
        "expected conflicting finalized blocks: {:#?}",
        report.violations
    );
    assert!(
        report.stats.equivocations_observed > 0,
        "the double votes were seen after healing"
    );
}

/// The same attack with 32% of stake: neither half reaches 2/3, nothing conflicting is ever
/// finalized, and finality resumes once the network heals.
#[test]
fn under_one_third_byzantine_stake_the_same_attack_fails() {
    let report = run(&split_brain_scenario([34, 34, 32]));
    assert_clean(&report);
    assert!(report.min_finalized_height > 0);
}

fn split_brain_scenario(stakes: [u64; 3]) -> Scenario {
    let mut scenario = Scenario::calm(400, 3, 40);
    scenario.stakes = stakes.to_vec();
    scenario.byzantine[2] = Some(ByzantineBehaviour::default());
    scenario.twins = vec![2];
    // Nodes: 0 and 1 honest, 2 the Byzantine key, 3 its copy.
    scenario.partitions = vec![Partition {
        from_ms: 500,
        to_ms: 20_000,
        side: vec![true, false, true, false],
    }];
    scenario.stable_from_slot = 21;
    scenario.liveness_bound_slots = 15;
    scenario.max_extra_slots = 20;
    scenario
}
