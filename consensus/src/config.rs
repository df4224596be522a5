//! Protocol parameters, genesis and trusted checkpoints.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::crypto::RandaoAnchor;
use crate::error::ConsensusError;
use crate::state::ChainState;
use crate::types::Checkpoint;

/// Protocol parameters. All validators of a chain must use the same values (except the local
/// buffer limits at the end, which only bound this node's memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusConfig {
    /// The chain id every signed statement carries.
    pub chain_id: u64,
    /// Wall-clock time of slot 0, in milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Length of a slot (the block time), in milliseconds.
    pub block_time_ms: u64,
    /// Slots per epoch. Validator-set changes and RANDAO seeds move at epoch boundaries.
    pub epoch_slots: u64,
    /// Time into a slot at which validators vote for a head proposed in that slot (they wait
    /// for the parent's votes and any competing block to arrive). Must be below
    /// `block_time_ms`.
    pub vote_deadline_ms: u64,
    /// How many slots ahead of the local clock a block or vote may be (tolerated clock drift).
    pub max_future_slots: u64,
    /// After starting from a checkpoint older than the current slot (a restart, or a new node
    /// joining late), slots to listen before signing anything: the node first learns the
    /// blocks and votes of the others, instead of proposing and voting on a stale view.
    pub sync_slots: u64,
    /// Fraction of an equivocating validator's stake that is slashed, in basis points.
    pub slash_fraction_bps: u32,
    /// Fraction of the slashed amount paid to the proposer that included the evidence, in
    /// basis points.
    pub reporter_reward_bps: u32,
    /// Stake that may enter, leave or change per epoch, in basis points of the total stake.
    /// Bounds how far the validator sets of two forks can drift apart (see the crate docs).
    pub churn_limit_bps: u32,
    /// Smallest stake a `Join` or `SetStake` may request.
    pub min_stake: u64,
    /// Most evidence items one block may include.
    pub max_evidence_per_block: usize,
    /// Most staking operations one block may include.
    pub max_staking_ops_per_block: usize,
    /// Most justification votes one block may carry.
    pub max_justification_votes: usize,
    /// Most hashes one RANDAO reveal may cost to check (epochs since the proposer's last
    /// reveal on the chain).
    pub max_randao_gap_epochs: u64,
    /// Heights (for votes) and slots (for proposals) below the finalized block for which
    /// signed statements are kept to detect equivocations.
    pub evidence_window: u64,
    /// Local limit: blocks kept while their parent is unknown.
    pub max_orphans: usize,
    /// Local limit: blocks kept while the node re-executes them.
    pub max_pending_validation: usize,
    /// Local limit: votes kept for targets not yet known.
    pub max_pending_votes: usize,
}

impl ConsensusConfig {
    /// Parameters for a chain with the given block time, and defaults for the rest
    /// (32-slot epochs, vote deadline at half a slot, 50% slashing, 10% reporter reward,
    /// 25% churn per epoch).
    pub fn new(chain_id: u64, genesis_time_ms: u64, block_time_ms: u64) -> Self {
        Self {
            chain_id,
            genesis_time_ms,
            block_time_ms,
            epoch_slots: 32,
            vote_deadline_ms: block_time_ms / 2,
            max_future_slots: 1,
            sync_slots: 2,
            slash_fraction_bps: 5_000,
            reporter_reward_bps: 1_000,
            churn_limit_bps: 2_500,
            min_stake: 1,
            max_evidence_per_block: 16,
            max_staking_ops_per_block: 64,
            max_justification_votes: 512,
            max_randao_gap_epochs: 1 << 21,
            evidence_window: 1_024,
            max_orphans: 1_024,
            max_pending_validation: 256,
            max_pending_votes: 16_384,
        }
    }

    /// Checks that the parameters are usable.
    pub fn validate(&self) -> Result<(), ConsensusError> {
        let fail = |why: &str| Err(ConsensusError::InvalidConfig(why.to_string()));
        if self.block_time_ms == 0 {
            return fail("block_time_ms must be positive");
        }
        if self.epoch_slots == 0 {
            return fail("epoch_slots must be positive");
        }
        if self.vote_deadline_ms >= self.block_time_ms {
            return fail("vote_deadline_ms must be below block_time_ms");
        }
        if self.slash_fraction_bps > 10_000 || self.reporter_reward_bps > 10_000 {
            return fail("basis points above 10000");
        }
        if self.churn_limit_bps == 0 || self.churn_limit_bps > 10_000 {
            return fail("churn_limit_bps must be in 1..=10000");
        }
        if self.min_stake == 0 {
            return fail("min_stake must be positive");
        }
        Ok(())
    }

    /// The slot at wall-clock time `now_ms` (slot 0 before genesis).
    pub fn slot_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_time_ms) / self.block_time_ms
    }

    /// When `slot` starts, in milliseconds since the Unix epoch.
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.genesis_time_ms
            .saturating_add(slot.saturating_mul(self.block_time_ms))
    }

    /// The epoch of `slot`.
    pub fn epoch_of(&self, slot: u64) -> u64 {
        slot / self.epoch_slots
    }
}

/// A genesis validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// The validator's address (from its secp256k1 key).
    pub address: Address,
    /// Its stake.
    pub stake: u64,
    /// Its RANDAO commitment (`ValidatorKey::randao_anchor(0)`).
    pub randao_anchor: RandaoAnchor,
}

/// What consensus needs of the genesis block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The genesis block hash (as the node computes it). Its height and slot are 0.
    pub hash: B256,
    /// The initial validators.
    pub validators: Vec<GenesisValidator>,
}

/// A finalized block and the consensus state after it, from which a node can start without
/// replaying history (weak subjectivity). A node persists its latest one
/// ([`crate::ConsensusEngine::finalized_checkpoint`]); a new node gets one from a source it
/// trusts. The engine never accepts a block that does not descend from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedCheckpoint {
    /// The finalized block.
    pub block: Checkpoint,
    /// Its slot.
    pub slot: u64,
    /// The consensus state after it.
    pub state: ChainState,
}
