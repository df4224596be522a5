use alloy_primitives::{Address, B256};

/// Why the consensus engine refused an input. Every rejection of outside input (a peer's
/// message, a block the node hands in, a persisted record) is one of these; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// The bytes are not a well-formed message (RLP error, unknown tag, trailing bytes, too big).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message was signed for another chain.
    #[error("wrong chain id {got}, this chain is {expected}")]
    WrongChainId {
        /// The chain id in the message.
        got: u64,
        /// This engine's chain id.
        expected: u64,
    },
    /// The signature is not a valid low-s secp256k1 signature, or recovers to someone else.
    #[error("bad signature: expected signer {expected}")]
    BadSignature {
        /// The address the message claims as its signer.
        expected: Address,
    },
    /// The signer is not a validator with stake where the message needs one.
    #[error("{0} is not a validator here")]
    NotAValidator(Address),
    /// The block's proposer is not the one drawn for its slot on its parent's chain.
    #[error("{got} may not propose slot {slot}; the drawn proposer is {expected}")]
    WrongProposer {
        /// The slot of the block.
        slot: u64,
        /// The proposer the block names.
        got: Address,
        /// The proposer drawn for that slot on the parent's chain.
        expected: Address,
    },
    /// The RANDAO reveal does not hash to the proposer's registered commitment.
    #[error("bad RANDAO reveal from {0}")]
    BadRandaoReveal(Address),
    /// Height, slot or parent linkage of a block is inconsistent.
    #[error("inconsistent block: {0}")]
    InconsistentBlock(String),
    /// The block or vote is for a slot too far in the future for the local clock.
    #[error("slot {slot} is in the future (now slot {now})")]
    FromTheFuture {
        /// The slot of the input.
        slot: u64,
        /// The local current slot.
        now: u64,
    },
    /// The input is at or below the finalized height, or does not descend from the finalized
    /// block: accepting it would revert finality (long-range protection).
    #[error("conflicts with the finalized block at height {finalized_height}")]
    ConflictsWithFinalized {
        /// The local finalized height.
        finalized_height: u64,
    },
    /// The block was already judged invalid (by the engine or the node's re-execution), or
    /// descends from such a block.
    #[error("block {0} is invalid")]
    InvalidBlock(B256),
    /// An evidence item does not prove an equivocation, or cannot be applied on this chain.
    #[error("invalid evidence: {0}")]
    InvalidEvidence(String),
    /// A staking operation is ill-formed or not applicable on this chain.
    #[error("invalid staking operation: {0}")]
    InvalidStakingOp(String),
    /// A vote is ill-formed (target not above source, ...).
    #[error("invalid vote: {0}")]
    InvalidVote(String),
    /// The node reported a built block that does not match what the engine asked for.
    #[error("built block does not match the requested proposal: {0}")]
    UnexpectedBuiltBlock(String),
    /// The local slashing-protection record forbids signing this.
    #[error("slashing protection refuses to sign: {0}")]
    SlashingProtection(String),
    /// A buffer of pending inputs is full; the input was dropped.
    #[error("buffer full: {0}")]
    BufferFull(&'static str),
    /// The configuration, genesis or checkpoint is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl From<alloy_rlp::Error> for ConsensusError {
    fn from(error: alloy_rlp::Error) -> Self {
        Self::Malformed(error.to_string())
    }
}
