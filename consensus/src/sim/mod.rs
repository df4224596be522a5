//! A deterministic simulator: `n` validators running [`crate::ConsensusEngine`]s in one
//! process, on a simulated clock and network, under faults and a Byzantine adversary; with
//! checkers for safety, liveness, slashing and finality of reorgs.
//!
//! What a [`Scenario`](crate::sim::Scenario) injects:
//! - **network**: every hop has a uniform random delay (so messages reorder), may be lost or
//!   delivered twice; partitions cut links (in flight too) and heal; originators send to every
//!   peer, receivers relay to a few random peers only what their engine accepted (gossip with
//!   validation); block requests return up to 32 ancestors (block sync), vote requests return
//!   justification proofs; node clocks may be skewed;
//! - **nodes**: honest nodes crash (possibly right after persisting their slashing-protection
//!   record and before sending what they signed) and restart from the persisted record and
//!   their last finalized checkpoint, reloading the blocks of their database; observers may
//!   join as validators, validators change stake or leave (staking operations in blocks);
//! - **adversary** (less than 1/3 of stake): double proposals to two halves of the network,
//!   double votes, surround votes, votes for random (conflicting) blocks, withheld or late
//!   blocks, blocks with invalid execution, garbage (random bytes, truncated or bit-flipped
//!   messages, forged signatures, ineligible proposals, far-future votes, forged evidence),
//!   silence, and one key run on two nodes.
//!
//! What the run checks: no two honest nodes ever finalize different blocks at one height, and
//! each node's finality only extends; no reorg reverts a finalized block; once nothing is
//! partitioned or down, every honest node finalizes past the level of that moment within
//! `liveness_bound_slots`; every equivocation that reached an honest node ends with its author
//! slashed in a finalized block; no honest validator is ever slashed; slashing-protection
//! records only move forward.
//!
//! Everything random comes from the scenario's seed, so a failing seed replays exactly
//! (`SIM_TRACE=1` prints every node's view at every slot).

mod scenario;
mod world;

pub use scenario::{ByzantineBehaviour, Crash, Partition, Scenario, StakingChange, StakingEvent};
pub use world::{SimReport, SimStats, run};
