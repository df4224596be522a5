//! The local slashing-protection record: watermarks that make an honest validator unable to
//! sign two conflicting statements, even across crashes and restarts.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::error::ConsensusError;
use crate::types::{SignedVote, Vote};

/// What this validator has signed, reduced to watermarks (as in EIP-3076's minimal format).
///
/// - A proposal for slot `s` is signed only if `s > last_proposed_slot`: never two proposals
///   for one slot.
/// - A vote (source `S`, target `T`) is signed only if `T.height > last_target_height` and
///   `S.height >= last_source_height`: target heights strictly increase, so never two votes
///   for one height; source heights never decrease, so no new vote surrounds an old one
///   (that would need a lower source) and no old vote surrounds a new one (that would need a
///   lower target).
///
/// The record also keeps the votes that justify its source watermark (`source_proof`): after a
/// restart the node may vote again only from a source at least that high, so it must be able
/// to show that such a source is justified even if every other node forgot the votes.
///
/// The engine updates the record and emits `Action::PersistSlashingProtection` *before* the
/// action that publishes the signature; the node must execute actions in order and make the
/// record durable before sending. A crash in between loses a signature, never doubles one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SlashingProtectionRecord {
    /// The validator the record belongs to (`None` for a fresh record).
    pub validator: Option<Address>,
    /// The highest slot a proposal was signed for.
    pub last_proposed_slot: Option<u64>,
    /// The highest target height a vote was signed for.
    pub last_target_height: Option<u64>,
    /// The highest source height a vote was signed with.
    pub last_source_height: Option<u64>,
    /// Votes that justify the source of the last vote (handed back to the engine on restart).
    pub source_proof: Vec<SignedVote>,
}

impl SlashingProtectionRecord {
    /// A fresh record for `validator`.
    pub fn new(validator: Address) -> Self {
        Self {
            validator: Some(validator),
            ..Self::default()
        }
    }

    /// Checks that the record belongs to `validator` (a record of another key would protect
    /// nothing); a fresh record is claimed.
    pub fn bind(&mut self, validator: Address) -> Result<(), ConsensusError> {
        match self.validator {
            None => {
                self.validator = Some(validator);
                Ok(())
            }
            Some(owner) if owner == validator => Ok(()),
            Some(owner) => Err(ConsensusError::SlashingProtection(format!(
                "record belongs to {owner}, key is {validator}"
            ))),
        }
    }

    /// Whether a proposal for `slot` may be signed.
    pub fn may_propose(&self, slot: u64) -> bool {
        self.last_proposed_slot.is_none_or(|last| slot > last)
    }

    /// Records a proposal for `slot`; refuses if that could double-sign.
    pub fn record_proposal(&mut self, slot: u64) -> Result<(), ConsensusError> {
        if !self.may_propose(slot) {
            return Err(ConsensusError::SlashingProtection(format!(
                "already proposed at slot {:?}",
                self.last_proposed_slot
            )));
        }
        self.last_proposed_slot = Some(slot);
        Ok(())
    }

    /// Whether `vote` may be signed.
    pub fn may_vote(&self, vote: &Vote) -> bool {
        vote.target.height > vote.source.height
            && self
                .last_target_height
                .is_none_or(|last| vote.target.height > last)
            && self
                .last_source_height
                .is_none_or(|last| vote.source.height >= last)
    }

    /// Records `vote`; refuses if it could be a double or surround vote.
    pub fn record_vote(&mut self, vote: &Vote) -> Result<(), ConsensusError> {
        if !self.may_vote(vote) {
            return Err(ConsensusError::SlashingProtection(format!(
                "vote {}→{} under watermarks source {:?} target {:?}",
                vote.source.height,
                vote.target.height,
                self.last_source_height,
                self.last_target_height
            )));
        }
        self.last_target_height = Some(vote.target.height);
        self.last_source_height = Some(vote.source.height);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Checkpoint;
    use alloy_primitives::B256;
    use proptest::prelude::*;

    fn vote(source: u64, target: u64) -> Vote {
        Vote {
            chain_id: 1,
            validator: Address::ZERO,
            source: Checkpoint {
                hash: B256::ZERO,
                height: source,
            },
            target: Checkpoint {
                hash: B256::repeat_byte(target as u8),
                height: target,
            },
            target_slot: target,
        }
    }

    fn double_or_surround(a: &Vote, b: &Vote) -> bool {
        let double = a.target.height == b.target.height && a != b;
        let surround = |o: &Vote, i: &Vote| {
            o.source.height < i.source.height && i.target.height < o.target.height
        };
        double || surround(a, b) || surround(b, a)
    }

    #[test]
    fn proposals_once_per_slot() {
        let mut record = SlashingProtectionRecord::new(Address::ZERO);
        record.record_proposal(4).unwrap();
        assert!(record.record_proposal(4).is_err());
        assert!(record.record_proposal(3).is_err());
        record.record_proposal(9).unwrap();
    }

    #[test]
    fn record_binds_to_one_key() {
        let mut record = SlashingProtectionRecord::default();
        record.bind(Address::repeat_byte(1)).unwrap();
        record.bind(Address::repeat_byte(1)).unwrap();
        assert!(record.bind(Address::repeat_byte(2)).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let mut record = SlashingProtectionRecord::new(Address::repeat_byte(3));
        record.record_vote(&vote(2, 5)).unwrap();
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            serde_json::from_str::<SlashingProtectionRecord>(&json).unwrap(),
            record
        );
    }

    proptest! {
        /// Whatever sequence of votes is attempted, the accepted ones contain no double and no
        /// surround vote.
        #[test]
        fn accepted_votes_are_never_slashable(attempts in prop::collection::vec((0u64..20, 1u64..20), 1..40)) {
            let mut record = SlashingProtectionRecord::new(Address::ZERO);
            let mut accepted: Vec<Vote> = Vec::new();
            for (source, span) in attempts {
                let candidate = vote(source, source + span);
                if record.record_vote(&candidate).is_ok() {
                    for earlier in &accepted {
                        prop_assert!(!double_or_surround(earlier, &candidate));
                    }
                    accepted.push(candidate);
                }
            }
        }
    }
}
