//! Proof-of-stake consensus for chaind as a deterministic, sans-IO state machine: the
//! [`ConsensusEngine`] takes [`Event`]s (clock ticks, proposals, votes, evidence, and the node's
//! answers about blocks it built or re-executed) and returns [`Action`]s (propose, broadcast,
//! validate, fetch, persist, head changes and reorgs, finality, slashing). It knows blocks only
//! as [`BlockSummary`]s (hash, parent, height, slot, proposer, RANDAO reveal, evidence, staking
//! operations, justification votes); transactions and EVM state are the node's business. The
//! other main types are [`ConsensusConfig`], [`Genesis`] and [`TrustedCheckpoint`] (where a
//! chain starts), [`ValidatorKey`] and [`SlashingProtectionRecord`] (what a validator keeps),
//! [`ChainState`] and [`ValidatorSet`] (per-chain consensus state), and the signed messages
//! [`SignedProposal`], [`SignedVote`], [`SignedStakingOp`], [`Evidence`] in a [`Message`]. The
//! `sim` feature adds a deterministic multi-node simulator that checks the properties below
//! over many random seeds.
//!
//! # Driving the engine
//!
//! The node owns all I/O: it feeds events, executes the returned actions in order, and answers
//! the engine's requests with more events. A one-validator chain (what `chaind dev` runs):
//!
//! ```
//! use chain_consensus::*;
//! use alloy_primitives::{keccak256, B256};
//!
//! let key = ValidatorKey::from_secret_bytes([7; 32], 1_000).unwrap();
//! let genesis = Genesis {
//!     hash: keccak256(b"genesis"),
//!     validators: vec![GenesisValidator {
//!         address: key.address(),
//!         stake: 1,
//!         randao_anchor: key.randao_anchor(0).unwrap(),
//!     }],
//! };
//! let config = ConsensusConfig::new(1337, 0, 1_000);
//! let record = SlashingProtectionRecord::new(key.address()); // or the persisted one
//! let mut engine = ConsensusEngine::new(config, &genesis, Some(key), record).unwrap();
//!
//! // Ticks at every slot start and vote deadline (half a slot in).
//! for now_ms in (1_000..=10_500).step_by(500) {
//!     let mut events = vec![Event::Tick { now_ms }];
//!     while let Some(event) = events.pop() {
//!         for action in engine.handle(event) {
//!             match action {
//!                 // Build and execute the block, then hand back its summary.
//!                 Action::ProposeBlock { slot, parent, randao_reveal, evidence, justification } => {
//!                     let mut block = BlockSummary {
//!                         chain_id: 1337,
//!                         slot,
//!                         height: parent.height + 1,
//!                         parent: parent.hash,
//!                         hash: B256::ZERO,
//!                         proposer: engine.validator().unwrap(),
//!                         randao_reveal,
//!                         evidence,
//!                         staking_ops: vec![],
//!                         justification,
//!                     };
//!                     block.hash = keccak256(block.body_digest()); // the node's header hash
//!                     events.push(Event::BlockBuilt(block));
//!                 }
//!                 Action::PersistSlashingProtection(_record) => { /* write it durably first */ }
//!                 Action::Broadcast(_message) => { /* gossip it */ }
//!                 Action::Finalized { block } => assert!(block.height >= 1),
//!                 _ => {}
//!             }
//!         }
//!     }
//! }
//! // Ten slots: a block per slot, each final once its child has its vote.
//! assert_eq!(engine.head().height, 10);
//! assert_eq!(engine.finalized().height, 9);
//! ```
//!
//! # The rules
//!
//! **Slots and proposers.** Time is cut into slots of `block_time_ms`, grouped into epochs of
//! `epoch_slots`. The proposer of a slot is drawn from the validator set of the slot's epoch
//! with probability proportional to stake, from `keccak(seed ‖ slot)`. The seed of epoch `e` is
//! the chain's RANDAO mix at the end of epoch `e - 2`; every block mixes in its proposer's
//! reveal (`mix' = keccak(mix ‖ reveal ‖ slot)`), so no single proposer chooses who follows.
//! Reveals are hash-onion elements, one per validator and epoch, checked against a commitment
//! registered with the validator ([`RandaoAnchor`]); an ECDSA signature over the slot would
//! not do, because ECDSA is not a unique signature scheme and a proposer could grind nonces.
//! *Residual bias:* a proposer can withhold its block (and reveal), choosing between two seeds
//! per slot it controls at the end of the seed window, at the cost of its slot; and a
//! validator knows its own future reveals (as in Ethereum). If a proposer is offline or
//! withholds, its slot stays empty and the chain goes on.
//!
//! **Blocks.** A proposal is signed (secp256k1, low-s) over (chain id, slot, height, parent,
//! block hash, proposer, digest of the consensus body fields). On receipt the engine checks,
//! before any costly work: chain id, height in `1..=slot`, slot not more than
//! `max_future_slots` ahead of the local clock, not below the finalized block; then the
//! signature; then, once the parent is known: height = parent + 1, slot after the parent's,
//! the proposer drawn for the slot on the parent's chain, the RANDAO reveal, the evidence and
//! the staking operations. (A proposer this node does not know yet may have joined on a chain
//! it has not caught up with, so such blocks wait for their parent like any other; the network
//! layer's per-peer limits bound what that costs.) Then the node re-executes it ([`Action::ValidateBlock`]); only a
//! block the node calls valid enters the tree. Missing parents are fetched
//! ([`Action::RequestBlock`]).
//!
//! **Votes, justification, finality (Casper FFG on heights; a two-chain rule).** A vote names a
//! *source* (the voter's highest justified block) and a *target* (its fork-choice head, a
//! descendant of the source). A block is *justified* when it is the root (genesis or the
//! trusted checkpoint), or validators with more than 2/3 of its epoch's stake voted for it with
//! justified sources that are its ancestors (rule J1). A justified block `B` is *finalized*
//! when more than 2/3 of stake voted with source `B` for a direct child `C` of `B`: votes on a
//! block and its direct child. In the normal case a block is final one slot after its own.
//! Blocks also carry the votes that justify their proposer's justified block, so the knowledge
//! of justification travels with the chain; and a node that missed votes (restart, partition)
//! infers that a block is justified when more than 1/3 of stake used it as a source (rule J2:
//! such a group contains an honest validator, and honest validators use only justified
//! sources), or fetches the votes ([`Action::RequestVotes`]).
//!
//! **Voting rules (the locks).** An honest validator signs a vote only if its target height is
//! above every target it signed before (never two votes at one height) and its source height is
//! at least every source it signed before (its lock: it never votes from a justified block
//! lower than one it already voted from, so it never votes against a branch it helped
//! justify). These two watermarks, kept in the [`SlashingProtectionRecord`] and persisted
//! before anything signed leaves the node ([`Action::PersistSlashingProtection`] comes first),
//! exclude both slashable patterns (double votes and surround votes) even across crashes. A
//! proposal is signed only for a slot above every slot proposed before. Validators vote for a
//! block of the current slot at the vote deadline (`vote_deadline_ms` into the slot), when its
//! parent's votes and any competing block of the slot have arrived. After starting from a
//! stale checkpoint a validator listens for `sync_slots` slots before signing anything.
//!
//! **Fork choice.** Among descendants of the finalized block: start at the highest justified
//! block (ties to the lowest hash), then repeatedly step to the child whose subtree holds the
//! most stake of validators' latest votes (LMD-GHOST), ties to the lowest hash; validators
//! known to have equivocated weigh nothing (their "latest vote" is not one vote). A head change
//! to a non-descendant is a [`Action::Reorg`] with the common ancestor, which is never below
//! the finalized block: finalized blocks are never reverted, and blocks at or below the
//! finalized height, or not descending from it, are refused (long-range protection). A node can
//! start from a [`TrustedCheckpoint`] instead of genesis (weak subjectivity).
//!
//! **Slashing.** Evidence is two different signed proposals for one slot, two different votes
//! for one target height, or a surround vote, by one validator. Any node that sees both halves
//! broadcasts the evidence (and re-sends what is pending once per epoch); any proposer includes
//! pending evidence (one per offender), and evidence found in received blocks joins the pool
//! too. Both halves of a double vote count toward justification (each is a signed statement;
//! counting only the first seen would let an equivocator split the nodes' views). The block
//! that includes it slashes `slash_fraction_bps` of the offender's stake, pays
//! `reporter_reward_bps` of that to the including proposer, and ejects the offender from the set
//! at the next epoch boundary; it can never rejoin. The node applies the balance effects in the
//! including block's own state transition (see "Validator-set changes" below), so a reorg that
//! drops the block drops them too; [`Action::Slash`] reports the slashing once the block is
//! final.
//!
//! **Validator-set changes.** Decision: staking operations are transactions of their own kind,
//! [`SignedStakingOp`]s (join with a stake and a RANDAO commitment, change stake, leave), signed
//! by the validator, single-use through a per-validator nonce, carried in the block body (the
//! node asks [`ConsensusEngine::includable_staking_ops`] which ones a block may carry and
//! applies deposit and withdrawal balance effects with a system rule). Consensus records the
//! requested stakes; at each epoch boundary `k → k + 1` the set of epoch `k + 2` is the set of
//! `k + 1` with requests applied, at most `churn_limit_bps` of total stake per epoch. So a
//! change takes effect one to two epochs after its block, and the sets of two forks drift apart
//! by a bounded amount per epoch.
//!
//! *Balance effects* (chaind's system rule, `src/node/staking.rs`; this crate only weighs stake).
//! The node applies them after a block's transactions, identically when it builds the block and
//! when it imports one, so the block's state root covers them; they depend only on the state,
//! the block's epoch and proposer, and its evidence and staking operations.
//! - Deposits are held by a fixed escrow account, `0x000000000000000000000000000000005374616b`,
//!   whose storage is the staking ledger (per validator: operation nonce, bonded units, units
//!   being released and when, slashed flag; and a queue of releases). One stake unit is
//!   `WEI_PER_STAKE_UNIT` = 1 gwei, the unit the node counts genesis stakes in.
//! - A `Join`, or a `SetStake` above the validator's committed stake (bonded minus being
//!   released), debits the difference × 1 gwei from the validator's account into the escrow in
//!   the including block. An operation whose account lacks the balance is not includable: the
//!   builder leaves it out, and a block carrying it is invalid.
//! - A `Leave`, or a `SetStake` below the committed stake, releases the difference, which the
//!   escrow pays back with the first block of epoch `e + UNBONDING_EPOCHS` (4; `e` the epoch of
//!   the operation's block) or later. The deposit stays slashable meanwhile: the stake leaves the
//!   set one to two epochs after the operation, and evidence is includable only while its
//!   offender is in the set.
//! - Evidence burns `slash_fraction_bps` of the offender's bonded units (including those being
//!   released) from the escrow and pays `reporter_reward_bps` of the burned amount to the
//!   including proposer: the fractions of [`SlashRecord`], taken of the escrowed bond rather than
//!   of the consensus stake (the two are equal once a deposit is fully phased in). The rest of
//!   the bond is released after `UNBONDING_EPOCHS`.
//! - Genesis stakes are granted by the genesis, not escrowed: a genesis validator has no bond
//!   (it pays in full for a raise, gets nothing back when it leaves, loses nothing when slashed).
//!
//! # Safety argument
//!
//! Claim: with one validator set and less than 1/3 of its stake Byzantine, no two conflicting
//! blocks are ever finalized. Let `B` be finalized at height `h` through `(B → C)` votes, and
//! suppose some justified block conflicts with `B` at height `≥ h`; take the lowest, `J`.
//! - `h(J) = h`: the > 2/3 who voted for `B` and the > 2/3 who voted for `J` share > 1/3 of
//!   stake, who voted twice at height `h`.
//! - `h(J) = h + 1`: the same with the `(B → C)` voters and `C`.
//! - `h(J) > h + 1`: `J`'s voters and the `(B → C)` voters share > 1/3 of stake. Each such
//!   voter's source `S` for `J` is a justified ancestor of `J`. If `h(S) < h`, its vote
//!   `(S → J)` surrounds `(B → C)`. If `h(S) ≥ h`, `S` is a justified block conflicting with `B`
//!   (it is an ancestor of `J`, and not `B`, or `J` would descend from `B`) below `J`,
//!   contradicting the choice of `J`.
//!
//! So some validators with > 1/3 of stake signed a double or a surround vote, which the
//! watermarks above forbid to honest ones: a contradiction. Hence every justified block at
//! height `≥ h` descends from `B`, and a finalized block (justified) conflicting with `B` would
//! have to be below `h`, where the same argument with the roles swapped applies. Rule J2 only
//! ever marks blocks justified that rule J1 justified somewhere (an honest validator used them
//! as source), so the argument is unchanged. Fork choice and timing never enter it: they
//! matter only for liveness.
//!
//! With 1/3 or more Byzantine stake this fails, as it must: a validator with 34% running its
//! key on both sides of a split between two honest 33% validators finalizes two branches (a
//! simulator test shows it; the double votes identify it).
//!
//! **Liveness** (informally): once the network delivers within the vote deadline and honest
//! validators with more than 2/3 of stake are online, honest proposers extend the fork-choice
//! head, latest votes spread (validators re-send their latest vote when they did not vote in
//! the last slot), and two consecutive honest blocks whose votes arrive in time finalize the
//! first. Validators whose last vote was higher on an abandoned branch wait until the new
//! branch passes that height: the delay after a partition heals is bounded by the partition's
//! length in slots. Byzantine proposers can only leave their slots empty or equivocate (and be
//! ejected).
//!
//! # Known limits
//!
//! - The safety argument is for one validator set. Votes count with the set of the target's
//!   epoch on the target's chain; forks that cross an epoch boundary with different staking
//!   operations count different sets. The activation lag, the churn limit and the refusal of
//!   chains that conflict with the finalized block bound the drift (the tolerated Byzantine
//!   share shrinks by the churn between the sets), as in Ethereum; a node offline for long must
//!   start from a recent trusted checkpoint.
//! - Rule J2 trades accountability for recovery: with 1/3 or more Byzantine stake, a safety
//!   failure is no longer guaranteed to expose 1/3 of stake to slashing.
//! - An equivocation whose two halves never reach one honest node cannot be detected.
//! - A RANDAO hash chain covers a fixed number of epochs; a validator re-registers (leave and
//!   join) before it runs out.
//! - The unbonding delay is a fixed number of epochs, not tied to when the churn limit lets a
//!   leave complete: a validator whose exit is held back for longer than the delay gets its
//!   deposit back while it still has stake (and could still be slashed, for nothing).
//! - The node (`chaind`) keeps staking state twice: consensus's (the validator sets, stake
//!   requests and staking-operation nonces, in its engine and in `consensus-checkpoint.json`)
//!   and the escrow ledger in the EVM state (nonces, bonds, releases). A validator restarted
//!   without `consensus-checkpoint.json` rebuilds consensus from the genesis validators
//!   (moved to the finalized block's epoch) and replays only the blocks above its finalized
//!   block, while the ledger keeps every nonce and bond. Validators that joined in the blocks
//!   it did not replay are then unknown to consensus, and every validator whose operations
//!   were not replayed has a consensus nonce behind its ledger nonce: no operation of theirs
//!   satisfies both, so they cannot change their stake or leave, and their deposits stay in
//!   the escrow, for good. This is not supported: keep the checkpoint file (it is rewritten at
//!   every finalization; back it up with the data directory).
//! - Genesis stakes are granted by the genesis, not escrowed: a genesis validator's committed
//!   stake in the ledger is zero, so its `SetStake` pays the whole new stake into the escrow,
//!   even when the new stake is lower than its genesis stake (lowering it costs ether), and
//!   its `Leave` pays nothing back.

/// Protocol parameters, genesis and trusted checkpoints.
pub mod config;
/// secp256k1 signatures, validator keys and RANDAO hash chains.
pub mod crypto;
/// The consensus engine: events in, actions out.
pub mod engine;
/// The crate's error type.
pub mod error;
/// The slashing-protection record.
pub mod protection;
/// The deterministic simulator (feature `sim`).
#[cfg(feature = "sim")]
pub mod sim;
/// Validator sets, proposer selection and the per-chain consensus state.
pub mod state;
/// Signed statements and their wire encoding.
pub mod types;

pub use config::{ConsensusConfig, Genesis, GenesisValidator, TrustedCheckpoint};
pub use crypto::{RandaoAnchor, Signature, SignatureCache, ValidatorKey};
pub use engine::{Action, ConsensusEngine, Event};
pub use error::ConsensusError;
pub use protection::SlashingProtectionRecord;
pub use state::{ChainState, SlashRecord, ValidatorSet};
pub use types::{
    BlockSummary, Checkpoint, Evidence, MAX_MESSAGE_BYTES, Message, ProposalHeader, SignedHeader,
    SignedProposal, SignedStakingOp, SignedVote, StakingOp, StakingOpKind, Vote,
};
