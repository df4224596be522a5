//! What a simulation run injects, and how a seed is turned into a random scenario.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a Byzantine validator misbehaves; each probability applies per opportunity (per own
/// proposal, per own vote, per slot for garbage). The default misbehaves in no way of its own
/// (used for twin copies, whose only fault is running one key twice).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ByzantineBehaviour {
    /// Sends two different blocks for its slot to two halves of the network.
    pub equivocate: f64,
    /// Sends a second vote at the same height for another block.
    pub double_vote: f64,
    /// Sends a vote from the genesis source to a higher height (surrounding its own vote).
    pub surround_vote: f64,
    /// Votes for a random known block (often on a conflicting fork).
    pub random_vote: f64,
    /// Withholds its block (never sends it, or releases it one to three slots late).
    pub withhold: f64,
    /// Proposes a block whose execution is invalid.
    pub invalid_block: f64,
    /// Sends malformed or forged messages.
    pub garbage: f64,
    /// Sends nothing at all (and relays nothing).
    pub silent: bool,
}

impl ByzantineBehaviour {
    /// A behaviour that does every kind of harm often.
    pub fn aggressive() -> Self {
        Self {
            equivocate: 0.5,
            double_vote: 0.3,
            surround_vote: 0.2,
            random_vote: 0.3,
            withhold: 0.3,
            invalid_block: 0.2,
            garbage: 0.5,
            silent: false,
        }
    }
}

/// A network partition: from `from_ms` to `to_ms`, nodes with `side[i] == true` cannot
/// exchange messages with the others (messages in flight across the cut are lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Start, in simulated milliseconds.
    pub from_ms: u64,
    /// End (heal), in simulated milliseconds.
    pub to_ms: u64,
    /// Which side each node is on.
    pub side: Vec<bool>,
}

/// A crash of node `node` at `at_ms`, restarted at `restart_ms` from its persisted slashing
/// protection and finalized checkpoint. With `after_persist`, the crash hits right after the
/// node persisted its slashing-protection record and before it sent what it signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// The node.
    pub node: usize,
    /// When it crashes.
    pub at_ms: u64,
    /// When it restarts.
    pub restart_ms: u64,
    /// Whether the crash waits for the next persist-then-send sequence and cuts it.
    pub after_persist: bool,
}

/// A staking operation submitted by a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakingChange {
    /// A non-validator node joins with this stake.
    Join(u64),
    /// A validator changes its stake to this.
    SetStake(u64),
    /// A validator leaves.
    Leave,
}

/// A staking operation to submit at a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakingEvent {
    /// The slot at whose start it is submitted to every node's pool.
    pub slot: u64,
    /// The node that signs it.
    pub node: usize,
    /// What it does.
    pub change: StakingChange,
}

/// Everything a simulation run does; a run is a pure function of its scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The seed of the run's random choices (delays, losses, adversary coins).
    pub seed: u64,
    /// Stake of each genesis validator (nodes `0..stakes.len()`).
    pub stakes: Vec<u64>,
    /// The Byzantine behaviour of each genesis validator, `None` for honest ones.
    pub byzantine: Vec<Option<ByzantineBehaviour>>,
    /// Extra nodes that start without stake (they may join).
    pub observers: usize,
    /// Byzantine genesis validators whose key also runs on a second node: an operator running
    /// one key twice, each copy honest-looking with its own slashing-protection record, so
    /// the pair double-signs. The copies are the last nodes, in this order.
    pub twins: Vec<usize>,
    /// Slot length, simulated milliseconds.
    pub block_time_ms: u64,
    /// Slots per epoch.
    pub epoch_slots: u64,
    /// Smallest one-hop message delay.
    pub min_delay_ms: u64,
    /// Largest one-hop message delay (delays are uniform in between, so messages reorder).
    pub max_delay_ms: u64,
    /// Probability that a message is lost on a hop.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Largest clock offset of a node, either way.
    pub clock_skew_ms: u64,
    /// Relay fanout of gossip (originators send to everyone).
    pub fanout: usize,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Crashes of honest nodes.
    pub crashes: Vec<Crash>,
    /// Staking operations.
    pub staking: Vec<StakingEvent>,
    /// From this slot on nothing is partitioned or crashed; liveness is measured from here.
    pub stable_from_slot: u64,
    /// Finality must advance past its level at `stable_from_slot` within this many slots.
    pub liveness_bound_slots: u64,
    /// Nominal length of the run.
    pub run_slots: u64,
    /// Extra slots allowed for detected equivocations to be slashed in a finalized block.
    pub max_extra_slots: u64,
    /// End the run as soon as everything checkable is settled: past `stable_from_slot` + 2,
    /// every honest node finalized past the level of `stable_from_slot`, and every observed
    /// equivocation is slashed. Keeps the many-seed test cheap; a long run turns it off.
    pub stop_when_settled: bool,
}

impl Scenario {
    /// A fault-free network of `n` equal validators: the normal case.
    pub fn calm(seed: u64, n: usize, run_slots: u64) -> Self {
        Self {
            seed,
            stakes: vec![100; n],
            byzantine: vec![None; n],
            observers: 0,
            twins: Vec::new(),
            block_time_ms: 1_000,
            epoch_slots: 8,
            min_delay_ms: 10,
            max_delay_ms: 100,
            loss: 0.0,
            duplicate: 0.0,
            clock_skew_ms: 0,
            fanout: 6,
            partitions: Vec::new(),
            crashes: Vec::new(),
            staking: Vec::new(),
            stable_from_slot: 1,
            liveness_bound_slots: 6,
            run_slots,
            max_extra_slots: 0,
            stop_when_settled: false,
        }
    }

    /// Number of nodes (validators, observers and twin copies).
    pub fn nodes(&self) -> usize {
        self.stakes.len() + self.observers + self.twins.len()
    }

    /// Byzantine stake over total genesis stake.
    pub fn byzantine_fraction(&self) -> f64 {
        let total: u64 = self.stakes.iter().sum();
        let byzantine: u64 = self
            .stakes
            .iter()
            .zip(&self.byzantine)
            .filter(|(_, b)| b.is_some())
            .map(|(s, _)| *s)
            .sum();
        byzantine as f64 / total as f64
    }

    /// A random scenario: 4 to 20 validators (mostly few, to keep runs cheap) with random
    /// stakes; Byzantine validators holding less than 1/3 of stake with random behaviours;
    /// random delays, loss, duplication and clock skew; during a fault phase, partitions
    /// (healed before `stable_from_slot`) and crashes of honest nodes with restarts;
    /// sometimes staking operations (a join, a stake change, a leave that keeps the Byzantine
    /// share below 1/3).
    pub fn random(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5ce7_a710);
        let n = match rng.random_range(0..10) {
            0..=5 => rng.random_range(4..=6),
            6..=8 => rng.random_range(7..=10),
            _ => rng.random_range(11..=20),
        };
        let stakes: Vec<u64> = (0..n).map(|_| rng.random_range(1..=100)).collect();
        let total: u64 = stakes.iter().sum();
        let mut byzantine = vec![None; n];
        if rng.random_bool(0.75) {
            let mut order: Vec<usize> = (0..n).collect();
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
            let wanted = rng.random_range(1..=n.div_ceil(3));
            let mut byzantine_stake = 0;
            for index in order {
                if byzantine.iter().filter(|b| b.is_some()).count() >= wanted {
                    break;
                }
                // Strictly below one third.
                if 3 * (byzantine_stake + stakes[index]) < total {
                    byzantine_stake += stakes[index];
                    byzantine[index] = Some(random_behaviour(&mut rng));
                }
            }
        }
        let block_time_ms = 1_000;
        let epoch_slots = rng.random_range(3..=6);
        let fault_slots = rng.random_range(6..=14);
        let min_delay_ms = rng.random_range(1..=50);
        let max_delay_ms = min_delay_ms + rng.random_range(0..=350);
        let loss = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.2)
        } else {
            0.0
        };
        let duplicate = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.2)
        } else {
            0.0
        };
        let clock_skew_ms = if rng.random_bool(0.5) {
            rng.random_range(0..=150)
        } else {
            0
        };
        let observers = usize::from(rng.random_bool(0.25));
        let twins: Vec<usize> = (0..n)
            .filter(|i| byzantine[*i].is_some())
            .take(1)
            .filter(|_| rng.random_bool(0.2))
            .collect();
        let nodes = n + observers + twins.len();

        let mut partitions = Vec::new();
        for _ in 0..rng.random_range(0..=2) {
            let from_ms = rng.random_range(0..fault_slots * block_time_ms);
            let to_ms = rng.random_range(from_ms..=fault_slots * block_time_ms);
            let side = (0..nodes).map(|_| rng.random_bool(0.5)).collect();
            partitions.push(Partition {
                from_ms,
                to_ms,
                side,
            });
        }
        let honest: Vec<usize> = (0..n + observers)
            .filter(|i| *i >= n || byzantine[*i].is_none())
            .collect();
        let mut crashes = Vec::new();
        for _ in 0..rng.random_range(0..=2) {
            let node = honest[rng.random_range(0..honest.len())];
            if crashes.iter().any(|c: &Crash| c.node == node) {
                continue;
            }
            let at_ms = rng.random_range(0..fault_slots * block_time_ms);
            let restart_ms = rng.random_range(at_ms..=fault_slots * block_time_ms);
            crashes.push(Crash {
                node,
                at_ms,
                restart_ms,
                after_persist: rng.random_bool(0.5),
            });
        }
        let mut staking = Vec::new();
        if rng.random_bool(0.3) {
            let honest_validators: Vec<usize> = honest.iter().copied().filter(|i| *i < n).collect();
            let node = honest_validators[rng.random_range(0..honest_validators.len())];
            staking.push(StakingEvent {
                slot: rng.random_range(1..=fault_slots),
                node,
                change: StakingChange::SetStake(stakes[node] + rng.random_range(1..=50)),
            });
        }
        if observers > 0 && rng.random_bool(0.7) {
            staking.push(StakingEvent {
                slot: rng.random_range(1..=fault_slots),
                node: n,
                change: StakingChange::Join(rng.random_range(1..=60)),
            });
        }
        if rng.random_bool(0.2) {
            // A leave, only if the Byzantine share stays below a third without the leaver.
            let byzantine_stake: u64 = (0..n)
                .filter(|i| byzantine[*i].is_some())
                .map(|i| stakes[i])
                .sum();
            let candidates: Vec<usize> = (0..n)
                .filter(|i| byzantine[*i].is_none() && 3 * byzantine_stake < total - stakes[*i])
                .collect();
            if !candidates.is_empty() && honest.len() > 2 {
                let node = candidates[rng.random_range(0..candidates.len())];
                staking.push(StakingEvent {
                    slot: rng.random_range(1..=fault_slots),
                    node,
                    change: StakingChange::Leave,
                });
            }
        }
        // After the last partition heals, the branches' heights may differ by up to the
        // partition's length; validators that voted high on the losing branch can only vote
        // again once the winning branch passes that height.
        let longest_partition_slots = partitions
            .iter()
            .map(|p| (p.to_ms - p.from_ms).div_ceil(block_time_ms))
            .max()
            .unwrap_or(0);
        let liveness_bound_slots = 12 + longest_partition_slots;
        Self {
            seed,
            stakes,
            byzantine,
            observers,
            twins,
            block_time_ms,
            epoch_slots,
            min_delay_ms,
            max_delay_ms,
            loss,
            duplicate,
            clock_skew_ms,
            fanout: 4,
            partitions,
            crashes,
            staking,
            stable_from_slot: fault_slots + 1,
            liveness_bound_slots,
            run_slots: fault_slots + 2 + liveness_bound_slots,
            max_extra_slots: 30,
            stop_when_settled: true,
        }
    }
}

fn random_behaviour(rng: &mut ChaCha8Rng) -> ByzantineBehaviour {
    if rng.random_bool(0.15) {
        return ByzantineBehaviour {
            silent: true,
            ..ByzantineBehaviour::aggressive()
        };
    }
    let mut coin = |p: f64| {
        if rng.random_bool(0.6) {
            rng.random_range(0.0..p)
        } else {
            0.0
        }
    };
    ByzantineBehaviour {
        equivocate: coin(0.8),
        double_vote: coin(0.5),
        surround_vote: coin(0.3),
        random_vote: coin(0.5),
        withhold: coin(0.5),
        invalid_block: coin(0.3),
        garbage: coin(0.8),
        silent: false,
    }
}
