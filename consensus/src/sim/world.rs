//! The simulated world: nodes running engines, a clock, a lossy network, an adversary, and
//! the checkers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use alloy_primitives::map::{B256Map, B256Set, HashMap};
use std::rc::Rc;

use alloy_primitives::{Address, B256, keccak256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scenario::{ByzantineBehaviour, Scenario, StakingChange};
use crate::config::{ConsensusConfig, Genesis, GenesisValidator, TrustedCheckpoint};
use crate::crypto::{SignatureCache, ValidatorKey};
use crate::engine::{Action, ConsensusEngine, Event};
use crate::protection::SlashingProtectionRecord;
use crate::types::{
    BlockSummary, Checkpoint, Evidence, Message, SignedProposal, SignedStakingOp, SignedVote,
    StakingOp, StakingOpKind, Vote,
};

/// Counters of what a run injected and observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Message hops sent (including relays and block-sync responses).
    pub hops_sent: u64,
    /// Hops lost to random loss.
    pub hops_lost: u64,
    /// Hops dropped by a partition.
    pub hops_partitioned: u64,
    /// Hops delivered twice.
    pub hops_duplicated: u64,
    /// Blocks built by honest engines.
    pub blocks_built: u64,
    /// Double proposals the adversary sent.
    pub double_proposals: u64,
    /// Double votes the adversary sent.
    pub double_votes: u64,
    /// Surround votes the adversary sent.
    pub surround_votes: u64,
    /// Votes for random (often conflicting) blocks the adversary sent.
    pub random_votes: u64,
    /// Blocks withheld (never sent or sent late).
    pub withheld_blocks: u64,
    /// Blocks with an invalid execution the adversary proposed.
    pub invalid_blocks: u64,
    /// Garbage messages the adversary sent.
    pub garbage_sent: u64,
    /// Messages an engine rejected (malformed, forged, ineligible, ...).
    pub rejected: u64,
    /// Equivocations the adversary sent (pairs of conflicting signed statements).
    pub equivocations_sent: u64,
    /// Equivocations whose two halves reached one honest node (so they could be detected).
    pub equivocations_observed: u64,
    /// Validators slashed in finalized blocks.
    pub offenders_slashed: u64,
    /// Reorgs of honest nodes.
    pub reorgs: u64,
    /// Deepest reorg (blocks reverted).
    pub max_reorg_depth: u64,
    /// Crashes.
    pub crashes: u64,
    /// Crashes right between persisting the protection record and sending.
    pub crashes_after_persist: u64,
    /// Restarts.
    pub restarts: u64,
    /// Staking operations included in finalized blocks.
    pub staking_ops_finalized: u64,
    /// Block-sync requests.
    pub block_requests: u64,
    /// Vote-sync requests.
    pub vote_requests: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// The scenario's seed.
    pub seed: u64,
    /// Every broken property, with enough detail to debug the replay.
    pub violations: Vec<String>,
    /// Lowest finalized height over honest nodes at the end.
    pub min_finalized_height: u64,
    /// Highest finalized height at the end.
    pub max_finalized_height: u64,
    /// Slots of the run (including extra slots).
    pub slots_run: u64,
    /// For each finalized height, slots between its block's slot and its first finalization
    /// (by any honest node).
    pub finality_lags: Vec<u64>,
    /// Slots from `stable_from_slot` until every honest node finalized past the level of then.
    pub slots_to_finality_after_stable: Option<u64>,
    /// Counters.
    pub stats: SimStats,
    /// Each node's validator address.
    pub node_addresses: Vec<Address>,
    /// The validator set (address, stake) of the current epoch in the finalized state of the
    /// honest node that finalized the most.
    pub final_validators: Vec<(Address, u64)>,
}

#[derive(Debug)]
enum SimEvent {
    Deliver {
        to: usize,
        from: usize,
        bytes: Rc<Vec<u8>>,
        hash: B256,
        relay: bool,
    },
    Request {
        to: usize,
        from: usize,
        hash: B256,
    },
    RequestVotes {
        to: usize,
        from: usize,
        hash: B256,
    },
    RespondVotes {
        to: usize,
        from: usize,
        votes: Vec<SignedVote>,
    },
    Respond {
        to: usize,
        from: usize,
        proposals: Vec<SignedProposal>,
    },
    Tick {
        node: usize,
    },
    Crash {
        node: usize,
        after_persist: bool,
    },
    Restart {
        node: usize,
    },
    Release {
        from: usize,
        bytes: Rc<Vec<u8>>,
    },
    SlotStart {
        slot: u64,
    },
}

struct Node {
    key: ValidatorKey,
    engine: Option<ConsensusEngine>,
    online: bool,
    record: SlashingProtectionRecord,
    checkpoint: Option<TrustedCheckpoint>,
    /// The node's block database (survives crashes): serves block requests.
    store: B256Map<SignedProposal>,
    /// Gossip messages seen by this incarnation.
    seen: B256Set,
    finalized: Checkpoint,
    byzantine: Option<ByzantineBehaviour>,
    skew_ms: i64,
    crash_after_persist: bool,
}

struct Equivocation {
    offender: Address,
    messages: [B256; 2],
    observed: bool,
}

struct World {
    scenario: Scenario,
    rng: ChaCha8Rng,
    config: ConsensusConfig,
    genesis: Genesis,
    cache: SignatureCache,
    now_ms: u64,
    sequence: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, SimEvent>,
    nodes: Vec<Node>,
    /// Every block built in the run, and whether its execution is valid.
    registry: B256Map<(BlockSummary, bool)>,
    by_height: BTreeMap<u64, Vec<B256>>,
    finalized_by_height: BTreeMap<u64, (B256, usize)>,
    staking_pool: Vec<SignedStakingOp>,
    staking_nonces: HashMap<usize, u64>,
    equivocations: Vec<Equivocation>,
    equivocation_index: B256Map<usize>,
    slashed: BTreeSet<Address>,
    recent_messages: Vec<Rc<Vec<u8>>>,
    /// The first proposal per (proposer, slot) and vote per (validator, height) the adversary
    /// sent, to recognise its equivocations.
    statements: HashMap<(Address, u8, u64), Rc<Vec<u8>>>,
    stable_finalized: Option<u64>,
    report: SimReport,
    /// Print each node's view at every slot (`SIM_TRACE=1`), to debug a replayed seed.
    trace: bool,
}

const SALT_DOMAIN: &[u8] = b"chaind/sim/block";

/// Runs a scenario to completion and checks safety, liveness, slashing and finality of
/// reorgs. Deterministic: the same scenario gives the same report.
pub fn run(scenario: &Scenario) -> SimReport {
    let mut world = World::new(scenario.clone());
    world.run();
    world.report
}

impl World {
    fn new(scenario: Scenario) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let mut config = ConsensusConfig::new(1337, 0, scenario.block_time_ms);
        config.epoch_slots = scenario.epoch_slots;
        config.max_randao_gap_epochs = 4_096;
        let randao_epochs = 1_024;
        let validators = scenario.stakes.len();
        let singles = validators + scenario.observers;
        let mut keys: Vec<ValidatorKey> = (0..singles)
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[..8].copy_from_slice(&scenario.seed.to_be_bytes());
                secret[8..16].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                secret[31] = 1;
                ValidatorKey::from_secret_bytes(secret, randao_epochs).expect("valid key")
            })
            .collect();
        for &original in &scenario.twins {
            keys.push(keys[original].clone());
        }
        let genesis = Genesis {
            hash: keccak256(scenario.seed.to_be_bytes()),
            validators: (0..validators)
                .map(|i| GenesisValidator {
                    address: keys[i].address(),
                    stake: scenario.stakes[i],
                    randao_anchor: keys[i].randao_anchor(0).expect("chain covers epoch 0"),
                })
                .collect(),
        };
        let cache = SignatureCache::new(1 << 18);
        let genesis_checkpoint = Checkpoint {
            hash: genesis.hash,
            height: 0,
        };
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let record = SlashingProtectionRecord::new(key.address());
                let engine = ConsensusEngine::new(
                    config.clone(),
                    &genesis,
                    Some(key.clone()),
                    record.clone(),
                )
                .expect("valid genesis")
                .with_signature_cache(cache.clone());
                let skew = scenario.clock_skew_ms as i64;
                Node {
                    key,
                    engine: Some(engine),
                    online: true,
                    record,
                    checkpoint: None,
                    store: B256Map::default(),
                    seen: B256Set::default(),
                    finalized: genesis_checkpoint,
                    byzantine: if i < singles {
                        scenario.byzantine.get(i).cloned().flatten()
                    } else {
                        let original = scenario.twins[i - singles];
                        Some(scenario.byzantine[original].clone().unwrap_or_default())
                    },
                    skew_ms: if skew > 0 {
                        rng.random_range(-skew..=skew)
                    } else {
                        0
                    },
                    crash_after_persist: false,
                }
            })
            .collect();
        let mut registry = B256Map::default();
        registry.insert(
            genesis.hash,
            (
                BlockSummary {
                    chain_id: config.chain_id,
                    slot: 0,
                    height: 0,
                    parent: B256::ZERO,
                    hash: genesis.hash,
                    proposer: Address::ZERO,
                    randao_reveal: B256::ZERO,
                    evidence: vec![],
                    staking_ops: vec![],
                    justification: vec![],
                },
                true,
            ),
        );
        let report = SimReport {
            seed: scenario.seed,
            ..SimReport::default()
        };
        Self {
            scenario,
            rng,
            config,
            genesis,
            cache,
            now_ms: 0,
            sequence: 0,
            queue: BinaryHeap::new(),
            events: HashMap::default(),
            nodes,
            registry,
            by_height: BTreeMap::new(),
            finalized_by_height: BTreeMap::new(),
            staking_pool: Vec::new(),
            staking_nonces: HashMap::default(),
            equivocations: Vec::new(),
            equivocation_index: B256Map::default(),
            slashed: BTreeSet::new(),
            recent_messages: Vec::new(),
            statements: HashMap::default(),
            stable_finalized: None,
            report,
            trace: std::env::var_os("SIM_TRACE").is_some(),
        }
    }

    fn schedule(&mut self, at_ms: u64, event: SimEvent) {
        self.sequence += 1;
        self.queue.push(Reverse((at_ms, self.sequence)));
        self.events.insert(self.sequence, event);
    }

    fn honest(&self, node: usize) -> bool {
        self.nodes[node].byzantine.is_none()
    }

    fn violation(&mut self, message: &str) {
        if self.report.violations.len() < 20 {
            self.report
                .violations
                .push(format!("t={}ms: {message}", self.now_ms));
        }
    }

    fn run(&mut self) {
        for crash in self.scenario.crashes.clone() {
            self.schedule(
                crash.at_ms,
                SimEvent::Crash {
                    node: crash.node,
                    after_persist: crash.after_persist,
                },
            );
            self.schedule(
                crash.restart_ms.max(crash.at_ms + 1),
                SimEvent::Restart { node: crash.node },
            );
        }
        self.schedule(0, SimEvent::SlotStart { slot: 0 });
        let end_slot = self.scenario.run_slots + self.scenario.max_extra_slots;
        while let Some(Reverse((at_ms, sequence))) = self.queue.pop() {
            let Some(event) = self.events.remove(&sequence) else {
                continue;
            };
            self.now_ms = at_ms;
            if let SimEvent::SlotStart { slot } = event {
                if slot >= self.scenario.run_slots
                    && (slot >= end_slot || self.all_observed_slashed())
                {
                    self.report.slots_run = slot;
                    break;
                }
                self.on_slot_start(slot);
                if self.scenario.stop_when_settled
                    && slot > self.scenario.stable_from_slot + 2
                    && self.report.slots_to_finality_after_stable.is_some()
                    && self.all_observed_slashed()
                {
                    self.report.slots_run = slot;
                    break;
                }
                continue;
            }
            self.dispatch(event);
        }
        self.finish();
    }

    fn all_observed_slashed(&self) -> bool {
        self.equivocations
            .iter()
            .all(|e| !e.observed || self.slashed.contains(&e.offender))
    }

    fn dispatch(&mut self, event: SimEvent) {
        match event {
            SimEvent::Deliver {
                to,
                from,
                bytes,
                hash,
                relay,
            } => self.deliver(to, from, &bytes, hash, relay),
            SimEvent::Request { to, from, hash } => self.serve_request(to, from, hash),
            SimEvent::Respond {
                to,
                from,
                proposals,
            } => {
                if self.nodes[to].online && !self.partitioned(from, to) {
                    for proposal in proposals {
                        let hash = keccak256(Message::Proposal(proposal.clone()).encode_to_vec());
                        self.nodes[to].seen.insert(hash);
                        self.nodes[to]
                            .store
                            .entry(proposal.block.hash)
                            .or_insert_with(|| proposal.clone());
                        self.tick(to);
                        self.feed(to, Event::BlockReceived(proposal));
                    }
                }
            }
            SimEvent::RequestVotes { to, from, hash } => {
                if self.nodes[to].online && !self.partitioned(from, to) && self.honest(to) {
                    let votes = self.nodes[to]
                        .engine
                        .as_ref()
                        .map(|e| e.justification_proof(hash))
                        .unwrap_or_default();
                    if self.trace {
                        eprintln!(
                            "t={} node {to} serves {} votes for {hash} to node {from}",
                            self.now_ms,
                            votes.len()
                        );
                    }
                    if !votes.is_empty() && !self.rng.random_bool(self.scenario.loss) {
                        self.report.stats.hops_sent += 1;
                        let at = self.now_ms + self.delay();
                        self.schedule(
                            at,
                            SimEvent::RespondVotes {
                                to: from,
                                from: to,
                                votes,
                            },
                        );
                    }
                }
            }
            SimEvent::RespondVotes { to, from, votes } => {
                if self.nodes[to].online && !self.partitioned(from, to) {
                    self.tick(to);
                    for vote in votes {
                        self.feed(to, Event::VoteReceived(vote));
                    }
                }
            }
            SimEvent::Tick { node } => self.tick(node),
            SimEvent::Crash {
                node,
                after_persist,
            } => {
                if after_persist {
                    // Crash at the next persist-then-send, or at the restart time anyway.
                    self.nodes[node].crash_after_persist = true;
                } else {
                    self.crash(node);
                }
            }
            SimEvent::Restart { node } => {
                if self.nodes[node].crash_after_persist {
                    // The persist-then-send never came: crash now, restart a moment later.
                    self.crash(node);
                }
                self.restart(node);
            }
            SimEvent::Release { from, bytes } => self.send_to_all(from, &bytes),
            SimEvent::SlotStart { .. } => {}
        }
    }

    fn on_slot_start(&mut self, slot: u64) {
        if self.trace {
            for (i, node) in self.nodes.iter().enumerate() {
                if let Some(engine) = &node.engine {
                    eprintln!(
                        "slot {slot} node {i}: head {}@{} justified {}@{} finalized {} tree {} record {:?}/{:?}",
                        &engine.head().hash.to_string()[..8],
                        engine.head().height,
                        &engine.justified().hash.to_string()[..8],
                        engine.justified().height,
                        engine.finalized().height,
                        engine.tree_size(),
                        node.record.last_source_height,
                        node.record.last_target_height,
                    );
                    eprintln!("    tree: {}", engine.describe_tree());
                } else {
                    eprintln!("slot {slot} node {i}: down");
                }
            }
        }
        let slot_ms = self.scenario.block_time_ms;
        let start = slot * slot_ms;
        self.schedule(start + slot_ms, SimEvent::SlotStart { slot: slot + 1 });
        for node in 0..self.nodes.len() {
            let skew = self.nodes[node].skew_ms;
            for offset in [0, self.config.vote_deadline_ms] {
                let at = (start + offset) as i64 - skew;
                self.schedule(at.max(self.now_ms as i64) as u64, SimEvent::Tick { node });
            }
        }
        for event in self.scenario.staking.clone() {
            if event.slot == slot {
                self.submit_staking(event.node, event.change, slot);
            }
        }
        if slot == self.scenario.stable_from_slot {
            self.stable_finalized = Some(self.max_finalized());
        }
        if slot > self.scenario.stable_from_slot
            && self.report.slots_to_finality_after_stable.is_none()
        {
            let level = self.stable_finalized.unwrap_or(0);
            let all_past = (0..self.nodes.len())
                .filter(|i| self.honest(*i))
                .all(|i| self.nodes[i].finalized.height > level);
            if all_past {
                self.report.slots_to_finality_after_stable =
                    Some(slot - self.scenario.stable_from_slot);
            }
        }
        if slot == self.scenario.stable_from_slot + self.scenario.liveness_bound_slots {
            self.check_liveness();
        }
        for node in 0..self.nodes.len() {
            if let Some(behaviour) = self.nodes[node].byzantine.clone()
                && !behaviour.silent
                && self.rng.random_bool(behaviour.garbage)
            {
                self.send_garbage(node, slot);
            }
        }
    }

    fn max_finalized(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .map(|i| self.nodes[i].finalized.height)
            .max()
            .unwrap_or(0)
    }

    fn check_liveness(&mut self) {
        let level = self.stable_finalized.unwrap_or(0);
        for node in 0..self.nodes.len() {
            if self.honest(node) && self.nodes[node].finalized.height <= level {
                let height = self.nodes[node].finalized.height;
                self.violation(&format!(
                    "liveness: node {node} finalized height {height}, not past {level} within {} slots of stability",
                    self.scenario.liveness_bound_slots
                ));
            }
        }
    }

    fn finish(&mut self) {
        for index in 0..self.equivocations.len() {
            let (observed, offender) = (
                self.equivocations[index].observed,
                self.equivocations[index].offender,
            );
            if observed && !self.slashed.contains(&offender) {
                self.violation(&format!(
                    "equivocation by {offender} was seen by an honest node but never slashed"
                ));
            }
        }
        self.report.stats.equivocations_sent = self.equivocations.len() as u64;
        self.report.stats.equivocations_observed =
            self.equivocations.iter().filter(|e| e.observed).count() as u64;
        self.report.stats.offenders_slashed = self.slashed.len() as u64;
        let honest: Vec<u64> = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .map(|i| self.nodes[i].finalized.height)
            .collect();
        self.report.node_addresses = self.nodes.iter().map(|node| node.key.address()).collect();
        let best = (0..self.nodes.len())
            .filter(|i| self.honest(*i) && self.nodes[*i].engine.is_some())
            .max_by_key(|i| self.nodes[*i].finalized.height);
        if let Some(engine) = best.and_then(|i| self.nodes[i].engine.as_ref()) {
            self.report.final_validators = engine
                .finalized_checkpoint()
                .state
                .current_set()
                .iter()
                .collect();
        }
        self.report.min_finalized_height = honest.iter().copied().min().unwrap_or(0);
        self.report.max_finalized_height = honest.iter().copied().max().unwrap_or(0);
        if self.report.slots_run == 0 {
            self.report.slots_run = self.now_ms / self.scenario.block_time_ms;
        }
    }

    // ----- nodes ------------------------------------------------------------------------

    fn local_time(&self, node: usize) -> u64 {
        (self.now_ms as i64 + self.nodes[node].skew_ms).max(0) as u64
    }

    fn tick(&mut self, node: usize) {
        let now_ms = self.local_time(node);
        self.feed(node, Event::Tick { now_ms });
    }

    /// Hands an event to a node's engine and executes the resulting actions (the node's
    /// answers to `ProposeBlock` and `ValidateBlock` are fed back at once). Returns whether
    /// the engine accepted the first event.
    fn feed(&mut self, node: usize, event: Event) -> bool {
        let mut accepted = true;
        let mut work = VecDeque::from([event]);
        let mut first = true;
        while let Some(event) = work.pop_front() {
            let Some(engine) = self.nodes[node].engine.as_mut() else {
                return false;
            };
            let (actions, verdict) = engine.handle_with_verdict(event);
            if first {
                if self.trace
                    && let Err(error) = &verdict
                {
                    eprintln!("t={} node {node} rejected: {error}", self.now_ms);
                }
                accepted = verdict.is_ok();
                if !accepted {
                    self.report.stats.rejected += 1;
                }
                first = false;
            }
            for action in actions {
                if !self.nodes[node].online {
                    return accepted;
                }
                self.execute(node, action, &mut work);
            }
        }
        accepted
    }

    fn execute(&mut self, node: usize, action: Action, work: &mut VecDeque<Event>) {
        match action {
            Action::ProposeBlock {
                slot,
                parent,
                randao_reveal,
                evidence,
                justification,
            } => {
                if let Some(block) =
                    self.build_block(node, slot, parent, randao_reveal, evidence, justification)
                {
                    work.push_back(Event::BlockBuilt(block));
                }
            }
            Action::ValidateBlock { hash } => {
                let valid = self.nodes[node]
                    .engine
                    .as_ref()
                    .and_then(|engine| engine.proposal(hash))
                    .is_some_and(|proposal| {
                        self.registry
                            .get(&hash)
                            .is_some_and(|(summary, valid)| *valid && *summary == proposal.block)
                    });
                work.push_back(Event::BlockValidated { hash, valid });
            }
            Action::Broadcast(message) => self.broadcast(node, message),
            Action::RequestBlock { hash } => self.request_block(node, hash),
            Action::RequestVotes { target } => self.request_votes(node, target.hash),
            Action::PersistSlashingProtection(record) => {
                let previous = &self.nodes[node].record;
                if !protection_is_monotonic(previous, &record) {
                    self.violation(&format!("node {node}: slashing protection went backwards"));
                }
                self.nodes[node].record = record;
                if self.nodes[node].crash_after_persist {
                    self.report.stats.crashes_after_persist += 1;
                    self.crash(node);
                }
            }
            Action::HeadChanged { .. } => {}
            Action::Reorg {
                from,
                common_ancestor,
                ..
            } => {
                if self.honest(node) {
                    self.report.stats.reorgs += 1;
                    let depth = from.height.saturating_sub(common_ancestor.height);
                    self.report.stats.max_reorg_depth =
                        self.report.stats.max_reorg_depth.max(depth);
                    let finalized = self.nodes[node].finalized;
                    if common_ancestor.height < finalized.height {
                        self.violation(&format!(
                            "node {node} reorged to common ancestor at height {} below its finalized height {}",
                            common_ancestor.height, finalized.height
                        ));
                    }
                }
            }
            Action::Finalized { block } => self.on_finalized(node, block),
            Action::Slash { record, .. } => {
                if self.honest(node) {
                    self.slashed.insert(record.offender);
                    let offender_is_honest = (0..self.nodes.len())
                        .any(|i| self.honest(i) && self.nodes[i].key.address() == record.offender);
                    if offender_is_honest {
                        self.violation(&format!(
                            "honest validator {} was slashed",
                            record.offender
                        ));
                    }
                }
            }
        }
    }

    fn on_finalized(&mut self, node: usize, block: Checkpoint) {
        if !self.honest(node) {
            return;
        }
        let previous = self.nodes[node].finalized;
        if block.height <= previous.height {
            self.violation(&format!(
                "node {node}: finality went back from {} to {}",
                previous.height, block.height
            ));
            return;
        }
        let mut path = Vec::new();
        let mut cursor = block.hash;
        loop {
            let Some((summary, _)) = self.registry.get(&cursor) else {
                self.violation(&format!("node {node} finalized unknown block {cursor}"));
                return;
            };
            if summary.height <= previous.height {
                if cursor != previous.hash {
                    self.violation(&format!(
                        "node {node}: new finalized block {} does not extend its previous finalized {}",
                        block.hash, previous.hash
                    ));
                    return;
                }
                break;
            }
            path.push((
                summary.height,
                cursor,
                summary.slot,
                summary.staking_ops.len(),
            ));
            cursor = summary.parent;
        }
        let slot = self.now_ms / self.scenario.block_time_ms;
        for (height, hash, block_slot, ops) in path.into_iter().rev() {
            match self.finalized_by_height.get(&height) {
                Some((other, other_node)) if *other != hash => {
                    let other_node = *other_node;
                    self.violation(&format!(
                        "SAFETY: conflicting finalized blocks at height {height}: node {other_node} has {other}, node {node} has {hash}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.finalized_by_height.insert(height, (hash, node));
                    self.report
                        .finality_lags
                        .push(slot.saturating_sub(block_slot));
                    self.report.stats.staking_ops_finalized += ops as u64;
                }
            }
        }
        self.nodes[node].finalized = block;
        self.nodes[node].checkpoint = self.nodes[node]
            .engine
            .as_ref()
            .map(ConsensusEngine::finalized_checkpoint);
    }

    fn crash(&mut self, node: usize) {
        if !self.nodes[node].online {
            return;
        }
        self.report.stats.crashes += 1;
        let n = &mut self.nodes[node];
        n.online = false;
        n.engine = None;
        n.seen.clear();
        n.crash_after_persist = false;
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].online {
            return;
        }
        self.report.stats.restarts += 1;
        let n = &self.nodes[node];
        let engine = match &n.checkpoint {
            Some(checkpoint) => ConsensusEngine::from_checkpoint(
                self.config.clone(),
                checkpoint.clone(),
                Some(n.key.clone()),
                n.record.clone(),
            ),
            None => ConsensusEngine::new(
                self.config.clone(),
                &self.genesis,
                Some(n.key.clone()),
                n.record.clone(),
            ),
        };
        match engine {
            Ok(engine) => {
                let n = &mut self.nodes[node];
                n.engine = Some(engine.with_signature_cache(self.cache.clone()));
                n.online = true;
                let floor = n.checkpoint.as_ref().map_or(0, |c| c.block.height);
                self.tick(node);
                // The node reloads the blocks of its database above its checkpoint.
                let mut stored: Vec<SignedProposal> = self.nodes[node]
                    .store
                    .values()
                    .filter(|p| p.block.height > floor)
                    .cloned()
                    .collect();
                stored.sort_by_key(|p| (p.block.height, p.block.hash));
                for proposal in stored {
                    self.feed(node, Event::BlockReceived(proposal));
                }
            }
            Err(error) => self.violation(&format!("node {node} failed to restart: {error}")),
        }
    }

    // ----- the node's side: building, staking ---------------------------------------------

    fn build_block(
        &mut self,
        node: usize,
        slot: u64,
        parent: Checkpoint,
        randao_reveal: B256,
        evidence: Vec<Evidence>,
        justification: Vec<SignedVote>,
    ) -> Option<BlockSummary> {
        let engine = self.nodes[node].engine.as_ref()?;
        let staking_ops = engine.includable_staking_ops(
            parent.hash,
            slot,
            &evidence,
            self.staking_pool.iter().copied(),
        );
        let mut block = BlockSummary {
            chain_id: self.config.chain_id,
            slot,
            height: parent.height + 1,
            parent: parent.hash,
            hash: B256::ZERO,
            proposer: self.nodes[node].key.address(),
            randao_reveal,
            evidence,
            staking_ops,
            justification,
        };
        block.hash = self.block_hash(&block, 0);
        self.register(&block, true);
        self.report.stats.blocks_built += 1;
        Some(block)
    }

    fn block_hash(&self, block: &BlockSummary, salt: u64) -> B256 {
        let mut bytes = SALT_DOMAIN.to_vec();
        bytes.extend_from_slice(block.body_digest().as_slice());
        bytes.extend_from_slice(&block.slot.to_be_bytes());
        bytes.extend_from_slice(block.parent.as_slice());
        bytes.extend_from_slice(block.proposer.as_slice());
        bytes.extend_from_slice(&salt.to_be_bytes());
        keccak256(bytes)
    }

    fn register(&mut self, block: &BlockSummary, valid: bool) {
        self.registry.insert(block.hash, (block.clone(), valid));
        self.by_height
            .entry(block.height)
            .or_default()
            .push(block.hash);
    }

    fn submit_staking(&mut self, node: usize, change: StakingChange, slot: u64) {
        let key = &self.nodes[node].key;
        let kind = match change {
            StakingChange::Join(stake) => StakingOpKind::Join {
                stake,
                randao_anchor: key
                    .randao_anchor(self.config.epoch_of(slot))
                    .expect("chain long enough"),
            },
            StakingChange::SetStake(stake) => StakingOpKind::SetStake { stake },
            StakingChange::Leave => StakingOpKind::Leave,
        };
        let nonce = self.staking_nonces.entry(node).or_insert(0);
        let op = StakingOp {
            chain_id: self.config.chain_id,
            validator: key.address(),
            nonce: *nonce,
            kind,
        };
        *nonce += 1;
        self.staking_pool.push(SignedStakingOp::sign(op, key));
    }

    // ----- network ------------------------------------------------------------------------

    fn partitioned(&self, a: usize, b: usize) -> bool {
        self.scenario
            .partitions
            .iter()
            .any(|p| self.now_ms >= p.from_ms && self.now_ms < p.to_ms && p.side[a] != p.side[b])
    }

    fn delay(&mut self) -> u64 {
        self.rng
            .random_range(self.scenario.min_delay_ms..=self.scenario.max_delay_ms)
    }

    /// One hop: partition, loss, delay, duplication.
    fn send(&mut self, from: usize, to: usize, bytes: Rc<Vec<u8>>, hash: B256, relay: bool) {
        self.report.stats.hops_sent += 1;
        if self.partitioned(from, to) {
            self.report.stats.hops_partitioned += 1;
            return;
        }
        if self.rng.random_bool(self.scenario.loss) {
            self.report.stats.hops_lost += 1;
            return;
        }
        let at = self.now_ms + self.delay();
        self.schedule(
            at,
            SimEvent::Deliver {
                to,
                from,
                bytes: bytes.clone(),
                hash,
                relay,
            },
        );
        if self.rng.random_bool(self.scenario.duplicate) {
            self.report.stats.hops_duplicated += 1;
            let at = self.now_ms + self.delay();
            self.schedule(
                at,
                SimEvent::Deliver {
                    to,
                    from,
                    bytes,
                    hash,
                    relay,
                },
            );
        }
    }

    fn send_to_all(&mut self, from: usize, bytes: &Rc<Vec<u8>>) {
        let hash = keccak256(bytes.as_slice());
        self.nodes[from].seen.insert(hash);
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, bytes.clone(), hash, true);
            }
        }
    }

    fn send_to_some(&mut self, from: usize, bytes: &Rc<Vec<u8>>, targets: &[usize]) {
        let hash = keccak256(bytes.as_slice());
        for &to in targets {
            if to != from {
                self.send(from, to, bytes.clone(), hash, true);
            }
        }
    }

    fn deliver(&mut self, to: usize, from: usize, bytes: &Rc<Vec<u8>>, hash: B256, relay: bool) {
        if !self.nodes[to].online || self.partitioned(from, to) {
            return;
        }
        if !self.nodes[to].seen.insert(hash) {
            return;
        }
        let message = match Message::decode_bytes(bytes) {
            Ok(message) => message,
            Err(_) => {
                self.report.stats.rejected += 1;
                return;
            }
        };
        if let Message::Proposal(proposal) = &message {
            self.nodes[to]
                .store
                .entry(proposal.block.hash)
                .or_insert_with(|| proposal.clone());
        }
        if self.recent_messages.len() < 64 {
            self.recent_messages.push(bytes.clone());
        } else {
            let index = self.rng.random_range(0..64);
            self.recent_messages[index] = bytes.clone();
        }
        self.tick(to);
        let accepted = self.feed(to, Event::from(message));
        if !self.nodes[to].online {
            return;
        }
        if let Some(&index) = self.equivocation_index.get(&hash) {
            let other = self.equivocations[index]
                .messages
                .iter()
                .copied()
                .find(|m| *m != hash);
            if self.honest(to) && other.is_some_and(|other| self.nodes[to].seen.contains(&other)) {
                self.equivocations[index].observed = true;
            }
        }
        // Gossip validation: relay only what the engine accepted.
        if relay && accepted && self.honest(to) {
            let peers = self.nodes.len();
            for _ in 0..self.scenario.fanout.min(peers - 1) {
                let peer = self.rng.random_range(0..peers);
                if peer != to && peer != from {
                    self.send(to, peer, bytes.clone(), hash, true);
                }
            }
        }
    }

    fn request_block(&mut self, node: usize, hash: B256) {
        self.report.stats.block_requests += 1;
        let peers = self.nodes.len();
        for _ in 0..2 {
            let peer = self.rng.random_range(0..peers);
            if peer == node
                || self.partitioned(node, peer)
                || self.rng.random_bool(self.scenario.loss)
            {
                continue;
            }
            let at = self.now_ms + self.delay();
            self.schedule(
                at,
                SimEvent::Request {
                    to: peer,
                    from: node,
                    hash,
                },
            );
        }
    }

    fn request_votes(&mut self, node: usize, hash: B256) {
        self.report.stats.vote_requests += 1;
        let peers = self.nodes.len();
        for _ in 0..2 {
            let peer = self.rng.random_range(0..peers);
            if peer == node
                || self.partitioned(node, peer)
                || self.rng.random_bool(self.scenario.loss)
            {
                continue;
            }
            let at = self.now_ms + self.delay();
            self.schedule(
                at,
                SimEvent::RequestVotes {
                    to: peer,
                    from: node,
                    hash,
                },
            );
        }
    }

    /// Block sync: answer with the block and up to 32 of its ancestors, oldest first.
    fn serve_request(&mut self, to: usize, from: usize, hash: B256) {
        if !self.nodes[to].online || self.partitioned(from, to) {
            return;
        }
        if self.nodes[to].byzantine.as_ref().is_some_and(|b| b.silent) {
            return;
        }
        let mut proposals = Vec::new();
        let mut cursor = hash;
        while let Some(proposal) = self.nodes[to].store.get(&cursor) {
            proposals.push(proposal.clone());
            cursor = proposal.block.parent;
            if proposals.len() >= 32 {
                break;
            }
        }
        if proposals.is_empty() || self.rng.random_bool(self.scenario.loss) {
            return;
        }
        proposals.reverse();
        self.report.stats.hops_sent += 1;
        let at = self.now_ms + self.delay();
        self.schedule(
            at,
            SimEvent::Respond {
                to: from,
                from: to,
                proposals,
            },
        );
    }

    fn broadcast(&mut self, node: usize, message: Message) {
        if let Message::Proposal(proposal) = &message {
            self.nodes[node]
                .store
                .insert(proposal.block.hash, proposal.clone());
        }
        match self.nodes[node].byzantine.clone() {
            None => self.send_to_all(node, &Rc::new(message.encode_to_vec())),
            Some(behaviour) => self.byzantine_broadcast(node, message, &behaviour),
        }
    }

    // ----- the adversary ------------------------------------------------------------------

    fn random_half(&mut self, node: usize) -> (Vec<usize>, Vec<usize>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for peer in 0..self.nodes.len() {
            if peer != node {
                if self.rng.random_bool(0.5) {
                    a.push(peer)
                } else {
                    b.push(peer)
                }
            }
        }
        (a, b)
    }

    fn record_equivocation(
        &mut self,
        offender: Address,
        first: &Rc<Vec<u8>>,
        second: &Rc<Vec<u8>>,
    ) {
        let messages = [keccak256(first.as_slice()), keccak256(second.as_slice())];
        let index = self.equivocations.len();
        self.equivocations.push(Equivocation {
            offender,
            messages,
            observed: false,
        });
        for hash in messages {
            self.equivocation_index.insert(hash, index);
        }
    }

    /// Notes a statement the adversary sends; a second, different one at the same position is
    /// an equivocation to be detected and slashed.
    fn note_statement(&mut self, offender: Address, kind: u8, position: u64, bytes: &Rc<Vec<u8>>) {
        match self.statements.get(&(offender, kind, position)).cloned() {
            None => {
                self.statements
                    .insert((offender, kind, position), bytes.clone());
            }
            Some(first) if first != *bytes => self.record_equivocation(offender, &first, bytes),
            Some(_) => {}
        }
    }

    fn byzantine_broadcast(
        &mut self,
        node: usize,
        message: Message,
        behaviour: &ByzantineBehaviour,
    ) {
        if behaviour.silent {
            return;
        }
        let me = self.nodes[node].key.address();
        match message {
            Message::Proposal(proposal) if proposal.block.proposer == me => {
                let slot = proposal.block.slot;
                let original = Rc::new(Message::Proposal(proposal.clone()).encode_to_vec());
                if self.rng.random_bool(behaviour.invalid_block) {
                    self.report.stats.invalid_blocks += 1;
                    let mut bad = proposal.block;
                    bad.hash = self.block_hash(&bad, 1);
                    self.register(&bad, false);
                    let signed = SignedProposal::sign_unprotected(bad, &self.nodes[node].key);
                    let bytes = Rc::new(Message::Proposal(signed).encode_to_vec());
                    self.note_statement(me, 0, slot, &bytes);
                    self.send_to_all(node, &bytes);
                } else if self.rng.random_bool(behaviour.equivocate) {
                    self.report.stats.double_proposals += 1;
                    let mut twin = proposal.block;
                    twin.hash = self.block_hash(&twin, 2);
                    self.register(&twin, true);
                    let signed = SignedProposal::sign_unprotected(twin, &self.nodes[node].key);
                    self.nodes[node]
                        .store
                        .insert(signed.block.hash, signed.clone());
                    let second = Rc::new(Message::Proposal(signed).encode_to_vec());
                    self.note_statement(me, 0, slot, &original);
                    self.note_statement(me, 0, slot, &second);
                    let (a, b) = self.random_half(node);
                    self.send_to_some(node, &original, &a);
                    self.send_to_some(node, &second, &b);
                } else if self.rng.random_bool(behaviour.withhold) {
                    self.report.stats.withheld_blocks += 1;
                    if self.rng.random_bool(0.5) {
                        self.note_statement(me, 0, slot, &original);
                        let late = self.now_ms
                            + self.rng.random_range(1..=3) * self.scenario.block_time_ms;
                        self.schedule(
                            late,
                            SimEvent::Release {
                                from: node,
                                bytes: original,
                            },
                        );
                    }
                } else {
                    self.note_statement(me, 0, slot, &original);
                    self.send_to_all(node, &original);
                }
            }
            Message::Vote(vote) if vote.vote.validator == me => {
                let original = Rc::new(Message::Vote(vote).encode_to_vec());
                let height = vote.vote.target.height;
                self.note_statement(me, 1, height, &original);
                let key = self.nodes[node].key.clone();
                if self.rng.random_bool(behaviour.double_vote) {
                    self.report.stats.double_votes += 1;
                    let mut other = vote.vote;
                    other.target.hash = self
                        .by_height
                        .get(&height)
                        .and_then(|hashes| {
                            hashes
                                .iter()
                                .find(|h| **h != vote.vote.target.hash)
                                .copied()
                        })
                        .unwrap_or_else(|| keccak256(vote.vote.target.hash));
                    let second = Rc::new(
                        Message::Vote(SignedVote::sign_unprotected(other, &key)).encode_to_vec(),
                    );
                    self.note_statement(me, 1, height, &second);
                    let (a, b) = self.random_half(node);
                    self.send_to_some(node, &original, &a);
                    self.send_to_some(node, &second, &b);
                    return;
                }
                self.send_to_all(node, &original);
                let slot = self.now_ms / self.scenario.block_time_ms;
                if vote.vote.source.height > 0
                    && height < slot
                    && self.rng.random_bool(behaviour.surround_vote)
                {
                    self.report.stats.surround_votes += 1;
                    let outer = Vote {
                        source: Checkpoint {
                            hash: self.genesis.hash,
                            height: 0,
                        },
                        target: Checkpoint {
                            hash: keccak256(vote.vote.target.hash.as_slice()),
                            height: height + 1,
                        },
                        target_slot: slot,
                        ..vote.vote
                    };
                    let second = Rc::new(
                        Message::Vote(SignedVote::sign_unprotected(outer, &key)).encode_to_vec(),
                    );
                    // It surrounds the vote just sent (and may double another at its height).
                    self.record_equivocation(me, &original, &second);
                    self.note_statement(me, 1, height + 1, &second);
                    self.send_to_all(node, &second);
                }
                if self.rng.random_bool(behaviour.random_vote) {
                    self.report.stats.random_votes += 1;
                    let heights: Vec<u64> = self.by_height.keys().copied().collect();
                    if let Some(&height) =
                        heights.get(self.rng.random_range(0..heights.len().max(1)))
                    {
                        let hashes = self.by_height[&height].clone();
                        let target = hashes[self.rng.random_range(0..hashes.len())];
                        let target_slot = self.registry[&target].0.slot;
                        let random = Vote {
                            source: Checkpoint {
                                hash: self.genesis.hash,
                                height: 0,
                            },
                            target: Checkpoint {
                                hash: target,
                                height,
                            },
                            target_slot,
                            ..vote.vote
                        };
                        let bytes = Rc::new(
                            Message::Vote(SignedVote::sign_unprotected(random, &key))
                                .encode_to_vec(),
                        );
                        self.note_statement(me, 1, height, &bytes);
                        self.send_to_all(node, &bytes);
                    }
                }
            }
            other => self.send_to_all(node, &Rc::new(other.encode_to_vec())),
        }
    }

    fn send_garbage(&mut self, node: usize, slot: u64) {
        let key = self.nodes[node].key.clone();
        let peers = self.nodes.len();
        let victim = self.nodes[self.rng.random_range(0..peers)].key.address();
        let chain_id = self.config.chain_id;
        let bytes: Vec<u8> = match self.rng.random_range(0..9) {
            0 => (0..self.rng.random_range(0..200))
                .map(|_| self.rng.random())
                .collect(),
            1 | 2 if !self.recent_messages.is_empty() => {
                let index = self.rng.random_range(0..self.recent_messages.len());
                let mut bytes = self.recent_messages[index].as_ref().clone();
                if bytes.is_empty() {
                    vec![0xc0]
                } else if self.rng.random_bool(0.5) {
                    bytes.truncate(self.rng.random_range(0..bytes.len()));
                    bytes
                } else {
                    let position = self.rng.random_range(0..bytes.len());
                    bytes[position] ^= 1 << self.rng.random_range(0..8);
                    bytes
                }
            }
            3 => {
                // A vote in someone else's name.
                let vote = Vote {
                    chain_id,
                    validator: victim,
                    source: Checkpoint {
                        hash: self.genesis.hash,
                        height: 0,
                    },
                    target: Checkpoint {
                        hash: B256::repeat_byte(7),
                        height: slot.max(1),
                    },
                    target_slot: slot.max(1),
                };
                let mut signed = SignedVote::sign_unprotected(vote, &key);
                signed.vote.validator = victim;
                Message::Vote(signed).encode_to_vec()
            }
            4 | 5 => {
                // A block for the current slot: in someone else's name, or its own but probably
                // not eligible, on a random (unknown) parent.
                let block = BlockSummary {
                    chain_id,
                    slot,
                    height: slot.max(1),
                    parent: B256::from(self.rng.random::<[u8; 32]>()),
                    hash: B256::from(self.rng.random::<[u8; 32]>()),
                    proposer: if self.rng.random_bool(0.5) {
                        victim
                    } else {
                        key.address()
                    },
                    randao_reveal: B256::ZERO,
                    evidence: vec![],
                    staking_ops: vec![],
                    justification: vec![],
                };
                Message::Proposal(SignedProposal::sign_unprotected(block, &key)).encode_to_vec()
            }
            6 => {
                // Forged evidence against an honest validator.
                let vote = |hash: u8| Vote {
                    chain_id,
                    validator: victim,
                    source: Checkpoint {
                        hash: self.genesis.hash,
                        height: 0,
                    },
                    target: Checkpoint {
                        hash: B256::repeat_byte(hash),
                        height: 1,
                    },
                    target_slot: 1,
                };
                let first = SignedVote::sign_unprotected(vote(1), &key);
                let second = SignedVote::sign_unprotected(vote(2), &key);
                Message::Evidence(Evidence::double_vote(first, second)).encode_to_vec()
            }
            7 => {
                // A vote far in the future.
                let vote = Vote {
                    chain_id,
                    validator: key.address(),
                    source: Checkpoint {
                        hash: self.genesis.hash,
                        height: 0,
                    },
                    target: Checkpoint {
                        hash: B256::repeat_byte(9),
                        height: slot + 50,
                    },
                    target_slot: slot + 100,
                };
                Message::Vote(SignedVote::sign_unprotected(vote, &key)).encode_to_vec()
            }
            _ => vec![0xf8, 0xff, 0x01],
        };
        self.report.stats.garbage_sent += 1;
        let target = self.rng.random_range(0..peers);
        let bytes = Rc::new(bytes);
        self.send_to_some(node, &bytes, &[target]);
    }
}

fn protection_is_monotonic(old: &SlashingProtectionRecord, new: &SlashingProtectionRecord) -> bool {
    new.last_proposed_slot >= old.last_proposed_slot
        && new.last_target_height >= old.last_target_height
        && new.last_source_height >= old.last_source_height
}
