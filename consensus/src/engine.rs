//! The consensus engine: a deterministic state machine from [`Event`]s to [`Action`]s.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::map::{AddressMap, B256Map, B256Set, HashMap, HashSet};

use alloy_primitives::{Address, B256};

use crate::config::{ConsensusConfig, Genesis, TrustedCheckpoint};
use crate::crypto::{SignatureCache, ValidatorKey};
use crate::error::ConsensusError;
use crate::protection::SlashingProtectionRecord;
use crate::state::{ChainState, SlashRecord, ValidatorSet};
use crate::types::{
    BlockSummary, Checkpoint, Evidence, Message, SignedHeader, SignedProposal, SignedStakingOp,
    SignedVote, Vote,
};

/// An input to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The wall clock moved to `now_ms` (milliseconds since the Unix epoch). The node sends
    /// one at least at every slot start and at the vote deadline; more are harmless.
    Tick {
        /// The current time.
        now_ms: u64,
    },
    /// A proposal arrived from the network (or from block sync).
    BlockReceived(SignedProposal),
    /// A vote arrived from the network.
    VoteReceived(SignedVote),
    /// Equivocation evidence arrived from the network.
    EvidenceReceived(Evidence),
    /// The node built and executed the block asked for by [`Action::ProposeBlock`]; the
    /// summary carries the node's hash and the staking operations it included.
    BlockBuilt(BlockSummary),
    /// The node re-executed a block asked for by [`Action::ValidateBlock`].
    BlockValidated {
        /// The block.
        hash: B256,
        /// Whether execution succeeded and the header matched (state root, body commitments).
        valid: bool,
    },
}

impl From<Message> for Event {
    fn from(message: Message) -> Self {
        match message {
            Message::Proposal(proposal) => Self::BlockReceived(proposal),
            Message::Vote(vote) => Self::VoteReceived(vote),
            Message::Evidence(evidence) => Self::EvidenceReceived(evidence),
        }
    }
}

/// An output of the engine. The node executes actions in order: in particular
/// [`Action::PersistSlashingProtection`] must be durable before any later `Broadcast`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a handful of actions per event; boxing would only add allocations"
)]
pub enum Action {
    /// Build a block for `slot` on `parent`: take transactions from the pool and staking
    /// operations that [`ConsensusEngine::includable_staking_ops`] accepts, carry
    /// `randao_reveal`, `evidence` and `justification` in the block, execute it, and answer
    /// with [`Event::BlockBuilt`].
    ProposeBlock {
        /// The slot.
        slot: u64,
        /// The block to build on.
        parent: Checkpoint,
        /// The RANDAO reveal to carry.
        randao_reveal: B256,
        /// Evidence to include.
        evidence: Vec<Evidence>,
        /// Votes to carry as the block's `justification`.
        justification: Vec<SignedVote>,
    },
    /// Gossip a message to all peers.
    Broadcast(Message),
    /// Re-execute this received block on its parent's state and answer with
    /// [`Event::BlockValidated`].
    ValidateBlock {
        /// The block.
        hash: B256,
    },
    /// Fetch this block from peers (its descendants are waiting for it) and hand it in as
    /// [`Event::BlockReceived`].
    RequestBlock {
        /// The missing block.
        hash: B256,
    },
    /// Fetch from peers the votes that justify this block in their view
    /// ([`ConsensusEngine::justification_proof`]) and hand them in as [`Event::VoteReceived`]: validators use it as a justified source
    /// but this node missed the votes that justified it (after a restart or a partition).
    RequestVotes {
        /// The block whose votes are missing.
        target: Checkpoint,
    },
    /// Make this record durable before executing the next action.
    PersistSlashingProtection(SlashingProtectionRecord),
    /// The head moved forward to a descendant of the previous head.
    HeadChanged {
        /// The new head.
        head: Checkpoint,
    },
    /// The head moved to another branch: revert state to `common_ancestor` and apply the
    /// branch up to `to`; transactions of reverted blocks go back to the pool. The common
    /// ancestor is never below the finalized block.
    Reorg {
        /// The previous head.
        from: Checkpoint,
        /// The new head.
        to: Checkpoint,
        /// The last block both branches share.
        common_ancestor: Checkpoint,
    },
    /// This block and all its ancestors are final; they will never be reverted.
    Finalized {
        /// The new finalized block.
        block: Checkpoint,
    },
    /// A block that just became final slashed a validator; apply the balance effects.
    Slash {
        /// The block that included the evidence.
        block: B256,
        /// What was slashed and rewarded.
        record: SlashRecord,
    },
}

/// A block in the tree of blocks descending from the finalized block.
#[derive(Debug, Clone)]
struct BlockNode {
    /// `None` for the root when it came from genesis or a checkpoint.
    proposal: Option<SignedProposal>,
    checkpoint: Checkpoint,
    slot: u64,
    parent: B256,
    /// Consensus state after the block.
    state: ChainState,
    /// The validator set of the block's epoch on its chain: the weights of votes for it.
    epoch_set: ValidatorSet,
    slashes: Vec<SlashRecord>,
    children: Vec<B256>,
    justified: bool,
}

/// A block checked by the engine and waiting for the node's re-execution.
#[derive(Debug, Clone)]
struct PendingBlock {
    proposal: SignedProposal,
    state: ChainState,
    epoch_set: ValidatorSet,
    slashes: Vec<SlashRecord>,
}

#[derive(Debug, Clone, Copy)]
struct ProposalRequest {
    slot: u64,
    parent: Checkpoint,
    randao_reveal: B256,
}

/// The proof-of-stake consensus state machine. See the crate docs for the rules.
#[derive(Debug)]
pub struct ConsensusEngine {
    config: ConsensusConfig,
    key: Option<ValidatorKey>,
    protection: SlashingProtectionRecord,
    cache: SignatureCache,

    now_ms: u64,
    current_slot: u64,
    /// No proposal or vote before this slot (set by the first tick; see `sync_slots`).
    signing_from_slot: Option<u64>,

    /// Validated blocks descending from (and including) the finalized root.
    tree: B256Map<BlockNode>,
    root: B256,
    head: B256,
    best_justified: B256,
    /// Justified ancestors of the finalized block, pruned from the tree: validators that have
    /// not seen the latest finality still vote from them, and those votes must count.
    justified_below_root: B256Map<u64>,

    pending: B256Map<PendingBlock>,
    orphans: B256Map<SignedProposal>,
    orphans_by_parent: B256Map<Vec<B256>>,
    invalid: B256Set,

    /// First signed header seen per (proposer, slot), to detect double proposals.
    seen_headers: HashMap<(Address, u64), SignedHeader>,
    /// First vote seen per validator and target height, to detect double and surround votes.
    vote_history: AddressMap<BTreeMap<u64, SignedVote>>,
    /// Counted votes per target block, by validator.
    votes_by_target: B256Map<BTreeMap<Address, SignedVote>>,
    /// Validators that used a block as vote source.
    sources_used: B256Map<BTreeSet<Address>>,
    counted_votes: usize,
    /// Each validator's vote with the highest target (LMD-GHOST's latest message).
    latest_votes: AddressMap<Checkpoint>,

    /// At most one piece of evidence per offender, waiting to be included.
    evidence_pool: BTreeMap<Address, Evidence>,
    own_latest_vote: Option<SignedVote>,
    proposal_request: Option<ProposalRequest>,

    actions: Vec<Action>,
    dirty: bool,
}

impl ConsensusEngine {
    /// An engine starting at genesis. `key` is `None` for a non-validating node; `protection`
    /// is the record the node persisted (a fresh one on first start).
    pub fn new(
        config: ConsensusConfig,
        genesis: &Genesis,
        key: Option<ValidatorKey>,
        protection: SlashingProtectionRecord,
    ) -> Result<Self, ConsensusError> {
        let state = ChainState::genesis(genesis, config.chain_id)?;
        let checkpoint = TrustedCheckpoint {
            block: Checkpoint {
                hash: genesis.hash,
                height: 0,
            },
            slot: 0,
            state,
        };
        Self::from_checkpoint(config, checkpoint, key, protection)
    }

    /// An engine starting from a trusted finalized checkpoint (weak subjectivity, or a restart
    /// from the node's own last finalized block). Blocks not descending from it are refused.
    pub fn from_checkpoint(
        config: ConsensusConfig,
        checkpoint: TrustedCheckpoint,
        key: Option<ValidatorKey>,
        mut protection: SlashingProtectionRecord,
    ) -> Result<Self, ConsensusError> {
        config.validate()?;
        if checkpoint.state.epoch() != config.epoch_of(checkpoint.slot) {
            return Err(ConsensusError::InvalidConfig(
                "checkpoint state epoch mismatch".into(),
            ));
        }
        if let Some(key) = &key {
            protection.bind(key.address())?;
        }
        let root = checkpoint.block.hash;
        let node = BlockNode {
            proposal: None,
            checkpoint: checkpoint.block,
            slot: checkpoint.slot,
            parent: B256::ZERO,
            epoch_set: checkpoint.state.current_set().clone(),
            state: checkpoint.state,
            slashes: Vec::new(),
            children: Vec::new(),
            justified: true,
        };
        let proof = protection.source_proof.clone();
        let mut engine = Self {
            current_slot: checkpoint.slot,
            signing_from_slot: None,
            now_ms: config.slot_start_ms(checkpoint.slot),
            config,
            key,
            protection,
            cache: SignatureCache::default(),
            tree: std::iter::once((root, node)).collect(),
            root,
            head: root,
            best_justified: root,
            justified_below_root: B256Map::default(),
            pending: B256Map::default(),
            orphans: B256Map::default(),
            orphans_by_parent: B256Map::default(),
            invalid: B256Set::default(),
            seen_headers: HashMap::default(),
            vote_history: AddressMap::default(),
            votes_by_target: B256Map::default(),
            sources_used: B256Map::default(),
            counted_votes: 0,
            latest_votes: AddressMap::default(),
            evidence_pool: BTreeMap::new(),
            own_latest_vote: None,
            proposal_request: None,
            actions: Vec::new(),
            dirty: false,
        };
        // The votes that justify our own source watermark: without them a restarted validator
        // could not vote again until someone else re-proved that justification.
        for vote in proof {
            if vote.verify(&engine.cache).is_ok() {
                let _ = engine.accept_vote(vote);
            }
        }
        engine.actions.clear();
        Ok(engine)
    }

    /// Shares a signature cache (with the network layer, or with other engines in one
    /// process) so that each signature is recovered once.
    pub fn with_signature_cache(mut self, cache: SignatureCache) -> Self {
        self.cache = cache;
        self
    }

    /// Handles one event; returns the actions to execute, in order. Rejected input (garbage,
    /// bad signatures, ineligible proposers, ...) yields no actions beyond what it legitimately
    /// caused (e.g. evidence of an equivocation it revealed).
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        self.handle_with_verdict(event).0
    }

    /// Like [`Self::handle`], also telling why an input was rejected (for peer scoring).
    pub fn handle_with_verdict(
        &mut self,
        event: Event,
    ) -> (Vec<Action>, Result<(), ConsensusError>) {
        let verdict = match event {
            Event::Tick { now_ms } => {
                self.on_tick(now_ms);
                Ok(())
            }
            Event::BlockReceived(proposal) => self.on_block(proposal),
            Event::VoteReceived(vote) => self.on_vote(vote),
            Event::EvidenceReceived(evidence) => self.on_evidence(evidence),
            Event::BlockBuilt(block) => self.on_block_built(block),
            Event::BlockValidated { hash, valid } => {
                self.on_block_validated(hash, valid);
                Ok(())
            }
        };
        // Our own vote can justify or finalize blocks, which can move the head and allow the
        // next vote: iterate to a fixed point (each round either votes at a new height or
        // stops, so a few rounds suffice).
        for _ in 0..8 {
            if !self.dirty {
                break;
            }
            self.dirty = false;
            self.refresh();
        }
        (std::mem::take(&mut self.actions), verdict)
    }

    // ----- accessors -------------------------------------------------------------------

    /// The protocol parameters.
    pub fn config(&self) -> &ConsensusConfig {
        &self.config
    }

    /// The local validator's address, if this node validates.
    pub fn validator(&self) -> Option<Address> {
        self.key.as_ref().map(ValidatorKey::address)
    }

    /// The head chosen by fork choice.
    pub fn head(&self) -> Checkpoint {
        self.tree[&self.head].checkpoint
    }

    /// The finalized block.
    pub fn finalized(&self) -> Checkpoint {
        self.tree[&self.root].checkpoint
    }

    /// The highest justified block (the root of fork choice).
    pub fn justified(&self) -> Checkpoint {
        self.tree[&self.best_justified].checkpoint
    }

    /// The current slot by the last tick.
    pub fn current_slot(&self) -> u64 {
        self.current_slot
    }

    /// The slashing-protection record as last emitted.
    pub fn protection_record(&self) -> SlashingProtectionRecord {
        self.protection.clone()
    }

    /// The finalized block with its state: what the node persists to restart from.
    pub fn finalized_checkpoint(&self) -> TrustedCheckpoint {
        let root = &self.tree[&self.root];
        TrustedCheckpoint {
            block: root.checkpoint,
            slot: root.slot,
            state: root.state.clone(),
        }
    }

    /// The consensus state after a known (validated) block.
    pub fn chain_state(&self, hash: B256) -> Option<&ChainState> {
        self.tree.get(&hash).map(|node| &node.state)
    }

    /// The signed proposal of a known block (to serve block requests).
    pub fn proposal(&self, hash: B256) -> Option<&SignedProposal> {
        self.tree
            .get(&hash)
            .and_then(|node| node.proposal.as_ref())
            .or_else(|| self.pending.get(&hash).map(|pending| &pending.proposal))
    }

    /// The votes that justify a block in this engine's view: the votes for it, and, for each
    /// source they use above the finalized block, the votes that justify that source, and so
    /// on down (at most `max_justification_votes`). Serves [`Action::RequestVotes`]; blocks
    /// carry the proof of their proposer's justified block.
    pub fn justification_proof(&self, hash: B256) -> Vec<SignedVote> {
        let limit = self.config.max_justification_votes;
        let mut proof = Vec::new();
        let mut visited = B256Set::default();
        let mut stack = vec![hash];
        while let Some(block) = stack.pop() {
            if block == self.root || !visited.insert(block) {
                continue;
            }
            for vote in self
                .votes_by_target
                .get(&block)
                .into_iter()
                .flat_map(BTreeMap::values)
            {
                if proof.len() >= limit {
                    return proof;
                }
                proof.push(*vote);
                stack.push(vote.vote.source.hash);
            }
        }
        proof
    }

    /// The staking operations, out of `candidates` and in their order, that a block for
    /// `slot` on `parent` carrying `evidence` may include (each checked against the state the
    /// previous ones leave). The node calls this when it builds the block asked for by
    /// [`Action::ProposeBlock`], so that the engine accepts the built block.
    pub fn includable_staking_ops(
        &self,
        parent: B256,
        slot: u64,
        evidence: &[Evidence],
        candidates: impl IntoIterator<Item = SignedStakingOp>,
    ) -> Vec<SignedStakingOp> {
        let Some(node) = self.tree.get(&parent) else {
            return Vec::new();
        };
        let epoch = self.config.epoch_of(slot);
        let mut state = node.state.advanced_to(epoch, &self.config);
        if state
            .apply_evidence(evidence, Address::ZERO, &self.config, &self.cache)
            .is_err()
        {
            return Vec::new();
        }
        let mut included = Vec::new();
        for op in candidates {
            if included.len() >= self.config.max_staking_ops_per_block {
                break;
            }
            let mut trial = state.clone();
            if trial
                .apply_staking_op(&op, epoch, &self.config, &self.cache)
                .is_ok()
            {
                state = trial;
                included.push(op);
            }
        }
        included
    }

    /// Whether the block is validated and in the tree above the finalized block.
    pub fn knows_block(&self, hash: B256) -> bool {
        self.tree.contains_key(&hash)
    }

    /// Whether the block was judged invalid.
    pub fn is_invalid(&self, hash: B256) -> bool {
        self.invalid.contains(&hash)
    }

    /// Evidence waiting to be included, one per offender.
    pub fn pending_evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence_pool.values()
    }

    /// Every block of the tree as `hash@height(slot)[J]:votes`, by height (for the simulator's
    /// trace).
    #[cfg(feature = "sim")]
    pub fn describe_tree(&self) -> String {
        let mut blocks: Vec<_> = self.tree.values().collect();
        blocks.sort_by_key(|node| (node.checkpoint.height, node.checkpoint.hash));
        blocks
            .iter()
            .map(|node| {
                let votes = self
                    .votes_by_target
                    .get(&node.checkpoint.hash)
                    .map_or(0, BTreeMap::len);
                format!(
                    "{}@{}({}){}:{}",
                    &node.checkpoint.hash.to_string()[..8],
                    node.checkpoint.height,
                    node.slot,
                    if node.justified { "J" } else { "" },
                    votes
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Number of blocks in the unfinalized tree (including the finalized root).
    pub fn tree_size(&self) -> usize {
        self.tree.len()
    }

    // ----- time and proposing ---------------------------------------------------------

    fn on_tick(&mut self, now_ms: u64) {
        if now_ms < self.now_ms {
            return; // Time never goes back.
        }
        self.now_ms = now_ms;
        let slot = self.config.slot_at(now_ms);
        if self.signing_from_slot.is_none() {
            let anchor_slot = self.tree[&self.root].slot;
            let stale = slot > anchor_slot.saturating_add(1);
            self.signing_from_slot = Some(if stale {
                slot.saturating_add(self.config.sync_slots)
            } else {
                0
            });
        }
        if slot > self.current_slot {
            self.current_slot = slot;
            self.on_new_slot(slot);
        }
        self.maybe_vote();
    }

    fn on_new_slot(&mut self, slot: u64) {
        self.maybe_propose(slot);
        // Re-send our latest vote: cheap, and it heals fork-choice views after message loss
        // or a partition.
        if let Some(vote) = self.own_latest_vote {
            // Only when it did not vote in the last slot: a fresh vote says the same and more.
            if vote.vote.target.height > self.finalized().height
                && vote.vote.target_slot.saturating_add(1) < slot
            {
                self.actions.push(Action::Broadcast(Message::Vote(vote)));
            }
        }
        // Blocks others vote from or for that this node does not see justified, above its own
        // justified block: it may have missed the votes that justify them (restart,
        // partition), so fetch those votes.
        let root_height = self.finalized().height;
        let justified_height = self.justified().height;
        let mut unjustified_sources: Vec<Checkpoint> = self
            .sources_used
            .keys()
            .chain(self.latest_votes.values().map(|target| &target.hash))
            .filter_map(|hash| self.tree.get(hash))
            .filter(|node| {
                !node.justified
                    && node.checkpoint.height > root_height
                    && node.checkpoint.height > justified_height
            })
            .map(|node| node.checkpoint)
            .collect();
        // Highest first: one answer carries the proof down to the finalized block.
        unjustified_sources.sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.cmp(&b.hash)));
        unjustified_sources.dedup();
        for target in unjustified_sources.into_iter().take(2) {
            self.actions.push(Action::RequestVotes { target });
        }
        // Blocks others vote for that this node does not have: fetch them.
        let mut unknown_targets: Vec<B256> = self
            .latest_votes
            .values()
            .filter(|target| target.height > root_height && !self.is_pending_or_known(target.hash))
            .map(|target| target.hash)
            .collect();
        unknown_targets.sort();
        unknown_targets.dedup();
        for hash in unknown_targets.into_iter().take(4) {
            self.actions.push(Action::RequestBlock { hash });
        }
        // Re-send pending evidence once per epoch: nodes that missed it (restart, partition)
        // would otherwise weigh the equivocators in fork choice.
        if slot.is_multiple_of(self.config.epoch_slots) {
            for evidence in self.evidence_pool.values() {
                self.actions
                    .push(Action::Broadcast(Message::Evidence(*evidence)));
            }
        }
        // Ask again for the missing ancestors of waiting blocks (requests can be lost).
        let missing: BTreeSet<B256> = self
            .orphans
            .values()
            .map(|orphan| orphan.block.parent)
            .filter(|parent| {
                !self.orphans.contains_key(parent) && !self.pending.contains_key(parent)
            })
            .collect();
        for hash in missing.into_iter().take(8) {
            self.actions.push(Action::RequestBlock { hash });
        }
    }

    /// Whether the engine may sign: it has seen the clock, and is past its sync period.
    fn may_sign(&self) -> bool {
        self.signing_from_slot
            .is_some_and(|from| self.current_slot >= from)
    }

    fn is_pending_or_known(&self, hash: B256) -> bool {
        self.tree.contains_key(&hash)
            || self.pending.contains_key(&hash)
            || self.orphans.contains_key(&hash)
            || self.invalid.contains(&hash)
    }

    fn maybe_propose(&mut self, slot: u64) {
        let Some(key) = &self.key else { return };
        let me = key.address();
        if !self.may_sign() || !self.protection.may_propose(slot) {
            return;
        }
        let head = &self.tree[&self.head];
        if head.slot >= slot {
            return;
        }
        let epoch = self.config.epoch_of(slot);
        let pre = head.state.advanced_to(epoch, &self.config);
        if pre.proposer_for(slot) != Some(me) {
            return;
        }
        let Some(randao_reveal) = key.randao_reveal(epoch) else {
            return;
        };
        let mut seen = BTreeSet::new();
        let evidence: Vec<Evidence> = self
            .evidence_pool
            .values()
            .filter(|evidence| pre.can_include(evidence) && seen.insert(evidence.offender()))
            .take(self.config.max_evidence_per_block)
            .copied()
            .collect();
        let justification = self.justification_proof(self.best_justified);
        let parent = head.checkpoint;
        self.proposal_request = Some(ProposalRequest {
            slot,
            parent,
            randao_reveal,
        });
        self.actions.push(Action::ProposeBlock {
            slot,
            parent,
            randao_reveal,
            evidence,
            justification,
        });
    }

    fn on_block_built(&mut self, block: BlockSummary) -> Result<(), ConsensusError> {
        let unexpected = |why: &str| Err(ConsensusError::UnexpectedBuiltBlock(why.to_string()));
        let Some(key) = &self.key else {
            return unexpected("not a validator");
        };
        let Some(request) = self.proposal_request else {
            return unexpected("nothing requested");
        };
        if block.slot != request.slot
            || block.parent != request.parent.hash
            || block.height != request.parent.height + 1
            || block.proposer != key.address()
            || block.randao_reveal != request.randao_reveal
            || block.chain_id != self.config.chain_id
        {
            return unexpected("fields differ from the request");
        }
        let Some(parent) = self.tree.get(&block.parent) else {
            return unexpected("parent no longer above the finalized block");
        };
        let pre = parent
            .state
            .advanced_to(self.config.epoch_of(block.slot), &self.config);
        let (state, slashes) = pre
            .apply_block(&block, &self.config, &self.cache)
            .map_err(|error| ConsensusError::UnexpectedBuiltBlock(error.to_string()))?;
        self.protection.record_proposal(block.slot)?;
        self.proposal_request = None;
        let proposal = SignedProposal::sign_unprotected(block, key);
        self.actions
            .push(Action::PersistSlashingProtection(self.protection.clone()));
        self.actions
            .push(Action::Broadcast(Message::Proposal(proposal.clone())));
        self.seen_headers.insert(
            (proposal.block.proposer, proposal.block.slot),
            proposal.signed_header(),
        );
        let epoch_set = pre.current_set().clone();
        self.insert_block(PendingBlock {
            proposal,
            state,
            epoch_set,
            slashes,
        });
        Ok(())
    }

    // ----- blocks ---------------------------------------------------------------------

    fn is_known_validator(&self, validator: Address) -> bool {
        [&self.tree[&self.root].state, &self.tree[&self.head].state]
            .iter()
            .any(|state| {
                state.current_set().contains(validator) || state.next_set().contains(validator)
            })
    }

    fn on_block(&mut self, proposal: SignedProposal) -> Result<(), ConsensusError> {
        let block = &proposal.block;
        let hash = block.hash;
        if block.chain_id != self.config.chain_id {
            return Err(ConsensusError::WrongChainId {
                got: block.chain_id,
                expected: self.config.chain_id,
            });
        }
        if self.tree.contains_key(&hash)
            || self.pending.contains_key(&hash)
            || self.orphans.contains_key(&hash)
        {
            return Ok(()); // Already have it.
        }
        if self.invalid.contains(&hash) {
            return Err(ConsensusError::InvalidBlock(hash));
        }
        if block.height == 0 || block.height > block.slot {
            return Err(ConsensusError::InconsistentBlock(
                "height must be in 1..=slot".into(),
            ));
        }
        let latest_slot = self
            .current_slot
            .saturating_add(self.config.max_future_slots);
        if block.slot > latest_slot {
            return Err(ConsensusError::FromTheFuture {
                slot: block.slot,
                now: self.current_slot,
            });
        }
        let root = self.tree[&self.root].position();
        if block.slot.saturating_add(self.config.evidence_window) < root.slot {
            return Err(ConsensusError::ConflictsWithFinalized {
                finalized_height: root.height,
            });
        }
        let header = proposal.signed_header();
        header.verify(&self.cache)?;
        // Signed by its proposer: check for a conflicting proposal before anything else, so
        // that equivocations are caught even when the block itself is useless. Only for
        // proposers this node knows: others cannot be slashed on its chains, and remembering
        // their headers would let anyone fill memory. An unknown proposer is not refused
        // outright: it may have joined on a chain this node has not caught up with yet, and
        // its block is checked for eligibility once its parent is known.
        if self.is_known_validator(block.proposer) {
            match self.seen_headers.get(&(block.proposer, block.slot)) {
                Some(first) if first.header != header.header => {
                    let evidence = Evidence::double_proposal(*first, header);
                    self.add_evidence(evidence, true);
                }
                Some(_) => {}
                None => {
                    self.seen_headers
                        .insert((block.proposer, block.slot), header);
                }
            }
        }
        if block.height <= root.height || block.slot <= root.slot {
            return Err(ConsensusError::ConflictsWithFinalized {
                finalized_height: root.height,
            });
        }
        if self.tree.contains_key(&block.parent) {
            return self.check_block(proposal);
        }
        if self.invalid.contains(&block.parent) {
            self.invalid.insert(hash);
            return Err(ConsensusError::InvalidBlock(block.parent));
        }
        if self.orphans.len() >= self.config.max_orphans {
            return Err(ConsensusError::BufferFull("orphan blocks"));
        }
        let parent = block.parent;
        self.orphans_by_parent.entry(parent).or_default().push(hash);
        self.orphans.insert(hash, proposal);
        // Ask for the first missing ancestor (walking up waiting blocks), unless it is already
        // being validated.
        let mut missing = parent;
        while let Some(orphan) = self.orphans.get(&missing) {
            missing = orphan.block.parent;
        }
        if !self.pending.contains_key(&missing) && !self.tree.contains_key(&missing) {
            self.actions.push(Action::RequestBlock { hash: missing });
        }
        Ok(())
    }

    /// Checks a block whose parent is in the tree and asks the node to re-execute it.
    fn check_block(&mut self, proposal: SignedProposal) -> Result<(), ConsensusError> {
        let block = &proposal.block;
        let hash = block.hash;
        let parent = &self.tree[&block.parent];
        let checked = if block.height != parent.checkpoint.height + 1 {
            Err(ConsensusError::InconsistentBlock(
                "height is not parent height + 1".into(),
            ))
        } else if block.slot <= parent.slot {
            Err(ConsensusError::InconsistentBlock(
                "slot not after the parent's".into(),
            ))
        } else {
            let pre = parent
                .state
                .advanced_to(self.config.epoch_of(block.slot), &self.config);
            pre.apply_block(block, &self.config, &self.cache)
                .map(|(state, slashes)| (state, slashes, pre.current_set().clone()))
        };
        match checked {
            Err(error) => {
                // Deterministic given the parent: the block can never become valid.
                self.mark_invalid(hash);
                Err(error)
            }
            Ok((state, slashes, epoch_set)) => {
                if self.pending.len() >= self.config.max_pending_validation {
                    return Err(ConsensusError::BufferFull("blocks awaiting validation"));
                }
                // Only now, with the proposer known eligible, is the carried justification
                // worth checking (each vote costs a signature recovery).
                for vote in proposal.block.justification.clone() {
                    // A bad vote is the proposer's garbage, not a reason to refuse the block.
                    let _ = self.on_vote(vote);
                }
                // Its evidence (already checked) is news for fork choice, which ignores
                // equivocators, and may still need including on other branches.
                for evidence in &proposal.block.evidence {
                    self.add_evidence(*evidence, false);
                }
                self.pending.insert(
                    hash,
                    PendingBlock {
                        proposal,
                        state,
                        epoch_set,
                        slashes,
                    },
                );
                self.actions.push(Action::ValidateBlock { hash });
                Ok(())
            }
        }
    }

    fn mark_invalid(&mut self, hash: B256) {
        if self.invalid.len() > 65_536 {
            // Forgetting costs only a re-check of a known-bad block.
            self.invalid.clear();
        }
        self.invalid.insert(hash);
        // Everything waiting on it is invalid too.
        let mut stack = vec![hash];
        while let Some(parent) = stack.pop() {
            for child in self.orphans_by_parent.remove(&parent).unwrap_or_default() {
                if self.orphans.remove(&child).is_some() {
                    self.invalid.insert(child);
                    stack.push(child);
                }
            }
        }
    }

    fn on_block_validated(&mut self, hash: B256, valid: bool) {
        let Some(pending) = self.pending.remove(&hash) else {
            return;
        };
        if valid {
            self.insert_block(pending);
        } else {
            self.mark_invalid(hash);
        }
    }

    fn insert_block(&mut self, pending: PendingBlock) {
        let block = &pending.proposal.block;
        let hash = block.hash;
        let Some(parent) = self.tree.get_mut(&block.parent) else {
            return; // Its parent was pruned by finality meanwhile: it conflicts with it.
        };
        parent.children.push(hash);
        let node = BlockNode {
            checkpoint: block.checkpoint(),
            slot: block.slot,
            parent: block.parent,
            proposal: Some(pending.proposal),
            state: pending.state,
            epoch_set: pending.epoch_set,
            slashes: pending.slashes,
            children: Vec::new(),
            justified: false,
        };
        self.tree.insert(hash, node);
        self.dirty = true;
        // Blocks that were waiting for this one can now be checked.
        for child in self.orphans_by_parent.remove(&hash).unwrap_or_default() {
            if let Some(orphan) = self.orphans.remove(&child) {
                // Errors here concern the orphan, not the event being handled.
                let _ = self.check_block(orphan);
            }
        }
    }

    // ----- votes and evidence -----------------------------------------------------------

    fn on_vote(&mut self, signed: SignedVote) -> Result<(), ConsensusError> {
        let vote = signed.vote;
        if vote.chain_id != self.config.chain_id {
            return Err(ConsensusError::WrongChainId {
                got: vote.chain_id,
                expected: self.config.chain_id,
            });
        }
        if vote.target.height <= vote.source.height || vote.target.height > vote.target_slot {
            return Err(ConsensusError::InvalidVote("heights out of order".into()));
        }
        let latest_slot = self
            .current_slot
            .saturating_add(self.config.max_future_slots);
        if vote.target_slot > latest_slot {
            return Err(ConsensusError::FromTheFuture {
                slot: vote.target_slot,
                now: self.current_slot,
            });
        }
        let history = self.vote_history.get(&vote.validator);
        if history.and_then(|h| h.get(&vote.target.height)) == Some(&signed) {
            return Ok(()); // Duplicate.
        }
        let finalized_height = self.finalized().height;
        if vote
            .target
            .height
            .saturating_add(self.config.evidence_window)
            < finalized_height
        {
            return Err(ConsensusError::ConflictsWithFinalized { finalized_height });
        }
        if !self.is_known_validator(vote.validator) {
            return Err(ConsensusError::NotAValidator(vote.validator));
        }
        signed.verify(&self.cache)?;
        self.accept_vote(signed)
    }

    /// Records a vote with a valid signature: equivocation checks, then counting.
    fn accept_vote(&mut self, signed: SignedVote) -> Result<(), ConsensusError> {
        let vote = signed.vote;
        let history = self.vote_history.entry(vote.validator).or_default();
        let mut evidence = None;
        let mut is_double = false;
        if let Some(first) = history.get(&vote.target.height) {
            evidence = Some(Evidence::double_vote(*first, signed));
            is_double = true;
        } else {
            for earlier in history.values() {
                let e = &earlier.vote;
                if e.source.height < vote.source.height && vote.target.height < e.target.height {
                    evidence = Some(Evidence::SurroundVote {
                        outer: *earlier,
                        inner: signed,
                    });
                    break;
                }
                if vote.source.height < e.source.height && e.target.height < vote.target.height {
                    evidence = Some(Evidence::SurroundVote {
                        outer: signed,
                        inner: *earlier,
                    });
                    break;
                }
            }
            history.insert(vote.target.height, signed);
        }
        if let Some(evidence) = evidence {
            self.add_evidence(evidence, true);
        }
        // Both halves of a double vote count toward justification (each is a signed statement
        // of its target; counting only the first seen would let an equivocator give different
        // nodes different views of what is justified). Fork choice ignores equivocators.
        if vote.target.height <= self.finalized().height {
            return Ok(());
        }
        if self.counted_votes >= self.config.max_pending_votes {
            return Err(ConsensusError::BufferFull("votes"));
        }
        if self
            .votes_by_target
            .entry(vote.target.hash)
            .or_default()
            .insert(vote.validator, signed)
            .is_none()
        {
            self.counted_votes += 1;
        }
        self.sources_used
            .entry(vote.source.hash)
            .or_default()
            .insert(vote.validator);
        if !is_double {
            let latest = self
                .latest_votes
                .entry(vote.validator)
                .or_insert(vote.target);
            if vote.target.height > latest.height {
                *latest = vote.target;
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn on_evidence(&mut self, evidence: Evidence) -> Result<(), ConsensusError> {
        let offender = evidence.verify(self.config.chain_id, &self.cache)?;
        if !self.is_known_validator(offender) {
            return Err(ConsensusError::NotAValidator(offender));
        }
        self.add_evidence(evidence, false);
        Ok(())
    }

    fn add_evidence(&mut self, evidence: Evidence, broadcast: bool) {
        let offender = evidence.offender();
        if self.evidence_pool.contains_key(&offender)
            || self.tree[&self.root].state.is_slashed(offender)
        {
            return;
        }
        self.evidence_pool.insert(offender, evidence);
        if broadcast {
            self.actions
                .push(Action::Broadcast(Message::Evidence(evidence)));
        }
    }

    // ----- justification, finality, fork choice, voting ---------------------------------

    fn is_ancestor(&self, ancestor: B256, mut descendant: B256) -> bool {
        let Some(target) = self.tree.get(&ancestor) else {
            return false;
        };
        loop {
            if descendant == ancestor {
                return true;
            }
            match self.tree.get(&descendant) {
                Some(node) if node.checkpoint.height > target.checkpoint.height => {
                    descendant = node.parent;
                }
                _ => return false,
            }
        }
    }

    fn common_ancestor(&self, mut a: B256, mut b: B256) -> Checkpoint {
        while a != b {
            let (Some(node_a), Some(node_b)) = (self.tree.get(&a), self.tree.get(&b)) else {
                break;
            };
            if node_a.checkpoint.height >= node_b.checkpoint.height {
                a = node_a.parent;
            } else {
                b = node_b.parent;
            }
        }
        self.tree
            .get(&a)
            .map_or_else(|| self.finalized(), |node| node.checkpoint)
    }

    /// Marks blocks justified until nothing changes:
    /// - votes of more than 2/3 of the block's epoch stake target it with sources that are
    ///   justified ancestors; or
    /// - more than 1/3 of its epoch stake used it as a vote source. Honest validators only use
    ///   justified sources, and with less than 1/3 Byzantine stake such a group contains an
    ///   honest validator, so the first rule held in an honest view. This lets a node that
    ///   missed the votes (restart, partition) catch up from the votes that follow.
    fn update_justification(&mut self) {
        loop {
            let mut newly = Vec::new();
            for (hash, node) in &self.tree {
                if node.justified {
                    continue;
                }
                let mut stake = 0u128;
                for (validator, signed) in self.votes_by_target.get(hash).into_iter().flatten() {
                    let counted = &signed.vote;
                    if counted.target.height != node.checkpoint.height {
                        continue;
                    }
                    let source_ok = self.tree.get(&counted.source.hash).is_some_and(|source| {
                        source.justified
                            && source.checkpoint.height == counted.source.height
                            && self.is_ancestor(counted.source.hash, *hash)
                    }) || self.justified_below_root.get(&counted.source.hash)
                        == Some(&counted.source.height);
                    if source_ok {
                        stake += u128::from(node.epoch_set.stake(*validator));
                    }
                }
                let used_as_source: u128 = self
                    .sources_used
                    .get(hash)
                    .into_iter()
                    .flatten()
                    .map(|validator| u128::from(node.epoch_set.stake(*validator)))
                    .sum();
                if node.epoch_set.is_supermajority(stake)
                    || node.epoch_set.exceeds_one_third(used_as_source)
                {
                    newly.push(*hash);
                }
            }
            if newly.is_empty() {
                break;
            }
            for hash in newly {
                if let Some(node) = self.tree.get_mut(&hash) {
                    node.justified = true;
                }
            }
        }
        self.best_justified = self
            .tree
            .iter()
            .filter(|(_, node)| node.justified)
            .max_by(|(ha, a), (hb, b)| {
                a.checkpoint
                    .height
                    .cmp(&b.checkpoint.height)
                    .then_with(|| hb.cmp(ha))
            })
            .map_or(self.root, |(hash, _)| *hash);
    }

    /// The highest justified block `B` with a child `C` such that more than 2/3 of `C`'s epoch
    /// stake voted (source `B`, target `C`): the two-chain finality rule.
    fn finality_candidate(&self) -> Option<B256> {
        let root_height = self.finalized().height;
        // Highest first, ties to the lowest hash (only conflicting justified blocks can tie,
        // which needs a third of the stake to double-vote; the choice must still be the same on
        // every node).
        let mut best: Option<(u64, std::cmp::Reverse<B256>)> = None;
        for (hash, node) in &self.tree {
            if !node.justified || node.checkpoint.height <= root_height {
                continue;
            }
            let key = (node.checkpoint.height, std::cmp::Reverse(*hash));
            if best.is_some_and(|best| best >= key) {
                continue;
            }
            let finalized = node.children.iter().any(|child_hash| {
                let child = &self.tree[child_hash];
                let stake: u128 = self
                    .votes_by_target
                    .get(child_hash)
                    .into_iter()
                    .flatten()
                    .filter(|(_, signed)| {
                        let counted = &signed.vote;
                        counted.source.hash == *hash
                            && counted.source.height == node.checkpoint.height
                            && counted.target.height == child.checkpoint.height
                    })
                    .map(|(validator, _)| u128::from(child.epoch_set.stake(*validator)))
                    .sum();
                child.epoch_set.is_supermajority(stake)
            });
            if finalized {
                best = Some(key);
            }
        }
        best.map(|(_, std::cmp::Reverse(hash))| hash)
    }

    /// Moves the root to `hash` and prunes everything that does not descend from it. Returns
    /// the `Slash` and `Finalized` actions, to be emitted after the head change.
    fn finalize(&mut self, hash: B256) -> Vec<Action> {
        let mut path = Vec::new();
        let mut cursor = hash;
        while cursor != self.root {
            let node = &self.tree[&cursor];
            path.push(cursor);
            cursor = node.parent;
        }
        let mut actions = Vec::new();
        for block in path.iter().rev() {
            for record in &self.tree[block].slashes {
                actions.push(Action::Slash {
                    block: *block,
                    record: *record,
                });
            }
        }
        // Remember the justified blocks that leave the tree on the way to the new root.
        let window = self.config.evidence_window;
        for block in path.iter().skip(1).chain(std::iter::once(&self.root)) {
            let node = &self.tree[block];
            if node.justified {
                self.justified_below_root
                    .insert(*block, node.checkpoint.height);
            }
        }
        let new_root_height = self.tree[&hash].checkpoint.height;
        self.justified_below_root
            .retain(|_, height| height.saturating_add(window) >= new_root_height);
        // Keep only the new root and its descendants.
        let mut keep: HashSet<B256> = std::iter::once(hash).collect();
        let mut stack = vec![hash];
        while let Some(current) = stack.pop() {
            for child in &self.tree[&current].children {
                keep.insert(*child);
                stack.push(*child);
            }
        }
        self.tree.retain(|block, _| keep.contains(block));
        self.root = hash;
        let root = self.tree[&hash].position();
        actions.push(Action::Finalized {
            block: root.checkpoint(),
        });

        let root_state = &self.tree[&hash].state;
        self.evidence_pool
            .retain(|offender, _| !root_state.is_slashed(*offender));
        self.votes_by_target.retain(|target, votes| {
            keep.contains(target)
                || votes
                    .values()
                    .next()
                    .is_some_and(|v| v.vote.target.height > root.height)
        });
        self.counted_votes = self.votes_by_target.values().map(BTreeMap::len).sum();
        self.sources_used.retain(|source, _| keep.contains(source));
        self.latest_votes
            .retain(|_, target| target.height >= root.height);
        for history in self.vote_history.values_mut() {
            history.retain(|height, _| height.saturating_add(window) >= root.height);
        }
        self.vote_history.retain(|_, history| !history.is_empty());
        self.seen_headers
            .retain(|(_, slot), _| slot.saturating_add(window) >= root.slot);
        self.pending
            .retain(|_, pending| pending.proposal.block.height > root.height);
        let stale: Vec<B256> = self
            .orphans
            .iter()
            .filter(|(_, orphan)| orphan.block.height <= root.height)
            .map(|(hash, _)| *hash)
            .collect();
        for orphan in stale {
            self.orphans.remove(&orphan);
        }
        self.orphans_by_parent.retain(|_, children| {
            children.retain(|child| self.orphans.contains_key(child));
            !children.is_empty()
        });
        actions
    }

    /// LMD-GHOST from the highest justified block: each validator's latest vote weighs on its
    /// target and the target's ancestors; descend to the heaviest child, ties to the lowest
    /// hash.
    fn compute_head(&self) -> B256 {
        let start = self.best_justified;
        let start_height = self.tree[&start].checkpoint.height;
        let root_state = &self.tree[&self.root].state;
        let mut weights: B256Map<u128> = B256Map::default();
        for (validator, target) in &self.latest_votes {
            if self.evidence_pool.contains_key(validator) || root_state.is_slashed(*validator) {
                continue; // An equivocator's latest message is not one message.
            }
            let Some(node) = self.tree.get(&target.hash) else {
                continue;
            };
            if node.checkpoint.height != target.height || !self.is_ancestor(start, target.hash) {
                continue;
            }
            let stake = u128::from(node.epoch_set.stake(*validator));
            if stake == 0 {
                continue;
            }
            let mut cursor = target.hash;
            loop {
                *weights.entry(cursor).or_default() += stake;
                let node = &self.tree[&cursor];
                if node.checkpoint.height <= start_height {
                    break;
                }
                cursor = node.parent;
            }
        }
        let mut head = start;
        loop {
            let children = &self.tree[&head].children;
            let best = children.iter().max_by(|a, b| {
                let weight_a = weights.get(*a).copied().unwrap_or(0);
                let weight_b = weights.get(*b).copied().unwrap_or(0);
                weight_a.cmp(&weight_b).then_with(|| b.cmp(a))
            });
            match best {
                Some(child) => head = *child,
                None => return head,
            }
        }
    }

    fn refresh(&mut self) {
        self.update_justification();
        let old_head = self.tree[&self.head].checkpoint;
        let mut reorg_base = None;
        let mut finality_actions = Vec::new();
        if let Some(finalized) = self.finality_candidate() {
            if !self.is_ancestor(finalized, self.head) {
                // The head is on a branch the new finalized block abandons: it will be
                // pruned, so take the common ancestor now.
                reorg_base = Some(self.common_ancestor(finalized, self.head));
            }
            finality_actions = self.finalize(finalized);
            self.update_justification();
        }
        let new_head = self.compute_head();
        if new_head != old_head.hash {
            let to = self.tree[&new_head].checkpoint;
            let common_ancestor = match reorg_base {
                Some(base) => Some(base),
                None if self.is_ancestor(old_head.hash, new_head) => None,
                None => Some(self.common_ancestor(old_head.hash, new_head)),
            };
            self.actions.push(match common_ancestor {
                Some(common_ancestor) => Action::Reorg {
                    from: old_head,
                    to,
                    common_ancestor,
                },
                None => Action::HeadChanged { head: to },
            });
            self.head = new_head;
        }
        self.actions.extend(finality_actions);
        self.maybe_vote();
    }

    /// Votes for the head if the rules allow: the head is a new height above the justified
    /// source, not from the future, this validator has stake in its epoch, and the
    /// slashing-protection watermarks permit it. A head of the current slot gets its vote only
    /// from the vote deadline on: by then the parent's votes (which make the parent the source,
    /// so that this vote finalizes it) and any competing block of the slot have arrived, and
    /// honest validators pick the same head instead of whichever block reached them first.
    fn maybe_vote(&mut self) {
        if !self.may_sign() {
            return;
        }
        let Some(key) = &self.key else { return };
        let me = key.address();
        let head = &self.tree[&self.head];
        let source = &self.tree[&self.best_justified];
        if head.checkpoint.hash == source.checkpoint.hash || head.slot > self.current_slot {
            return;
        }
        let vote = Vote {
            chain_id: self.config.chain_id,
            validator: me,
            source: source.checkpoint,
            target: head.checkpoint,
            target_slot: head.slot,
        };
        if !self.protection.may_vote(&vote) || !head.epoch_set.contains(me) {
            return;
        }
        let deadline = self.config.slot_start_ms(self.current_slot) + self.config.vote_deadline_ms;
        if head.slot == self.current_slot && self.now_ms < deadline {
            return;
        }
        let source_changed = self.protection.last_source_height != Some(vote.source.height)
            || self
                .protection
                .source_proof
                .first()
                .map(|v| v.vote.target.hash)
                != Some(vote.source.hash);
        if self.protection.record_vote(&vote).is_err() {
            return;
        }
        if source_changed {
            self.protection.source_proof = self.justification_proof(vote.source.hash);
        }
        let signed = SignedVote::sign_unprotected(vote, key);
        self.actions
            .push(Action::PersistSlashingProtection(self.protection.clone()));
        self.actions.push(Action::Broadcast(Message::Vote(signed)));
        self.own_latest_vote = Some(signed);
        // Our own vote counts like any other (it cannot be an equivocation: the watermarks
        // just allowed it).
        let _ = self.accept_vote(signed);
    }
}

/// Position fields of a block, copied out so the tree can be mutated meanwhile.
#[derive(Debug, Clone, Copy)]
struct Position {
    hash: B256,
    height: u64,
    slot: u64,
}

impl Position {
    fn checkpoint(self) -> Checkpoint {
        Checkpoint {
            hash: self.hash,
            height: self.height,
        }
    }
}

impl BlockNode {
    fn position(&self) -> Position {
        Position {
            hash: self.checkpoint.hash,
            height: self.checkpoint.height,
            slot: self.slot,
        }
    }
}
