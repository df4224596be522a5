//! The block producer of a validator node: it drives the consensus engine
//! ([`chain_consensus::ConsensusEngine`]) with clock ticks, builds and commits the blocks the
//! engine asks for, makes the engine's slashing-protection record durable before anything
//! signed is published, and records finality.
//!
//! This build has no peer-to-peer network, so the producer runs a single-validator chain: the
//! engine's broadcasts and requests go nowhere, and nothing can make it validate a foreign
//! block or reorganize. Other validators can join (staking operations from the node's pool go
//! into the blocks it builds, see [`crate::node::staking`]); their slots stay empty.
//!
//! # Restart
//!
//! On every `Finalized` action the producer writes the engine's finalized checkpoint
//! ([`TrustedCheckpoint`]) to `consensus-checkpoint.json`; on start it builds the engine from
//! it ([`ConsensusEngine::from_checkpoint`]) with the persisted slashing-protection record and
//! hands it the stored blocks above the checkpoint (each block's seal carries the engine's
//! signed proposal, see [`SealPayload`]). A restarted engine listens for
//! [`chain_consensus::ConsensusConfig::sync_slots`] slots (two) before it signs again, so
//! production resumes within about three slots.

use crate::node::{
    Node, ProducedBlock,
    execution::{ExecutedBlock, build_block, next_base_fee},
    now_ms, pool,
};
use alloy_primitives::{B256, Bytes, U256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use chain_consensus::{
    Action, BlockSummary, ChainState, Checkpoint, ConsensusEngine, Event, Evidence, Genesis,
    GenesisValidator, Message, Signature, SignedProposal, SignedStakingOp, SignedVote,
    SlashingProtectionRecord, TrustedCheckpoint, ValidatorKey,
};
use chain_primitives::SealedBlock;
use chain_rpc::IndexedBlock;
use serde::{Serialize, de::DeserializeOwned};
use std::{
    collections::VecDeque,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Length of the validator's RANDAO hash chain, in epochs: 2^20, about a year of 32-slot epochs
/// at 1 s slots (39 days at the smallest block time, 100 ms). It is part of the chain: the
/// genesis commitment is the chain's last element, so changing it would invalidate every
/// reveal. Computing it costs 2^20 hashes (a fraction of a second) when the producer starts.
/// A validator can propose until its chain is used up (the producer refuses to start then).
pub const RANDAO_CHAIN_EPOCHS: u64 = 1 << 20;

/// File, in the data directory, of the validator's slashing-protection record (JSON).
pub const PROTECTION_FILE: &str = "slashing-protection.json";

/// File, in the data directory, of the last finalized consensus checkpoint (JSON).
pub const CHECKPOINT_FILE: &str = "consensus-checkpoint.json";

/// The consensus data a produced block carries in its seal's `payload` (RLP): the body fields
/// of its [`BlockSummary`] and the engine's signature over the proposal. With the header (hash,
/// parent, number) and the seal's slot, proposer and RANDAO reveal, it rebuilds the exact
/// [`SignedProposal`] the engine signed, which is how a restarted engine learns the blocks
/// above its checkpoint. The header hash does not cover the seal; the proposal signature does
/// (it signs the body digest together with the block hash).
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct SealPayload {
    /// Equivocation evidence the block includes.
    pub evidence: Vec<Evidence>,
    /// Staking operations the block includes (from the node's staking pool, those consensus
    /// and the staking rule accept).
    pub staking_ops: Vec<SignedStakingOp>,
    /// Votes justifying the proposer's justified block.
    pub justification: Vec<SignedVote>,
    /// The proposer's consensus signature over the block's proposal header.
    pub proposal_signature: Signature,
}

impl SealPayload {
    /// The RLP encoding.
    pub fn encoded(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.length());
        self.encode(&mut out);
        out.into()
    }

    /// Decodes a payload; trailing bytes are an error.
    pub fn decode_exact(mut bytes: &[u8]) -> alloy_rlp::Result<Self> {
        let payload = Self::decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength);
        }
        Ok(payload)
    }
}

/// The signed proposal a block produced through the consensus engine carries: its
/// [`BlockSummary`] rebuilt from the header and seal, with the signature from the payload.
/// Fails for blocks without a consensus payload (genesis, blocks built outside the engine).
pub fn signed_proposal(block: &SealedBlock, chain_id: u64) -> anyhow::Result<SignedProposal> {
    let seal = &block.block().seal;
    let payload = SealPayload::decode_exact(&seal.payload)
        .map_err(|e| anyhow::anyhow!("the seal carries no consensus payload ({e})"))?;
    anyhow::ensure!(
        seal.randao_reveal.len() == 32,
        "the seal's RANDAO reveal is {} bytes, not 32",
        seal.randao_reveal.len()
    );
    let header = block.header();
    let summary = BlockSummary {
        chain_id,
        slot: seal.slot,
        height: header.number,
        parent: header.parent_hash,
        hash: block.hash(),
        proposer: seal.proposer,
        randao_reveal: B256::from_slice(&seal.randao_reveal),
        evidence: payload.evidence,
        staking_ops: payload.staking_ops,
        justification: payload.justification,
    };
    Ok(SignedProposal {
        block: summary,
        signature: payload.proposal_signature,
    })
}

/// The operations of `offered` that consensus looked at and refused, given what
/// [`ConsensusEngine::includable_staking_ops`] accepted out of them (in their order, stopping
/// once it has `limit`): all the others when it accepted fewer than `limit`, otherwise the
/// others before the last accepted one (those after it were not looked at).
fn refused_by_consensus<'a>(
    offered: &'a [SignedStakingOp],
    accepted: &'a [SignedStakingOp],
    limit: usize,
) -> impl Iterator<Item = SignedStakingOp> + 'a {
    let looked_at = if accepted.len() < limit {
        offered.len()
    } else {
        accepted
            .last()
            .and_then(|last| offered.iter().position(|op| op == last))
            .map_or(0, |position| position + 1)
    };
    offered[..looked_at]
        .iter()
        .filter(move |op| !accepted.contains(op))
        .copied()
}

/// Consensus weighs stake as a `u64`: the genesis stake in gwei (saturating), at least 1.
fn consensus_stake(wei: U256) -> u64 {
    let gwei = wei / U256::from(1_000_000_000u64);
    u64::try_from(gwei).unwrap_or(u64::MAX).max(1)
}

/// Writes `bytes` to `path` so that after a crash the file holds either its old or its new
/// content, complete: write a temporary file, fsync it, rename it over `path`, fsync the
/// directory (which makes the rename durable).
pub fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", temporary.display()))?;
    }
    std::fs::rename(&temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_durably(path, &bytes)
}

/// Reads a JSON file; `None` if it does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| anyhow::anyhow!("{} is corrupt: {error}", path.display()))
}

/// Loads the slashing-protection record. A corrupt file stops the node: resetting it could let
/// the validator sign twice. A missing one is fresh on a new chain; on a chain with blocks
/// (a data directory from before the consensus engine, or a lost file) the record starts at
/// watermarks taken from the stored head, which are at least what this node can have signed
/// for the blocks it committed.
fn load_protection(
    path: &Path,
    signer: &PrivateKeySigner,
    head: &IndexedBlock,
) -> anyhow::Result<SlashingProtectionRecord> {
    let stored = read_json::<SlashingProtectionRecord>(path).map_err(|error| {
        anyhow::anyhow!(
            "{error:#}\nrefusing to start the validator: the slashing-protection record is what \
             keeps it from signing twice, and it is never reset automatically. Restore the file \
             from a backup (or, if this validator never signed on a live network, move it away \
             knowingly)."
        )
    })?;
    if let Some(record) = stored {
        return Ok(record);
    }
    let mut record = SlashingProtectionRecord::new(signer.address());
    let head_number = head.block.number();
    if head_number > 0 {
        tracing::warn!(
            path = %path.display(),
            head = head_number,
            "no slashing-protection record: starting one at the stored head's slot and height"
        );
        record.last_proposed_slot = Some(head.block.block().seal.slot);
        record.last_target_height = Some(head_number);
    }
    Ok(record)
}

/// The block producer of a single-validator node, driving the consensus engine. Created by
/// [`Node::block_producer`]; [`BlockProducer::run`] runs it on the calling thread.
pub struct BlockProducer {
    node: Node,
    engine: ConsensusEngine,
    signer: PrivateKeySigner,
    protection_path: PathBuf,
    checkpoint_path: PathBuf,
    /// The block built for the engine's last `ProposeBlock`, committed once the engine signed
    /// it and its slashing-protection record is durable.
    built: Option<BuiltBlock>,
    /// While the engine is handed the stored blocks on start: it asks to validate them.
    replaying: bool,
}

impl std::fmt::Debug for BlockProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockProducer")
            .field("validator", &self.signer.address())
            .field("head", &self.engine.head())
            .field("finalized", &self.engine.finalized())
            .finish_non_exhaustive()
    }
}

struct BuiltBlock {
    executed: ExecutedBlock,
    started: Instant,
}

impl BlockProducer {
    /// Loads the validator's consensus files from the node's data directory and brings a
    /// consensus engine up to the stored chain (see the module docs).
    pub fn open(node: Node) -> anyhow::Result<Self> {
        let inner = &*node.inner;
        let signer = inner
            .validator
            .clone()
            .context("this node has no validator key")?;
        let config = inner.consensus.clone();
        let chain_id = config.chain_id;
        let [validator] = inner.genesis_validators.as_slice() else {
            anyhow::bail!(
                "the block producer runs single-validator chains (no peer-to-peer network in \
                 this build); the genesis has {} validators",
                inner.genesis_validators.len()
            );
        };
        anyhow::ensure!(
            validator.address == signer.address(),
            "validator key {} is not the genesis validator {}",
            signer.address(),
            validator.address
        );
        let epoch = config.epoch_of(config.slot_at(now_ms()));
        anyhow::ensure!(
            epoch < RANDAO_CHAIN_EPOCHS,
            "the chain is at epoch {epoch}, past the {RANDAO_CHAIN_EPOCHS} epochs a validator's \
             RANDAO hash chain covers (genesis timestamp {} s); start a chain with a recent \
             genesis timestamp",
            config.genesis_time_ms / 1000
        );
        // The files first: they can refuse the start before the RANDAO chain costs anything.
        let head = node.head();
        let protection_path = inner.datadir.join(PROTECTION_FILE);
        let checkpoint_path = inner.datadir.join(CHECKPOINT_FILE);
        let protection = load_protection(&protection_path, &signer, &head)?;
        let stored_checkpoint =
            read_json::<TrustedCheckpoint>(&checkpoint_path).map_err(|error| {
                anyhow::anyhow!(
                    "{error:#}\nmove it away to restart consensus from the database's finalized \
                     block"
                )
            })?;

        let key = ValidatorKey::from_secret_bytes(signer.to_bytes().0, RANDAO_CHAIN_EPOCHS)?;
        let genesis_block = inner.chain.block(0)?.context("genesis block missing")?;
        let genesis = Genesis {
            hash: genesis_block.block.hash(),
            validators: vec![GenesisValidator {
                address: key.address(),
                stake: consensus_stake(validator.stake),
                randao_anchor: key
                    .randao_anchor(0)
                    .context("RANDAO chain has no genesis commitment")?,
            }],
        };

        let checkpoint = match stored_checkpoint {
            Some(checkpoint) => {
                let stored = inner.chain.number_of(&checkpoint.block.hash)?;
                anyhow::ensure!(
                    stored == Some(checkpoint.block.height),
                    "the consensus checkpoint {} names block {} ({}), which the database does \
                     not hold (its head is {}): the database lost finalized blocks or belongs \
                     to another chain",
                    checkpoint_path.display(),
                    checkpoint.block.height,
                    checkpoint.block.hash,
                    head.block.number()
                );
                checkpoint
            }
            None => {
                // A new chain, a data directory from before the consensus engine (every block
                // was final once committed), or a lost file: trust the database's finalized
                // block, with the genesis consensus state moved to its epoch.
                let number = inner.finalized.load(Ordering::Acquire);
                let block = inner
                    .chain
                    .block(number)?
                    .with_context(|| format!("finalized block {number} missing"))?;
                if number > 0 {
                    tracing::warn!(
                        number,
                        "no consensus checkpoint: starting consensus from the database's \
                         finalized block"
                    );
                }
                let slot = block.block.block().seal.slot;
                let state = ChainState::genesis(&genesis, chain_id)?
                    .advanced_to(config.epoch_of(slot), &config);
                TrustedCheckpoint {
                    block: Checkpoint {
                        hash: block.block.hash(),
                        height: number,
                    },
                    slot,
                    state,
                }
            }
        };
        let start = checkpoint.block;
        let engine = ConsensusEngine::from_checkpoint(config, checkpoint, Some(key), protection)
            .with_context(|| {
                format!(
                    "cannot start consensus (slashing-protection record {})",
                    protection_path.display()
                )
            })?;
        node.raise_finality(start.height, start.height);
        let mut producer = Self {
            node,
            engine,
            signer,
            protection_path,
            checkpoint_path,
            built: None,
            replaying: true,
        };

        // The engine learns the clock first (blocks of later slots would be "from the future"),
        // then the stored blocks above its checkpoint, which it asks to validate: they are ours.
        // (Only then: a fresh engine's first tick may already propose, and that belongs to
        // `run`. While blocks above the checkpoint exist the tick cannot: a stale checkpoint
        // makes the engine listen for `sync_slots` first, and otherwise the stored blocks' slots
        // are not below the current one and the protection record covers them.)
        let mut ignore = |_: &ProducedBlock| {};
        if head.block.number() > start.height {
            producer.handle(Event::Tick { now_ms: now_ms() }, &mut ignore)?;
        }
        for number in start.height + 1..=head.block.number() {
            let block = producer
                .node
                .chain()
                .block(number)?
                .with_context(|| format!("block {number} missing"))?;
            let proposal = signed_proposal(&block.block, chain_id).with_context(|| {
                format!(
                    "block {number} (above the consensus checkpoint) cannot be handed to the \
                     consensus engine"
                )
            })?;
            producer.handle(Event::BlockReceived(proposal), &mut ignore)?;
        }
        producer.replaying = false;
        let engine_head = producer.engine.head();
        anyhow::ensure!(
            engine_head.hash == head.block.hash(),
            "the consensus engine's head (block {} {}) is not the database's head (block {} {})",
            engine_head.height,
            engine_head.hash,
            head.block.number(),
            head.block.hash()
        );
        tracing::info!(
            head = engine_head.height,
            finalized = producer.engine.finalized().height,
            "consensus engine ready"
        );
        Ok(producer)
    }

    /// The consensus engine (for inspection).
    pub fn engine(&self) -> &ConsensusEngine {
        &self.engine
    }

    /// Ticks the engine at every slot start and vote deadline and executes what it asks for,
    /// until `shutdown` is set; `on_block` sees every committed block. Returns an error, after
    /// which the producer must not be restarted in this process, if the slashing-protection
    /// record cannot be written (signing on without it could double-sign after a crash).
    pub fn run(
        mut self,
        shutdown: &AtomicBool,
        mut on_block: impl FnMut(&ProducedBlock),
    ) -> anyhow::Result<()> {
        let mut next_tick = now_ms();
        while !shutdown.load(Ordering::Relaxed) {
            let now = now_ms();
            if now < next_tick {
                std::thread::sleep(Duration::from_millis((next_tick - now).min(50)));
                continue;
            }
            self.handle(Event::Tick { now_ms: now }, &mut on_block)?;
            next_tick = self.next_tick_after(now_ms());
        }
        Ok(())
    }

    /// The next slot start or vote deadline after `now`.
    fn next_tick_after(&self, now: u64) -> u64 {
        let config = self.engine.config();
        let slot = config.slot_at(now);
        let deadline = config.slot_start_ms(slot) + config.vote_deadline_ms;
        if now < deadline {
            deadline
        } else {
            config.slot_start_ms(slot + 1)
        }
    }

    /// Hands `event` to the engine and executes the actions, in order; events the actions
    /// produce (a built block, a validation verdict) follow once the batch is done.
    fn handle(
        &mut self,
        event: Event,
        on_block: &mut dyn FnMut(&ProducedBlock),
    ) -> anyhow::Result<()> {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let received = matches!(event, Event::BlockReceived(_));
            let built = matches!(event, Event::BlockBuilt(_));
            let (actions, verdict) = self.engine.handle_with_verdict(event);
            if let Err(error) = verdict {
                if received && self.replaying {
                    anyhow::bail!("the consensus engine refused a stored block: {error}");
                }
                if built {
                    self.built = None;
                    tracing::error!("the consensus engine refused the block it asked for: {error}");
                } else {
                    tracing::warn!("consensus event refused: {error}");
                }
            }
            for action in actions {
                self.execute(action, &mut events, on_block)?;
            }
        }
        self.node.raise_finality(
            self.engine.finalized().height,
            self.engine.justified().height,
        );
        let head = self.engine.head();
        if let Some(state) = self.engine.chain_state(head.hash) {
            self.node.publish_consensus_view(head, state);
        }
        Ok(())
    }

    fn execute(
        &mut self,
        action: Action,
        events: &mut VecDeque<Event>,
        on_block: &mut dyn FnMut(&ProducedBlock),
    ) -> anyhow::Result<()> {
        match action {
            Action::ProposeBlock {
                slot,
                parent,
                randao_reveal,
                evidence,
                justification,
            } => {
                let head = self.node.head();
                if parent.hash != head.block.hash() {
                    tracing::error!(
                        slot,
                        parent = %parent.hash,
                        head = %head.block.hash(),
                        "the consensus engine asks for a block on a parent that is not the head; skipping the slot"
                    );
                    return Ok(());
                }
                match self.build(slot, &head, randao_reveal, evidence, justification) {
                    Ok(summary) => events.push_back(Event::BlockBuilt(summary)),
                    Err(error) => tracing::error!(slot, "block production failed: {error:#}"),
                }
            }
            Action::PersistSlashingProtection(record) => {
                write_json(&self.protection_path, &record).context(
                    "cannot persist the slashing-protection record; stopping block production",
                )?;
            }
            Action::Broadcast(Message::Proposal(proposal)) => {
                // Our proposal is signed and its record durable: publish it by committing.
                if self
                    .built
                    .as_ref()
                    .is_some_and(|built| built.executed.block.block.hash() == proposal.block.hash)
                {
                    self.commit_built(&proposal, on_block)?;
                } else {
                    tracing::error!(hash = %proposal.block.hash, "the consensus engine signed a block this node did not build");
                }
            }
            Action::Broadcast(message) => {
                tracing::trace!(?message, "no network: not broadcasting");
            }
            Action::HeadChanged { head } => {
                // While replaying, the engine's head climbs the stored blocks one by one.
                let node_head = self.node.head().block.hash();
                if !self.replaying && head.hash != node_head {
                    tracing::error!(engine = %head.hash, node = %node_head, "the consensus head is not the node's head");
                }
            }
            Action::Finalized { block } => {
                // The engine's root after the whole batch, which is `block` or a later one.
                let checkpoint = self.engine.finalized_checkpoint();
                if let Err(error) = write_json(&self.checkpoint_path, &checkpoint) {
                    // Not a safety matter: a restart starts from the older checkpoint.
                    tracing::error!("cannot persist the consensus checkpoint: {error:#}");
                }
                self.node.raise_finality(block.height, block.height);
                tracing::debug!(number = block.height, hash = %block.hash, "finalized");
            }
            Action::ValidateBlock { hash } => {
                if self.replaying && self.node.chain().number_of(&hash)?.is_some() {
                    events.push_back(Event::BlockValidated { hash, valid: true });
                } else {
                    tracing::error!(%hash, "asked to validate a foreign block, which a single validator without a network cannot receive");
                }
            }
            Action::Reorg { from, to, .. } => {
                tracing::error!(from = %from.hash, to = %to.hash, "asked to reorganize, which a single validator cannot need; ignoring");
            }
            Action::Slash { block, record } => {
                // The including block's staking rule already moved the ether.
                tracing::warn!(%block, ?record, "a slashing is final");
            }
            Action::RequestBlock { hash } => {
                tracing::trace!(%hash, "no network: not requesting the block");
            }
            Action::RequestVotes { target } => {
                tracing::trace!(?target, "no network: not requesting votes");
            }
        }
        Ok(())
    }

    /// Builds and executes the block of `slot` on `head`; returns its summary for the engine.
    fn build(
        &mut self,
        slot: u64,
        head: &IndexedBlock,
        randao_reveal: B256,
        evidence: Vec<Evidence>,
        justification: Vec<SignedVote>,
    ) -> anyhow::Result<BlockSummary> {
        let started = Instant::now();
        let inner = &*self.node.inner;
        let parent = head.block.header();
        let mut candidates =
            pool::best_for_block(&inner.pool, next_base_fee(parent), inner.spec.gas_limit);
        let timestamp = (now_ms() / 1000).max(parent.timestamp);
        let reveal = Bytes::copy_from_slice(randao_reveal.as_slice());
        // The operations consensus accepts, then those of them the staking rule accepts (it
        // needs the state after the transactions); repeat until both agree (the pool holds one
        // operation per validator and neither judges one by another's, so the second round
        // agrees; each round drops at least one operation anyway). The ones refused on the way
        // leave the pool (below): they carry the next nonce, so they were refused on their own
        // account and would otherwise be offered to every block; the validator can send
        // another.
        let pooled = inner.staking_pool.candidates();
        let consensus_limit = self.engine.config().max_staking_ops_per_block;
        let rule_limit = inner.spec.staking.max_staking_ops_per_block;
        let mut staking_ops = self.engine.includable_staking_ops(
            head.block.hash(),
            slot,
            &evidence,
            pooled.iter().copied(),
        );
        // The engine answers nothing, for every operation, when it does not know the parent or
        // the evidence does not apply: that is not the operations' fault.
        let judged = self.engine.knows_block(head.block.hash())
            && (evidence.is_empty() || !staking_ops.is_empty());
        let mut refused: Vec<(SignedStakingOp, &str)> = if judged {
            refused_by_consensus(&pooled, &staking_ops, consensus_limit)
                .map(|op| (op, "refused by consensus"))
                .collect()
        } else {
            Vec::new()
        };
        let executed = loop {
            // Without operations there is no second round: no need to keep the candidates.
            let txs = if staking_ops.is_empty() {
                std::mem::take(&mut candidates)
            } else {
                candidates.clone()
            };
            let executed = build_block(
                &inner.spec,
                inner.chain.db(),
                &inner.executor,
                head,
                txs,
                timestamp,
                slot,
                reveal.clone(),
                &self.signer,
                &evidence,
                &staking_ops,
            )?;
            if executed.staking_ops == staking_ops {
                break executed;
            }
            // The rule weighs the first `rule_limit` offered operations.
            refused.extend(
                staking_ops
                    .iter()
                    .take(rule_limit)
                    .filter(|op| !executed.staking_ops.contains(op))
                    .map(|op| (*op, "refused by the staking rule")),
            );
            staking_ops = self.engine.includable_staking_ops(
                head.block.hash(),
                slot,
                &evidence,
                executed.staking_ops.iter().copied(),
            );
            // (Here the engine accepted operations in the first round: it knows the parent
            // and the evidence applies, so what it refuses now it refuses for the operation.)
            refused.extend(
                refused_by_consensus(&executed.staking_ops, &staking_ops, consensus_limit)
                    .map(|op| (op, "refused by consensus")),
            );
            if staking_ops == executed.staking_ops {
                break executed;
            }
        };
        if !refused.is_empty() {
            // Judged on the parent's state, where their nonce must be the next one: otherwise
            // they are stale, and the next head's prune drops them.
            inner
                .staking_pool
                .drop_refused(&refused, &inner.chain.db().reader());
        }
        for (hash, reason) in &executed.skipped {
            tracing::debug!(%hash, %reason, "left a pool transaction out of the block");
        }
        let dropped: Vec<B256> = executed.skipped.iter().map(|(hash, _)| *hash).collect();
        pool::remove_invalid(&inner.pool, &dropped);
        let summary = BlockSummary {
            chain_id: inner.spec.chain_id,
            slot,
            height: executed.block.block.number(),
            parent: head.block.hash(),
            hash: executed.block.block.hash(),
            proposer: self.signer.address(),
            randao_reveal,
            evidence,
            staking_ops: executed.staking_ops.clone(),
            justification,
        };
        self.built = Some(BuiltBlock { executed, started });
        Ok(summary)
    }

    /// Puts the engine's signed proposal into the built block's seal and commits the block.
    fn commit_built(
        &mut self,
        proposal: &SignedProposal,
        on_block: &mut dyn FnMut(&ProducedBlock),
    ) -> anyhow::Result<()> {
        let Some(BuiltBlock {
            mut executed,
            started,
        }) = self.built.take()
        else {
            return Ok(());
        };
        let payload = SealPayload {
            evidence: proposal.block.evidence.clone(),
            staking_ops: proposal.block.staking_ops.clone(),
            justification: proposal.block.justification.clone(),
            proposal_signature: proposal.signature,
        };
        let indexed = Arc::try_unwrap(executed.block).unwrap_or_else(|shared| (*shared).clone());
        let mut block = indexed.block.into_block();
        block.seal.payload = payload.encoded();
        // The seal is outside the header: the hash stays the one the engine signed.
        let size = block.size();
        executed.block = Arc::new(IndexedBlock {
            block: block.seal_slow(),
            senders: indexed.senders,
            tx_hashes: indexed.tx_hashes,
            size,
        });
        let inner = &*self.node.inner;
        let _commit = inner.commit_lock.lock();
        let head = self.node.head();
        anyhow::ensure!(
            executed.block.block.header().parent_hash == head.block.hash(),
            "the head moved while block {} was being built",
            executed.block.block.number()
        );
        self.node.commit_executed(&executed, false)?;
        let header = executed.block.block.header();
        on_block(&ProducedBlock {
            number: header.number,
            hash: executed.block.block.hash(),
            transactions: executed.block.tx_hashes.len(),
            gas_used: header.gas_used,
            execution_us: executed.execution_us,
            total_us: started.elapsed().as_micros() as u64,
        });
        Ok(())
    }
}
