//! The signed statements of the protocol (proposals, votes, staking operations, evidence)
//! and their wire encoding (RLP).

use alloy_primitives::{Address, B256, keccak256};
use alloy_rlp::{Buf, BufMut, Decodable, Encodable, Header, RlpDecodable, RlpEncodable};
use serde::{Deserialize, Serialize};

use crate::crypto::{RandaoAnchor, Signature, SignatureCache, ValidatorKey};
use crate::error::ConsensusError;

/// Largest message [`Message::decode`] accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

const PROPOSAL_DOMAIN: &[u8] = b"chaind/proposal/v1";
const VOTE_DOMAIN: &[u8] = b"chaind/vote/v1";
const STAKING_DOMAIN: &[u8] = b"chaind/staking/v1";
const BODY_DOMAIN: &[u8] = b"chaind/block-body/v1";

fn domain_digest<T: Encodable>(domain: &[u8], value: &T) -> B256 {
    let mut bytes = domain.to_vec();
    value.encode(&mut bytes);
    keccak256(bytes)
}

/// A block as a point of the chain: its hash and height.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    RlpEncodable,
    RlpDecodable,
)]
pub struct Checkpoint {
    /// The block hash (as the node computes it).
    pub hash: B256,
    /// The block height (genesis is 0).
    pub height: u64,
}

/// What consensus knows of a block: identity, position, proposer, and the consensus-relevant
/// parts of its body. Transactions and EVM state are the node's business; the node must carry
/// `randao_reveal`, `evidence`, `staking_ops` and `justification` in the block (header or
/// body) so that `hash` commits to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, RlpEncodable, RlpDecodable)]
pub struct BlockSummary {
    /// The chain the block belongs to.
    pub chain_id: u64,
    /// The slot the block was proposed in.
    pub slot: u64,
    /// Height: the parent's height plus one.
    pub height: u64,
    /// The parent block's hash.
    pub parent: B256,
    /// The block hash as the node computes it. A receiving node must compute it from the block
    /// it received, never take it from the wire: the engine identifies blocks by it, so a hash
    /// not bound to the content would let a peer squat the identity of someone else's block.
    pub hash: B256,
    /// The validator that proposed (and signed) the block.
    pub proposer: Address,
    /// The proposer's RANDAO reveal for the block's epoch.
    pub randao_reveal: B256,
    /// Equivocation evidence the block includes (slashes its offenders).
    pub evidence: Vec<Evidence>,
    /// Staking operations the block includes (validator-set changes).
    pub staking_ops: Vec<SignedStakingOp>,
    /// Votes that justify the proposer's justified block. They carry the knowledge of
    /// justification along the chain, so that a node that missed those votes (restart,
    /// partition) learns it by syncing blocks. Not a validity condition: they are handled like
    /// votes from the network.
    pub justification: Vec<SignedVote>,
}

impl BlockSummary {
    /// The digest of the consensus-relevant body fields, covered by the proposer's signature
    /// so that no relay can swap them.
    pub fn body_digest(&self) -> B256 {
        let mut bytes = BODY_DOMAIN.to_vec();
        self.randao_reveal.encode(&mut bytes);
        self.evidence.encode(&mut bytes);
        self.staking_ops.encode(&mut bytes);
        self.justification.encode(&mut bytes);
        keccak256(bytes)
    }

    /// The signed part of the block.
    pub fn header(&self) -> ProposalHeader {
        ProposalHeader {
            chain_id: self.chain_id,
            slot: self.slot,
            height: self.height,
            parent: self.parent,
            hash: self.hash,
            proposer: self.proposer,
            body_digest: self.body_digest(),
        }
    }

    /// The block as a checkpoint.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            hash: self.hash,
            height: self.height,
        }
    }
}

/// The statement a proposer signs: (chain id, slot, height, parent, block hash), plus its own
/// address and the body digest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct ProposalHeader {
    /// The chain id.
    pub chain_id: u64,
    /// The slot.
    pub slot: u64,
    /// The height.
    pub height: u64,
    /// The parent hash.
    pub parent: B256,
    /// The block hash.
    pub hash: B256,
    /// The proposer.
    pub proposer: Address,
    /// [`BlockSummary::body_digest`].
    pub body_digest: B256,
}

impl ProposalHeader {
    /// The digest the proposer signs.
    pub fn signing_digest(&self) -> B256 {
        domain_digest(PROPOSAL_DOMAIN, self)
    }
}

/// A proposal header with its signature: what double-proposal evidence carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct SignedHeader {
    /// The header.
    pub header: ProposalHeader,
    /// The proposer's signature over [`ProposalHeader::signing_digest`].
    pub signature: Signature,
}

impl SignedHeader {
    /// Checks the signature against the header's proposer.
    pub fn verify(&self, cache: &SignatureCache) -> Result<(), ConsensusError> {
        cache.verify(
            self.header.signing_digest(),
            &self.signature,
            self.header.proposer,
        )
    }
}

/// A proposed block with the proposer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, RlpEncodable, RlpDecodable)]
pub struct SignedProposal {
    /// The block.
    pub block: BlockSummary,
    /// The proposer's signature over the block's [`ProposalHeader`].
    pub signature: Signature,
}

impl SignedProposal {
    /// Signs `block` with `key` without slashing protection (tests and Byzantine simulation;
    /// honest proposals are signed by the engine).
    pub fn sign_unprotected(block: BlockSummary, key: &ValidatorKey) -> Self {
        let signature = key.sign(block.header().signing_digest());
        Self { block, signature }
    }

    /// The signed header (for evidence).
    pub fn signed_header(&self) -> SignedHeader {
        SignedHeader {
            header: self.block.header(),
            signature: self.signature,
        }
    }
}

/// A vote (Casper-FFG style link): the voter's highest justified block as `source`, the block
/// it votes for as `target`. Votes from more than 2/3 of stake on a target with justified
/// sources justify it; such votes with `source` = a justified block `B` and `target` = a direct
/// child of `B` finalize `B`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct Vote {
    /// The chain id.
    pub chain_id: u64,
    /// The voter.
    pub validator: Address,
    /// The voter's highest justified block, an ancestor of `target`.
    pub source: Checkpoint,
    /// The block voted for.
    pub target: Checkpoint,
    /// The slot of `target` (bounds how far in the future a vote may point).
    pub target_slot: u64,
}

impl Vote {
    /// The digest the voter signs.
    pub fn signing_digest(&self) -> B256 {
        domain_digest(VOTE_DOMAIN, self)
    }
}

/// A vote with the voter's signature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct SignedVote {
    /// The vote.
    pub vote: Vote,
    /// The voter's signature over [`Vote::signing_digest`].
    pub signature: Signature,
}

impl SignedVote {
    /// Signs `vote` with `key` without slashing protection (tests and Byzantine simulation).
    pub fn sign_unprotected(vote: Vote, key: &ValidatorKey) -> Self {
        Self {
            vote,
            signature: key.sign(vote.signing_digest()),
        }
    }

    /// Checks the signature against the vote's validator.
    pub fn verify(&self, cache: &SignatureCache) -> Result<(), ConsensusError> {
        cache.verify(
            self.vote.signing_digest(),
            &self.signature,
            self.vote.validator,
        )
    }
}

/// What a staking operation does. Effects enter the validator set at an epoch boundary (see
/// the crate docs); balance effects (locking and releasing the deposit) are the node's
/// execution rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StakingOpKind {
    /// Become a validator with `stake`, registering a RANDAO commitment.
    Join {
        /// The requested stake.
        stake: u64,
        /// The RANDAO commitment reveals will be checked against.
        randao_anchor: RandaoAnchor,
    },
    /// Change an active validator's stake.
    SetStake {
        /// The new stake.
        stake: u64,
    },
    /// Leave the validator set.
    Leave,
}

impl Encodable for StakingOpKind {
    fn encode(&self, out: &mut dyn BufMut) {
        let mut payload = Vec::new();
        match self {
            Self::Join {
                stake,
                randao_anchor,
            } => {
                0u8.encode(&mut payload);
                stake.encode(&mut payload);
                randao_anchor.encode(&mut payload);
            }
            Self::SetStake { stake } => {
                1u8.encode(&mut payload);
                stake.encode(&mut payload);
            }
            Self::Leave => 2u8.encode(&mut payload),
        }
        encode_list_payload(&payload, out);
    }

    fn length(&self) -> usize {
        encoded_length(self)
    }
}

impl Decodable for StakingOpKind {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let mut payload = take_list_payload(buf)?;
        let kind = match u8::decode(&mut payload)? {
            0 => Self::Join {
                stake: u64::decode(&mut payload)?,
                randao_anchor: RandaoAnchor::decode(&mut payload)?,
            },
            1 => Self::SetStake {
                stake: u64::decode(&mut payload)?,
            },
            2 => Self::Leave,
            _ => return Err(alloy_rlp::Error::Custom("unknown staking operation")),
        };
        finish(payload, kind)
    }
}

/// A staking operation, signed by the validator it concerns. `nonce` counts that validator's
/// operations included so far on the chain, which makes each operation single-use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct StakingOp {
    /// The chain id.
    pub chain_id: u64,
    /// The validator concerned (and signer).
    pub validator: Address,
    /// The validator's staking-operation nonce on the chain.
    pub nonce: u64,
    /// What the operation does.
    pub kind: StakingOpKind,
}

impl StakingOp {
    /// The digest the validator signs.
    pub fn signing_digest(&self) -> B256 {
        domain_digest(STAKING_DOMAIN, self)
    }
}

/// A staking operation with the validator's signature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, RlpEncodable, RlpDecodable,
)]
pub struct SignedStakingOp {
    /// The operation.
    pub op: StakingOp,
    /// The validator's signature over [`StakingOp::signing_digest`].
    pub signature: Signature,
}

impl SignedStakingOp {
    /// Signs a staking operation (the validator's own wallet action, not a consensus vote, so
    /// it needs no slashing protection).
    pub fn sign(op: StakingOp, key: &ValidatorKey) -> Self {
        Self {
            op,
            signature: key.sign(op.signing_digest()),
        }
    }

    /// Checks the signature against the operation's validator.
    pub fn verify(&self, cache: &SignatureCache) -> Result<(), ConsensusError> {
        cache.verify(self.op.signing_digest(), &self.signature, self.op.validator)
    }
}

/// Proof that a validator signed two conflicting statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// Two different proposals for one slot.
    DoubleProposal {
        /// One signed header.
        first: SignedHeader,
        /// Another signed header for the same slot by the same proposer.
        second: SignedHeader,
    },
    /// Two different votes for one target height.
    DoubleVote {
        /// One vote.
        first: SignedVote,
        /// Another vote of the same validator with the same target height.
        second: SignedVote,
    },
    /// A vote whose source-target span strictly surrounds another's (the FFG surround rule).
    SurroundVote {
        /// The surrounding vote: lower source, higher target.
        outer: SignedVote,
        /// The surrounded vote.
        inner: SignedVote,
    },
}

impl Evidence {
    /// Evidence of a double proposal, in canonical order.
    pub fn double_proposal(a: SignedHeader, b: SignedHeader) -> Self {
        let (first, second) = if a.header.signing_digest() <= b.header.signing_digest() {
            (a, b)
        } else {
            (b, a)
        };
        Self::DoubleProposal { first, second }
    }

    /// Evidence of a double vote, in canonical order.
    pub fn double_vote(a: SignedVote, b: SignedVote) -> Self {
        let (first, second) = if a.vote.signing_digest() <= b.vote.signing_digest() {
            (a, b)
        } else {
            (b, a)
        };
        Self::DoubleVote { first, second }
    }

    /// The validator the evidence accuses.
    pub fn offender(&self) -> Address {
        match self {
            Self::DoubleProposal { first, .. } => first.header.proposer,
            Self::DoubleVote { first, .. } => first.vote.validator,
            Self::SurroundVote { outer, .. } => outer.vote.validator,
        }
    }

    /// Checks that the evidence proves an equivocation on chain `chain_id`; returns the
    /// offender. Chain-dependent checks (is the offender staked, already slashed) are the
    /// engine's, at inclusion.
    pub fn verify(&self, chain_id: u64, cache: &SignatureCache) -> Result<Address, ConsensusError> {
        let invalid = |why: &str| ConsensusError::InvalidEvidence(why.to_string());
        match self {
            Self::DoubleProposal { first, second } => {
                let (a, b) = (&first.header, &second.header);
                if a.chain_id != chain_id || b.chain_id != chain_id {
                    return Err(invalid("wrong chain id"));
                }
                if a.proposer != b.proposer || a.slot != b.slot {
                    return Err(invalid("not the same proposer and slot"));
                }
                if a == b {
                    return Err(invalid("the two proposals are the same"));
                }
                first.verify(cache)?;
                second.verify(cache)?;
                Ok(a.proposer)
            }
            Self::DoubleVote { first, second } => {
                let (a, b) = (&first.vote, &second.vote);
                check_vote_pair(a, b, chain_id)?;
                if a.target.height != b.target.height {
                    return Err(invalid("target heights differ"));
                }
                if a == b {
                    return Err(invalid("the two votes are the same"));
                }
                first.verify(cache)?;
                second.verify(cache)?;
                Ok(a.validator)
            }
            Self::SurroundVote { outer, inner } => {
                let (a, b) = (&outer.vote, &inner.vote);
                check_vote_pair(a, b, chain_id)?;
                if !(a.source.height < b.source.height && b.target.height < a.target.height) {
                    return Err(invalid("the outer vote does not surround the inner one"));
                }
                outer.verify(cache)?;
                inner.verify(cache)?;
                Ok(a.validator)
            }
        }
    }

    /// A key identifying the equivocation (same offender and position ⇒ same key).
    pub fn id(&self) -> (Address, u8, u64) {
        match self {
            Self::DoubleProposal { first, .. } => (first.header.proposer, 0, first.header.slot),
            Self::DoubleVote { first, .. } => (first.vote.validator, 1, first.vote.target.height),
            Self::SurroundVote { outer, inner } => {
                (outer.vote.validator, 2, inner.vote.target.height)
            }
        }
    }
}

fn check_vote_pair(a: &Vote, b: &Vote, chain_id: u64) -> Result<(), ConsensusError> {
    if a.chain_id != chain_id || b.chain_id != chain_id {
        return Err(ConsensusError::InvalidEvidence("wrong chain id".into()));
    }
    if a.validator != b.validator {
        return Err(ConsensusError::InvalidEvidence(
            "votes of different validators".into(),
        ));
    }
    if a.target.height <= a.source.height || b.target.height <= b.source.height {
        return Err(ConsensusError::InvalidEvidence("ill-formed vote".into()));
    }
    Ok(())
}

impl Encodable for Evidence {
    fn encode(&self, out: &mut dyn BufMut) {
        let mut payload = Vec::new();
        match self {
            Self::DoubleProposal { first, second } => {
                0u8.encode(&mut payload);
                first.encode(&mut payload);
                second.encode(&mut payload);
            }
            Self::DoubleVote { first, second } => {
                1u8.encode(&mut payload);
                first.encode(&mut payload);
                second.encode(&mut payload);
            }
            Self::SurroundVote { outer, inner } => {
                2u8.encode(&mut payload);
                outer.encode(&mut payload);
                inner.encode(&mut payload);
            }
        }
        encode_list_payload(&payload, out);
    }

    fn length(&self) -> usize {
        encoded_length(self)
    }
}

impl Decodable for Evidence {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let mut payload = take_list_payload(buf)?;
        let evidence = match u8::decode(&mut payload)? {
            0 => Self::DoubleProposal {
                first: SignedHeader::decode(&mut payload)?,
                second: SignedHeader::decode(&mut payload)?,
            },
            1 => Self::DoubleVote {
                first: SignedVote::decode(&mut payload)?,
                second: SignedVote::decode(&mut payload)?,
            },
            2 => Self::SurroundVote {
                outer: SignedVote::decode(&mut payload)?,
                inner: SignedVote::decode(&mut payload)?,
            },
            _ => return Err(alloy_rlp::Error::Custom("unknown evidence kind")),
        };
        finish(payload, evidence)
    }
}

/// A consensus message as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A signed block proposal.
    Proposal(SignedProposal),
    /// A signed vote.
    Vote(SignedVote),
    /// Equivocation evidence for proposers to include.
    Evidence(Evidence),
}

impl Message {
    /// The wire encoding.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a message from the wire, refusing oversized input and trailing bytes.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, ConsensusError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(ConsensusError::Malformed("message too large".into()));
        }
        let mut buf = bytes;
        let message = Self::decode(&mut buf)?;
        if !buf.is_empty() {
            return Err(ConsensusError::Malformed("trailing bytes".into()));
        }
        Ok(message)
    }
}

impl Encodable for Message {
    fn encode(&self, out: &mut dyn BufMut) {
        let mut payload = Vec::new();
        match self {
            Self::Proposal(proposal) => {
                0u8.encode(&mut payload);
                proposal.encode(&mut payload);
            }
            Self::Vote(vote) => {
                1u8.encode(&mut payload);
                vote.encode(&mut payload);
            }
            Self::Evidence(evidence) => {
                2u8.encode(&mut payload);
                evidence.encode(&mut payload);
            }
        }
        encode_list_payload(&payload, out);
    }

    fn length(&self) -> usize {
        encoded_length(self)
    }
}

impl Decodable for Message {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        let mut payload = take_list_payload(buf)?;
        let message = match u8::decode(&mut payload)? {
            0 => Self::Proposal(SignedProposal::decode(&mut payload)?),
            1 => Self::Vote(SignedVote::decode(&mut payload)?),
            2 => Self::Evidence(Evidence::decode(&mut payload)?),
            _ => return Err(alloy_rlp::Error::Custom("unknown message kind")),
        };
        finish(payload, message)
    }
}

fn encode_list_payload(payload: &[u8], out: &mut dyn BufMut) {
    Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(out);
    out.put_slice(payload);
}

fn encoded_length<T: Encodable>(value: &T) -> usize {
    let mut out = Vec::new();
    value.encode(&mut out);
    out.len()
}

fn take_list_payload<'a>(buf: &mut &'a [u8]) -> alloy_rlp::Result<&'a [u8]> {
    let header = Header::decode(buf)?;
    if !header.list {
        return Err(alloy_rlp::Error::UnexpectedString);
    }
    // Header::decode has checked that the payload fits in the buffer.
    let payload = &buf[..header.payload_length];
    buf.advance(header.payload_length);
    Ok(payload)
}

fn finish<T>(payload: &[u8], value: T) -> alloy_rlp::Result<T> {
    if payload.is_empty() {
        Ok(value)
    } else {
        Err(alloy_rlp::Error::UnexpectedLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ValidatorKey {
        ValidatorKey::from_secret_bytes([byte; 32], 64).unwrap()
    }

    fn vote(key: &ValidatorKey, source: u64, target: u64, hash: u8) -> SignedVote {
        SignedVote::sign_unprotected(
            Vote {
                chain_id: 7,
                validator: key.address(),
                source: Checkpoint {
                    hash: B256::repeat_byte(1),
                    height: source,
                },
                target: Checkpoint {
                    hash: B256::repeat_byte(hash),
                    height: target,
                },
                target_slot: target,
            },
            key,
        )
    }

    fn proposal(key: &ValidatorKey, slot: u64, hash: u8) -> SignedProposal {
        SignedProposal::sign_unprotected(
            BlockSummary {
                chain_id: 7,
                slot,
                height: 3,
                parent: B256::repeat_byte(9),
                hash: B256::repeat_byte(hash),
                proposer: key.address(),
                randao_reveal: B256::repeat_byte(4),
                evidence: vec![],
                staking_ops: vec![],
                justification: vec![],
            },
            key,
        )
    }

    #[test]
    fn messages_round_trip() {
        let key = key(1);
        let op = SignedStakingOp::sign(
            StakingOp {
                chain_id: 7,
                validator: key.address(),
                nonce: 0,
                kind: StakingOpKind::Join {
                    stake: 5,
                    randao_anchor: key.randao_anchor(3).unwrap(),
                },
            },
            &key,
        );
        let mut block = proposal(&key, 5, 2);
        block.block.evidence = vec![Evidence::double_vote(
            vote(&key, 1, 4, 2),
            vote(&key, 1, 4, 3),
        )];
        block.block.staking_ops = vec![op];
        block.block.justification = vec![vote(&key, 0, 2, 9)];
        let messages = [
            Message::Proposal(block),
            Message::Vote(vote(&key, 0, 1, 5)),
            Message::Evidence(Evidence::SurroundVote {
                outer: vote(&key, 0, 9, 1),
                inner: vote(&key, 2, 5, 1),
            }),
        ];
        for message in messages {
            let bytes = message.encode_to_vec();
            assert_eq!(Message::decode_bytes(&bytes).unwrap(), message);
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert!(Message::decode_bytes(&trailing).is_err());
            for cut in 0..bytes.len() {
                assert!(Message::decode_bytes(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn evidence_checks() {
        let cache = SignatureCache::default();
        let (alice, bob) = (key(1), key(2));
        let ok = Evidence::double_vote(vote(&alice, 1, 4, 2), vote(&alice, 1, 4, 3));
        assert_eq!(ok.verify(7, &cache).unwrap(), alice.address());
        assert!(ok.verify(8, &cache).is_err(), "other chain");
        let same = Evidence::DoubleVote {
            first: vote(&alice, 1, 4, 2),
            second: vote(&alice, 1, 4, 2),
        };
        assert!(same.verify(7, &cache).is_err());
        let other_height = Evidence::double_vote(vote(&alice, 1, 4, 2), vote(&alice, 1, 5, 3));
        assert!(other_height.verify(7, &cache).is_err());
        let two_signers = Evidence::double_vote(vote(&alice, 1, 4, 2), vote(&bob, 1, 4, 3));
        assert!(two_signers.verify(7, &cache).is_err());
        // A forged signature: bob signs a vote that names alice.
        let mut forged = vote(&alice, 1, 4, 3);
        forged.signature = bob.sign(forged.vote.signing_digest());
        let forged = Evidence::double_vote(vote(&alice, 1, 4, 2), forged);
        assert!(matches!(
            forged.verify(7, &cache),
            Err(ConsensusError::BadSignature { .. })
        ));

        let surround = Evidence::SurroundVote {
            outer: vote(&alice, 0, 9, 1),
            inner: vote(&alice, 2, 5, 1),
        };
        assert_eq!(surround.verify(7, &cache).unwrap(), alice.address());
        let not_surround = Evidence::SurroundVote {
            outer: vote(&alice, 2, 9, 1),
            inner: vote(&alice, 2, 5, 1),
        };
        assert!(not_surround.verify(7, &cache).is_err());

        let proposals = Evidence::double_proposal(
            proposal(&bob, 5, 1).signed_header(),
            proposal(&bob, 5, 2).signed_header(),
        );
        assert_eq!(proposals.verify(7, &cache).unwrap(), bob.address());
        let other_slot = Evidence::double_proposal(
            proposal(&bob, 5, 1).signed_header(),
            proposal(&bob, 6, 2).signed_header(),
        );
        assert!(other_slot.verify(7, &cache).is_err());
        let identical = Evidence::DoubleProposal {
            first: proposal(&bob, 5, 1).signed_header(),
            second: proposal(&bob, 5, 1).signed_header(),
        };
        assert!(identical.verify(7, &cache).is_err());
    }

    #[test]
    fn body_fields_are_covered_by_the_proposal_signature() {
        let key = key(3);
        let cache = SignatureCache::default();
        let mut signed = proposal(&key, 4, 1);
        assert!(signed.signed_header().verify(&cache).is_ok());
        signed.block.randao_reveal = B256::repeat_byte(0xee);
        assert!(signed.signed_header().verify(&cache).is_err());
    }
}
