//! Validator sets, proposer selection, and the per-chain consensus state (RANDAO mix, epoch
//! transitions, staking operations, slashing).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

use crate::config::{ConsensusConfig, Genesis};
use crate::crypto::{RandaoAnchor, SignatureCache};
use crate::error::ConsensusError;
use crate::types::{BlockSummary, Evidence, SignedStakingOp, StakingOpKind};

/// Validators with their stake, sorted by address; every stake is positive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValidatorSet {
    members: Vec<(Address, u64)>,
}

impl ValidatorSet {
    /// A set from (address, stake) pairs; zero stakes are left out, duplicates refused.
    pub fn new(members: impl IntoIterator<Item = (Address, u64)>) -> Result<Self, ConsensusError> {
        let mut members: Vec<_> = members
            .into_iter()
            .filter(|(_, stake)| *stake > 0)
            .collect();
        members.sort();
        if members.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(ConsensusError::InvalidConfig("duplicate validator".into()));
        }
        Ok(Self { members })
    }

    /// The stake of `validator` (0 if not a member).
    pub fn stake(&self, validator: Address) -> u64 {
        self.members
            .binary_search_by_key(&validator, |(address, _)| *address)
            .map_or(0, |index| self.members[index].1)
    }

    /// Whether `validator` is a member.
    pub fn contains(&self, validator: Address) -> bool {
        self.stake(validator) > 0
    }

    /// The sum of all stakes.
    pub fn total(&self) -> u128 {
        self.members
            .iter()
            .map(|(_, stake)| u128::from(*stake))
            .sum()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members and their stakes, by address.
    pub fn iter(&self) -> impl Iterator<Item = (Address, u64)> + '_ {
        self.members.iter().copied()
    }

    /// Whether `stake` is more than two thirds of the total.
    pub fn is_supermajority(&self, stake: u128) -> bool {
        stake.saturating_mul(3) > self.total().saturating_mul(2)
    }

    /// Whether `stake` is more than one third of the total: more than any Byzantine coalition
    /// the protocol tolerates, so such a group contains an honest validator.
    pub fn exceeds_one_third(&self, stake: u128) -> bool {
        stake.saturating_mul(3) > self.total()
    }

    /// The proposer of `slot` under `seed`: member `i` is drawn with probability
    /// `stake_i / total`, from `keccak(seed ‖ slot)` reduced modulo the total (the modulo bias
    /// is below 2^-128 · total, negligible).
    pub fn draw_proposer(&self, seed: B256, slot: u64) -> Option<Address> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let mut input = [0u8; 40];
        input[..32].copy_from_slice(seed.as_slice());
        input[32..].copy_from_slice(&slot.to_be_bytes());
        let draw = U256::from_be_bytes(keccak256(input).0) % U256::from(total);
        let mut point: u128 = draw.to();
        for (address, stake) in &self.members {
            if point < u128::from(*stake) {
                return Some(*address);
            }
            point -= u128::from(*stake);
        }
        None
    }

    fn set_stake(&mut self, validator: Address, stake: u64) {
        match self
            .members
            .binary_search_by_key(&validator, |(address, _)| *address)
        {
            Ok(index) if stake == 0 => {
                self.members.remove(index);
            }
            Ok(index) => self.members[index].1 = stake,
            Err(index) if stake > 0 => self.members.insert(index, (validator, stake)),
            Err(_) => {}
        }
    }
}

/// What including one piece of evidence did: the offender loses `amount` of stake and leaves
/// the set at the next epoch boundary; `reporter` (the including proposer) earns `reward`.
/// The node applies the balance effects with a system rule when the block is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashRecord {
    /// The equivocating validator.
    pub offender: Address,
    /// Stake slashed.
    pub amount: u64,
    /// The proposer that included the evidence.
    pub reporter: Address,
    /// The reporter's reward, out of `amount`.
    pub reward: u64,
}

/// The consensus state of one chain after one of its blocks: a deterministic function of the
/// block's ancestry, so every node computes the same state for the same block.
///
/// Epoch `e`'s validator set and RANDAO seed are fixed by the end of epoch `e - 2`: when the
/// chain crosses from epoch `k` to `k + 1`, the set for `k + 2` is the set for `k + 1` with the
/// queued stake changes applied (at most `churn_limit_bps` of total stake per epoch), and its
/// seed is the RANDAO mix at the end of epoch `k`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    epoch: u64,
    randao_mix: B256,
    current: ValidatorSet,
    next: ValidatorSet,
    seed_current: B256,
    seed_next: B256,
    /// Stakes requested by included staking operations and not yet effective.
    requested_stake: BTreeMap<Address, u64>,
    /// The order in which requests are served by the churn budget.
    pending: Vec<Address>,
    op_nonces: BTreeMap<Address, u64>,
    randao_anchors: BTreeMap<Address, RandaoAnchor>,
    /// Validators slashed on this chain; they may never rejoin.
    slashed: BTreeSet<Address>,
}

impl ChainState {
    /// The state after the genesis block.
    pub fn genesis(genesis: &Genesis, chain_id: u64) -> Result<Self, ConsensusError> {
        let set = ValidatorSet::new(genesis.validators.iter().map(|v| (v.address, v.stake)))?;
        if set.is_empty() || set.len() != genesis.validators.len() {
            return Err(ConsensusError::InvalidConfig(
                "genesis needs validators with positive, distinct stakes".into(),
            ));
        }
        let mut seed_input = b"chaind/genesis-seed".to_vec();
        seed_input.extend_from_slice(&chain_id.to_be_bytes());
        seed_input.extend_from_slice(genesis.hash.as_slice());
        let seed = keccak256(seed_input);
        Ok(Self {
            epoch: 0,
            randao_mix: seed,
            current: set.clone(),
            next: set,
            seed_current: seed,
            seed_next: seed,
            requested_stake: BTreeMap::new(),
            pending: Vec::new(),
            op_nonces: BTreeMap::new(),
            randao_anchors: genesis
                .validators
                .iter()
                .map(|v| (v.address, v.randao_anchor))
                .collect(),
            slashed: BTreeSet::new(),
        })
    }

    /// The epoch of the last block applied.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The validator set of [`Self::epoch`].
    pub fn current_set(&self) -> &ValidatorSet {
        &self.current
    }

    /// The validator set of the epoch after [`Self::epoch`].
    pub fn next_set(&self) -> &ValidatorSet {
        &self.next
    }

    /// Stakes requested by included staking operations and not yet in effect, by validator
    /// (0 for a pending leave).
    pub fn requested_stakes(&self) -> impl Iterator<Item = (Address, u64)> + '_ {
        self.requested_stake
            .iter()
            .map(|(validator, stake)| (*validator, *stake))
    }

    /// The RANDAO mix after the last block.
    pub fn randao_mix(&self) -> B256 {
        self.randao_mix
    }

    /// The staking-operation nonce the validator's next operation must carry.
    pub fn op_nonce(&self, validator: Address) -> u64 {
        self.op_nonces.get(&validator).copied().unwrap_or(0)
    }

    /// Whether the validator was slashed on this chain.
    pub fn is_slashed(&self, validator: Address) -> bool {
        self.slashed.contains(&validator)
    }

    /// Whether the validator has stake now, next epoch, or a stake request pending.
    pub fn is_active(&self, validator: Address) -> bool {
        self.current.contains(validator)
            || self.next.contains(validator)
            || self.requested_stake.contains_key(&validator)
    }

    /// The state moved forward to `epoch` with no block in between (folding each boundary).
    pub fn advanced_to(&self, epoch: u64, config: &ConsensusConfig) -> ChainState {
        let mut state = self.clone();
        while state.epoch < epoch {
            let settled = state.pending.is_empty()
                && state.current == state.next
                && state.seed_current == state.randao_mix
                && state.seed_next == state.randao_mix;
            if settled {
                // Nothing changes at further boundaries: jump.
                state.epoch = epoch;
                break;
            }
            state.fold_epoch(config);
        }
        state
    }

    /// The proposer of `slot` (the state must be advanced to the slot's epoch).
    pub fn proposer_for(&self, slot: u64) -> Option<Address> {
        self.current.draw_proposer(self.seed_current, slot)
    }

    fn fold_epoch(&mut self, config: &ConsensusConfig) {
        let mut next = self.next.clone();
        let mut requested = self.requested_stake.clone();
        let mut still_pending = Vec::new();
        let mut budget = (next.total() * u128::from(config.churn_limit_bps) / 10_000).max(1);
        for &validator in &self.pending {
            let Some(&target) = requested.get(&validator) else {
                continue;
            };
            if budget == 0 {
                still_pending.push(validator);
                continue;
            }
            let current = next.stake(validator);
            let step = u128::from(target.abs_diff(current)).min(budget);
            budget -= step;
            // step ≤ |target - current| fits in u64.
            let step = step as u64;
            let new = if target > current {
                current + step
            } else {
                current - step
            };
            next.set_stake(validator, new);
            if new == target {
                requested.remove(&validator);
            } else {
                still_pending.push(validator);
            }
        }
        if !next.is_empty() {
            // A change that would empty the set is never applied: the chain must keep someone
            // to propose and vote.
            self.requested_stake = requested;
            self.pending = still_pending;
            self.current = std::mem::replace(&mut self.next, next);
        } else {
            self.current = self.next.clone();
        }
        self.seed_current = self.seed_next;
        self.seed_next = self.randao_mix;
        self.epoch += 1;
    }

    /// Applies `block` to this state, which must be the parent's state advanced to the block's
    /// epoch. Checks proposer eligibility, the RANDAO reveal, the evidence and the staking
    /// operations; returns the state after the block and what its evidence slashed.
    pub fn apply_block(
        &self,
        block: &BlockSummary,
        config: &ConsensusConfig,
        cache: &SignatureCache,
    ) -> Result<(ChainState, Vec<SlashRecord>), ConsensusError> {
        let epoch = config.epoch_of(block.slot);
        if epoch != self.epoch {
            return Err(ConsensusError::InconsistentBlock(
                "state not at the block's epoch".into(),
            ));
        }
        let expected = self
            .proposer_for(block.slot)
            .ok_or_else(|| ConsensusError::InconsistentBlock("no validator can propose".into()))?;
        if expected != block.proposer {
            return Err(ConsensusError::WrongProposer {
                slot: block.slot,
                got: block.proposer,
                expected,
            });
        }
        let mut state = self.clone();
        let anchor = state
            .randao_anchors
            .get(&block.proposer)
            .ok_or(ConsensusError::BadRandaoReveal(block.proposer))?;
        let anchor = anchor
            .verify(epoch, block.randao_reveal, config.max_randao_gap_epochs)
            .ok_or(ConsensusError::BadRandaoReveal(block.proposer))?;
        state.randao_anchors.insert(block.proposer, anchor);
        let mut mix_input = [0u8; 72];
        mix_input[..32].copy_from_slice(state.randao_mix.as_slice());
        mix_input[32..64].copy_from_slice(block.randao_reveal.as_slice());
        mix_input[64..].copy_from_slice(&block.slot.to_be_bytes());
        state.randao_mix = keccak256(mix_input);

        let slashes = state.apply_evidence(&block.evidence, block.proposer, config, cache)?;
        if block.staking_ops.len() > config.max_staking_ops_per_block {
            return Err(ConsensusError::InvalidStakingOp(
                "too many operations".into(),
            ));
        }
        if block.justification.len() > config.max_justification_votes {
            return Err(ConsensusError::InconsistentBlock(
                "too many justification votes".into(),
            ));
        }
        for op in &block.staking_ops {
            state.apply_staking_op(op, epoch, config, cache)?;
        }
        Ok((state, slashes))
    }

    /// Applies a block's evidence: each offender is slashed and leaves at the next epoch
    /// boundary.
    pub(crate) fn apply_evidence(
        &mut self,
        evidence: &[Evidence],
        proposer: Address,
        config: &ConsensusConfig,
        cache: &SignatureCache,
    ) -> Result<Vec<SlashRecord>, ConsensusError> {
        if evidence.len() > config.max_evidence_per_block {
            return Err(ConsensusError::InvalidEvidence(
                "too many evidence items".into(),
            ));
        }
        let mut slashes = Vec::new();
        for evidence in evidence {
            let offender = evidence.verify(config.chain_id, cache)?;
            self.check_slashable(offender)?;
            let stake = self.current.stake(offender).max(self.next.stake(offender));
            let amount =
                (u128::from(stake) * u128::from(config.slash_fraction_bps) / 10_000) as u64;
            let reward =
                (u128::from(amount) * u128::from(config.reporter_reward_bps) / 10_000) as u64;
            slashes.push(SlashRecord {
                offender,
                amount,
                reporter: proposer,
                reward,
            });
            self.slashed.insert(offender);
            self.requested_stake.remove(&offender);
            self.pending.retain(|validator| *validator != offender);
            // Ejected at the next epoch boundary, unless it is the last validator.
            if self.next.len() > 1 {
                self.next.set_stake(offender, 0);
            }
        }
        Ok(slashes)
    }

    /// Whether evidence against `offender` can still be included on this chain.
    pub fn check_slashable(&self, offender: Address) -> Result<(), ConsensusError> {
        if self.slashed.contains(&offender) {
            return Err(ConsensusError::InvalidEvidence(
                "offender already slashed".into(),
            ));
        }
        if !self.current.contains(offender) && !self.next.contains(offender) {
            return Err(ConsensusError::InvalidEvidence(
                "offender has no stake".into(),
            ));
        }
        Ok(())
    }

    /// Whether `evidence` could be included in a block built on this state.
    pub fn can_include(&self, evidence: &Evidence) -> bool {
        self.check_slashable(evidence.offender()).is_ok()
    }

    /// Applies one staking operation of a block in epoch `epoch`.
    pub(crate) fn apply_staking_op(
        &mut self,
        signed: &SignedStakingOp,
        epoch: u64,
        config: &ConsensusConfig,
        cache: &SignatureCache,
    ) -> Result<(), ConsensusError> {
        let op = &signed.op;
        let invalid = |why: &str| Err(ConsensusError::InvalidStakingOp(why.to_string()));
        if op.chain_id != config.chain_id {
            return invalid("wrong chain id");
        }
        if op.nonce != self.op_nonce(op.validator) {
            return invalid("wrong nonce");
        }
        if self.slashed.contains(&op.validator) {
            return invalid("validator was slashed");
        }
        let active = self.is_active(op.validator);
        match op.kind {
            StakingOpKind::Join {
                stake,
                randao_anchor,
            } => {
                if active {
                    return invalid("already a validator");
                }
                if stake < config.min_stake {
                    return invalid("stake below minimum");
                }
                if randao_anchor.epoch > epoch + 2 {
                    return invalid("RANDAO anchor too far ahead");
                }
                signed.verify(cache)?;
                self.randao_anchors.insert(op.validator, randao_anchor);
                self.request_stake(op.validator, stake);
            }
            StakingOpKind::SetStake { stake } => {
                if !active {
                    return invalid("not a validator");
                }
                if stake < config.min_stake {
                    return invalid("stake below minimum");
                }
                signed.verify(cache)?;
                self.request_stake(op.validator, stake);
            }
            StakingOpKind::Leave => {
                if !active {
                    return invalid("not a validator");
                }
                signed.verify(cache)?;
                self.request_stake(op.validator, 0);
            }
        }
        self.op_nonces.insert(op.validator, op.nonce + 1);
        Ok(())
    }

    fn request_stake(&mut self, validator: Address, stake: u64) {
        self.requested_stake.insert(validator, stake);
        if !self.pending.contains(&validator) {
            self.pending.push(validator);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    #[test]
    fn set_basics() {
        let set = ValidatorSet::new([(address(2), 5), (address(1), 3), (address(3), 0)]).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.total(), 8);
        assert_eq!(set.stake(address(2)), 5);
        assert!(!set.contains(address(3)));
        assert!(set.is_supermajority(6));
        assert!(!set.is_supermajority(5));
        assert!(ValidatorSet::new([(address(1), 1), (address(1), 2)]).is_err());
    }

    fn key(byte: u8) -> crate::ValidatorKey {
        crate::ValidatorKey::from_secret_bytes([byte; 32], 64).unwrap()
    }

    /// A join larger than the churn limit is phased in over several epoch boundaries, starting
    /// one to two epochs after its block; a leave drains the same way; a stale nonce or a
    /// second join is refused.
    #[test]
    fn staking_changes_follow_epochs_and_churn() {
        use crate::config::{ConsensusConfig, Genesis, GenesisValidator};
        use crate::types::{SignedStakingOp, StakingOp, StakingOpKind};
        let config = ConsensusConfig::new(1, 0, 1_000);
        let keys: Vec<_> = (1..=5u8).map(key).collect();
        let genesis = Genesis {
            hash: B256::ZERO,
            validators: keys[..4]
                .iter()
                .map(|k| GenesisValidator {
                    address: k.address(),
                    stake: 100,
                    randao_anchor: k.randao_anchor(0).unwrap(),
                })
                .collect(),
        };
        let cache = SignatureCache::default();
        let mut state = ChainState::genesis(&genesis, 1).unwrap();
        let joiner = &keys[4];
        let join = SignedStakingOp::sign(
            StakingOp {
                chain_id: 1,
                validator: joiner.address(),
                nonce: 0,
                kind: StakingOpKind::Join {
                    stake: 250,
                    randao_anchor: joiner.randao_anchor(0).unwrap(),
                },
            },
            joiner,
        );
        state.apply_staking_op(&join, 0, &config, &cache).unwrap();
        assert!(
            state.apply_staking_op(&join, 0, &config, &cache).is_err(),
            "nonce used"
        );
        let stake_at = |epoch: u64| {
            state
                .advanced_to(epoch, &config)
                .current_set()
                .stake(joiner.address())
        };
        // Churn budget: 25% of the total per epoch (100, then 125, ...).
        assert_eq!(
            [
                stake_at(1),
                stake_at(2),
                stake_at(3),
                stake_at(4),
                stake_at(9)
            ],
            [0, 100, 225, 250, 250]
        );

        let leaver = &keys[0];
        let leave = SignedStakingOp::sign(
            StakingOp {
                chain_id: 1,
                validator: leaver.address(),
                nonce: 0,
                kind: StakingOpKind::Leave,
            },
            leaver,
        );
        let mut later = state.advanced_to(4, &config);
        later.apply_staking_op(&leave, 4, &config, &cache).unwrap();
        let leaver_stake = |epoch: u64| {
            later
                .advanced_to(epoch, &config)
                .current_set()
                .stake(leaver.address())
        };
        assert_eq!(
            [leaver_stake(5), leaver_stake(6), leaver_stake(7)],
            [100, 0, 0]
        );
        let again = SignedStakingOp::sign(
            StakingOp {
                chain_id: 1,
                validator: joiner.address(),
                nonce: 1,
                kind: StakingOpKind::Join {
                    stake: 5,
                    randao_anchor: joiner.randao_anchor(4).unwrap(),
                },
            },
            joiner,
        );
        assert!(
            later.apply_staking_op(&again, 4, &config, &cache).is_err(),
            "already a validator"
        );
    }

    /// Proposer draws follow stake: over many slots each validator's share is within five
    /// standard deviations of its stake fraction (a false alarm has probability < 1e-5).
    #[test]
    fn proposer_selection_is_stake_proportional() {
        let stakes = [1u64, 2, 3, 5, 8, 13, 21, 47];
        let set = ValidatorSet::new(
            stakes
                .iter()
                .enumerate()
                .map(|(i, s)| (address(i as u8 + 1), *s)),
        )
        .unwrap();
        let total = set.total() as f64;
        let draws = 200_000u64;
        let mut counts = BTreeMap::new();
        let seed = keccak256(b"seed");
        for slot in 0..draws {
            *counts
                .entry(set.draw_proposer(seed, slot).unwrap())
                .or_insert(0u64) += 1;
        }
        let mut chi_square = 0.0;
        for (validator, stake) in set.iter() {
            let p = stake as f64 / total;
            let expected = p * draws as f64;
            let observed = counts.get(&validator).copied().unwrap_or(0) as f64;
            let sigma = (draws as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (observed - expected).abs() < 5.0 * sigma,
                "{validator}: {observed} draws, expected {expected:.0} ± {sigma:.0}"
            );
            chi_square += (observed - expected).powi(2) / expected;
        }
        // 7 degrees of freedom: P(chi² > 24.3) ≈ 0.001.
        assert!(chi_square < 24.3, "chi² = {chi_square}");
        // A different seed gives a different schedule.
        let other = keccak256(b"other seed");
        let differing = (0..100)
            .filter(|slot| set.draw_proposer(seed, *slot) != set.draw_proposer(other, *slot))
            .count();
        assert!(differing > 30);
    }
}
