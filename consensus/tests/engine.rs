//! The engine on hand-made inputs: checks on receipt (signatures, eligibility, RANDAO, time,
//! finality), evidence handling, slashing protection across restarts, weak subjectivity, and
//! garbage that must never panic.

use alloy_primitives::{Address, B256, keccak256};
use chain_consensus::{
    Action, BlockSummary, Checkpoint, ConsensusConfig, ConsensusEngine, ConsensusError, Event,
    Evidence, Genesis, GenesisValidator, Message, SignedProposal, SignedVote,
    SlashingProtectionRecord, TrustedCheckpoint, ValidatorKey, Vote,
};
use proptest::prelude::*;

const CHAIN_ID: u64 = 9;
const SLOT_MS: u64 = 1_000;

struct Fixture {
    config: ConsensusConfig,
    genesis: Genesis,
    keys: Vec<ValidatorKey>,
}

fn fixture() -> Fixture {
    let keys: Vec<ValidatorKey> = (1..=4u8)
        .map(|i| ValidatorKey::from_secret_bytes([i; 32], 256).unwrap())
        .collect();
    let genesis = Genesis {
        hash: keccak256(b"genesis"),
        validators: keys
            .iter()
            .map(|key| GenesisValidator {
                address: key.address(),
                stake: 10,
                randao_anchor: key.randao_anchor(0).unwrap(),
            })
            .collect(),
    };
    let mut config = ConsensusConfig::new(CHAIN_ID, 0, SLOT_MS);
    config.epoch_slots = 4;
    Fixture {
        config,
        genesis,
        keys,
    }
}

impl Fixture {
    /// An engine without a key (an observer), ticked to `slot`.
    fn observer(&self, slot: u64) -> ConsensusEngine {
        let mut engine = ConsensusEngine::new(
            self.config.clone(),
            &self.genesis,
            None,
            SlashingProtectionRecord::default(),
        )
        .unwrap();
        engine.handle(Event::Tick {
            now_ms: slot * SLOT_MS,
        });
        engine
    }

    fn key_of(&self, address: Address) -> &ValidatorKey {
        self.keys
            .iter()
            .find(|key| key.address() == address)
            .unwrap()
    }

    /// A valid block for `slot` on `parent`, signed by the proposer drawn for it.
    fn block(&self, engine: &ConsensusEngine, parent: Checkpoint, slot: u64) -> SignedProposal {
        let epoch = self.config.epoch_of(slot);
        let state = engine
            .chain_state(parent.hash)
            .unwrap()
            .advanced_to(epoch, &self.config);
        let proposer = state.proposer_for(slot).unwrap();
        let key = self.key_of(proposer);
        let summary = BlockSummary {
            chain_id: CHAIN_ID,
            slot,
            height: parent.height + 1,
            parent: parent.hash,
            hash: keccak256([parent.hash.as_slice(), &slot.to_be_bytes()].concat()),
            proposer,
            randao_reveal: key.randao_reveal(epoch).unwrap(),
            evidence: vec![],
            staking_ops: vec![],
            justification: vec![],
        };
        SignedProposal::sign_unprotected(summary, key)
    }

    /// Hands a block to the engine and answers its validation request.
    fn deliver_block(&self, engine: &mut ConsensusEngine, block: &SignedProposal) -> Vec<Action> {
        let (mut actions, verdict) =
            engine.handle_with_verdict(Event::BlockReceived(block.clone()));
        verdict.unwrap();
        assert!(actions.contains(&Action::ValidateBlock {
            hash: block.block.hash
        }));
        actions.extend(engine.handle(Event::BlockValidated {
            hash: block.block.hash,
            valid: true,
        }));
        actions
    }

    fn vote(&self, key: usize, source: Checkpoint, target: &SignedProposal) -> SignedVote {
        SignedVote::sign_unprotected(
            Vote {
                chain_id: CHAIN_ID,
                validator: self.keys[key].address(),
                source,
                target: target.block.checkpoint(),
                target_slot: target.block.slot,
            },
            &self.keys[key],
        )
    }
}

fn genesis_checkpoint(fixture: &Fixture) -> Checkpoint {
    Checkpoint {
        hash: fixture.genesis.hash,
        height: 0,
    }
}

#[test]
fn valid_block_is_accepted_and_becomes_head() {
    let f = fixture();
    let mut engine = f.observer(1);
    let block = f.block(&engine, genesis_checkpoint(&f), 1);
    let actions = f.deliver_block(&mut engine, &block);
    assert!(actions.contains(&Action::HeadChanged {
        head: block.block.checkpoint()
    }));
    assert_eq!(engine.head(), block.block.checkpoint());
}

#[test]
fn forged_or_ineligible_proposals_are_refused() {
    let f = fixture();
    let mut engine = f.observer(1);
    let good = f.block(&engine, genesis_checkpoint(&f), 1);

    // Signed by someone else than the named proposer.
    let impostor = f
        .keys
        .iter()
        .find(|k| k.address() != good.block.proposer)
        .unwrap();
    let forged = SignedProposal::sign_unprotected(good.block.clone(), impostor);
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(forged));
    assert!(matches!(verdict, Err(ConsensusError::BadSignature { .. })));

    // Properly signed by a validator that was not drawn for the slot.
    let mut ineligible = good.block.clone();
    ineligible.proposer = impostor.address();
    ineligible.hash = B256::repeat_byte(0x11);
    ineligible.randao_reveal = impostor.randao_reveal(0).unwrap();
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(
        SignedProposal::sign_unprotected(ineligible, impostor),
    ));
    assert!(matches!(verdict, Err(ConsensusError::WrongProposer { .. })));

    // A wrong RANDAO reveal (another epoch's).
    let key = f.key_of(good.block.proposer);
    let mut bad_reveal = good.block.clone();
    bad_reveal.hash = B256::repeat_byte(0x12);
    bad_reveal.randao_reveal = key.randao_reveal(5).unwrap();
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(
        SignedProposal::sign_unprotected(bad_reveal, key),
    ));
    assert!(matches!(verdict, Err(ConsensusError::BadRandaoReveal(_))));

    // A non-validator's block on a known parent: not drawn for the slot.
    let stranger = ValidatorKey::from_secret_bytes([77; 32], 16).unwrap();
    let mut foreign = good.block.clone();
    foreign.proposer = stranger.address();
    foreign.hash = B256::repeat_byte(0x13);
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(
        SignedProposal::sign_unprotected(foreign, &stranger),
    ));
    assert!(matches!(verdict, Err(ConsensusError::WrongProposer { .. })));

    // From too far in the future, and for another chain.
    let later = f.block(&engine, genesis_checkpoint(&f), 5);
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(later));
    assert!(matches!(verdict, Err(ConsensusError::FromTheFuture { .. })));
    let mut other_chain = good.block.clone();
    other_chain.chain_id = CHAIN_ID + 1;
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(
        SignedProposal::sign_unprotected(other_chain, key),
    ));
    assert!(matches!(verdict, Err(ConsensusError::WrongChainId { .. })));

    // The genuine block still goes through, and the node's verdict "invalid" sticks.
    let (actions, verdict) = engine.handle_with_verdict(Event::BlockReceived(good.clone()));
    verdict.unwrap();
    assert!(actions.contains(&Action::ValidateBlock {
        hash: good.block.hash
    }));
    engine.handle(Event::BlockValidated {
        hash: good.block.hash,
        valid: false,
    });
    assert!(engine.is_invalid(good.block.hash));
    assert!(!engine.knows_block(good.block.hash));
}

#[test]
fn votes_are_checked_and_two_chain_finalizes() {
    let f = fixture();
    let mut engine = f.observer(3);
    let genesis = genesis_checkpoint(&f);
    let first = f.block(&engine, genesis, 1);
    f.deliver_block(&mut engine, &first);
    let second = f.block(&engine, first.block.checkpoint(), 2);
    f.deliver_block(&mut engine, &second);

    // A forged vote (signed by another key) and a vote of a stranger are refused.
    let mut forged = f.vote(0, genesis, &first);
    forged.signature = f.keys[1].sign_unprotected(forged.vote.signing_digest());
    let (_, verdict) = engine.handle_with_verdict(Event::VoteReceived(forged));
    assert!(matches!(verdict, Err(ConsensusError::BadSignature { .. })));
    let stranger = ValidatorKey::from_secret_bytes([78; 32], 16).unwrap();
    let mut vote = f.vote(0, genesis, &first).vote;
    vote.validator = stranger.address();
    let (_, verdict) = engine.handle_with_verdict(Event::VoteReceived(
        SignedVote::sign_unprotected(vote, &stranger),
    ));
    assert!(matches!(verdict, Err(ConsensusError::NotAValidator(_))));

    // Three of four (75% > 2/3) justify the first block; not yet final.
    for key in 0..3 {
        engine.handle(Event::VoteReceived(f.vote(key, genesis, &first)));
    }
    assert_eq!(engine.justified(), first.block.checkpoint());
    assert_eq!(engine.finalized(), genesis);
    // Two of four on the child with the first as source: not enough.
    for key in 0..2 {
        engine.handle(Event::VoteReceived(f.vote(
            key,
            first.block.checkpoint(),
            &second,
        )));
    }
    assert_eq!(engine.finalized(), genesis);
    // The third makes the two-chain: the first block is final.
    let actions = engine.handle(Event::VoteReceived(f.vote(
        2,
        first.block.checkpoint(),
        &second,
    )));
    assert!(actions.contains(&Action::Finalized {
        block: first.block.checkpoint()
    }));
    assert_eq!(engine.finalized(), first.block.checkpoint());
    assert_eq!(engine.justified(), second.block.checkpoint());
}

#[test]
fn double_vote_becomes_evidence_and_is_proposed() {
    let f = fixture();
    let genesis = genesis_checkpoint(&f);
    let mut engine = f.observer(1);
    let block = f.block(&engine, genesis, 1);
    f.deliver_block(&mut engine, &block);
    let mut other = block.clone();
    other.block.hash = B256::repeat_byte(0x33);
    let first = f.vote(3, genesis, &block);
    let second = f.vote(3, genesis, &other);
    engine.handle(Event::VoteReceived(first));
    let actions = engine.handle(Event::VoteReceived(second));
    let expected = Evidence::double_vote(first, second);
    assert!(actions.contains(&Action::Broadcast(Message::Evidence(expected))));
    assert_eq!(
        engine.pending_evidence().copied().collect::<Vec<_>>(),
        vec![expected]
    );

    // A validator whose turn comes proposes it. Find a slot where key 0 proposes.
    let mut proposer = ConsensusEngine::new(
        f.config.clone(),
        &f.genesis,
        Some(f.keys[0].clone()),
        SlashingProtectionRecord::default(),
    )
    .unwrap();
    proposer.handle(Event::Tick { now_ms: 0 });
    proposer.handle(Event::EvidenceReceived(expected));
    let mut proposed = None;
    for slot in 1..40 {
        for action in proposer.handle(Event::Tick {
            now_ms: slot * SLOT_MS,
        }) {
            if let Action::ProposeBlock { evidence, .. } = action {
                proposed = Some(evidence);
            }
        }
        if proposed.is_some() {
            break;
        }
    }
    assert_eq!(proposed, Some(vec![expected]));

    // Forged evidence against an honest validator is refused.
    let mut forged_second = f.vote(2, genesis, &other);
    forged_second.signature = f.keys[3].sign_unprotected(forged_second.vote.signing_digest());
    let forged = Evidence::double_vote(f.vote(2, genesis, &block), forged_second);
    let (_, verdict) = engine.handle_with_verdict(Event::EvidenceReceived(forged));
    assert!(verdict.is_err());
}

#[test]
fn double_proposal_is_detected() {
    let f = fixture();
    let mut engine = f.observer(1);
    let block = f.block(&engine, genesis_checkpoint(&f), 1);
    f.deliver_block(&mut engine, &block);
    let mut twin = block.block.clone();
    twin.hash = B256::repeat_byte(0x44);
    let twin = SignedProposal::sign_unprotected(twin, f.key_of(block.block.proposer));
    let actions = engine.handle(Event::BlockReceived(twin.clone()));
    let expected = Evidence::double_proposal(block.signed_header(), twin.signed_header());
    assert!(actions.contains(&Action::Broadcast(Message::Evidence(expected))));
}

/// A validator restarted with its persisted record refuses to vote again at heights it
/// already voted for, even though its fresh engine remembers nothing else.
#[test]
fn slashing_protection_survives_restart() {
    let f = fixture();
    let genesis = genesis_checkpoint(&f);
    let start = |record| {
        let mut engine = ConsensusEngine::new(
            f.config.clone(),
            &f.genesis,
            Some(f.keys[0].clone()),
            record,
        )
        .unwrap();
        engine.handle(Event::Tick { now_ms: SLOT_MS });
        engine
    };
    let mut engine = start(SlashingProtectionRecord::default());
    let observer = f.observer(1);
    let block = f.block(&observer, genesis, 1);
    let mut actions = f.deliver_block(&mut engine, &block);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Vote(_)))),
        "no vote before the vote deadline"
    );
    actions.extend(engine.handle(Event::Tick {
        now_ms: SLOT_MS + f.config.vote_deadline_ms,
    }));
    let persisted = actions
        .iter()
        .find_map(|a| match a {
            Action::PersistSlashingProtection(record) => Some(record.clone()),
            _ => None,
        })
        .expect("voted");
    let persist_index = actions
        .iter()
        .position(|a| matches!(a, Action::PersistSlashingProtection(_)));
    let vote_index = actions
        .iter()
        .position(|a| matches!(a, Action::Broadcast(Message::Vote(_))));
    assert!(persist_index < vote_index, "persist before sending");
    assert_eq!(persisted.last_target_height, Some(1));

    // Restart with the record; a competing block at height 1 arrives: no vote.
    let mut restarted = start(persisted);
    let mut competitor = block.block.clone();
    competitor.hash = B256::repeat_byte(0x55);
    let competitor = SignedProposal::sign_unprotected(competitor, f.key_of(block.block.proposer));
    let mut actions = f.deliver_block(&mut restarted, &competitor);
    actions.extend(restarted.handle(Event::Tick {
        now_ms: SLOT_MS + f.config.vote_deadline_ms,
    }));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Broadcast(Message::Vote(_))))
    );
    // A record of another key is refused outright.
    let foreign = SlashingProtectionRecord::new(f.keys[1].address());
    assert!(
        ConsensusEngine::new(
            f.config.clone(),
            &f.genesis,
            Some(f.keys[0].clone()),
            foreign
        )
        .is_err()
    );
}

/// Started from a trusted checkpoint, the engine refuses anything at or below it and never
/// connects a branch that does not contain it.
#[test]
fn trusted_checkpoint_refuses_conflicting_chains() {
    let f = fixture();
    let genesis = genesis_checkpoint(&f);
    let mut builder = f.observer(4);
    let a1 = f.block(&builder, genesis, 1);
    f.deliver_block(&mut builder, &a1);
    let a2 = f.block(&builder, a1.block.checkpoint(), 2);
    f.deliver_block(&mut builder, &a2);
    // A conflicting branch from genesis.
    let b1 = f.block(&builder, genesis, 3);
    f.deliver_block(&mut builder, &b1);
    let b2 = f.block(&builder, b1.block.checkpoint(), 4);

    let checkpoint = TrustedCheckpoint {
        block: a2.block.checkpoint(),
        slot: a2.block.slot,
        state: builder.chain_state(a2.block.hash).unwrap().clone(),
    };
    let mut engine = ConsensusEngine::from_checkpoint(
        f.config.clone(),
        checkpoint,
        None,
        SlashingProtectionRecord::default(),
    )
    .unwrap();
    engine.handle(Event::Tick {
        now_ms: 4 * SLOT_MS,
    });
    assert_eq!(engine.finalized(), a2.block.checkpoint());
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(a1));
    assert!(matches!(
        verdict,
        Err(ConsensusError::ConflictsWithFinalized { .. })
    ));
    // b2 (height 2 on the other branch) is at the checkpoint's height: refused.
    let (_, verdict) = engine.handle_with_verdict(Event::BlockReceived(b2.clone()));
    assert!(matches!(
        verdict,
        Err(ConsensusError::ConflictsWithFinalized { .. })
    ));
    assert!(!engine.knows_block(b2.block.hash));
    // Its descendant waits for an ancestor that can never be accepted.
    let mut b3 = b2.block.clone();
    b3.parent = b2.block.hash;
    b3.height = 3;
    b3.slot = 4;
    b3.hash = B256::repeat_byte(0x66);
    let b3 = SignedProposal::sign_unprotected(b3, f.key_of(b2.block.proposer));
    let actions = engine.handle(Event::BlockReceived(b3.clone()));
    assert!(actions.contains(&Action::RequestBlock {
        hash: b2.block.hash
    }));
    assert!(!engine.knows_block(b3.block.hash));
    assert_eq!(engine.finalized(), a2.block.checkpoint());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary bytes never make decoding panic; when they decode, the engine handles them
    /// without panicking.
    #[test]
    fn garbage_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let f = fixture();
        let mut engine = f.observer(2);
        if let Ok(message) = Message::decode_bytes(&bytes) {
            let _ = engine.handle(Event::from(message));
        }
    }

    /// Well-formed messages with random fields (heights, slots, hashes, signatures) are
    /// refused or ignored, never a panic, and never move finality.
    #[test]
    fn random_well_formed_messages_never_panic(
        height in 0u64..1_000,
        slot in 0u64..1_000,
        source in 0u64..1_000,
        hash in any::<[u8; 32]>(),
        r in any::<[u8; 32]>(),
        s in any::<[u8; 32]>(),
        v in 0u8..4,
        which in 0u8..3,
    ) {
        let f = fixture();
        let mut engine = f.observer(2);
        let signature = chain_consensus::Signature { r: B256::from(r), s: B256::from(s), v };
        let checkpoint = Checkpoint { hash: B256::from(hash), height };
        let event = match which {
            0 => Event::VoteReceived(SignedVote {
                vote: Vote {
                    chain_id: CHAIN_ID,
                    validator: f.keys[0].address(),
                    source: Checkpoint { hash: B256::from(hash), height: source },
                    target: checkpoint,
                    target_slot: slot,
                },
                signature,
            }),
            1 => Event::BlockReceived(SignedProposal {
                block: BlockSummary {
                    chain_id: CHAIN_ID,
                    slot,
                    height,
                    parent: B256::from(hash),
                    hash: B256::from(r),
                    proposer: f.keys[1].address(),
                    randao_reveal: B256::from(s),
                    evidence: vec![],
                    staking_ops: vec![],
                    justification: vec![],
                },
                signature,
            }),
            _ => Event::BlockValidated { hash: B256::from(hash), valid: v % 2 == 0 },
        };
        let _ = engine.handle(event);
        prop_assert_eq!(engine.finalized(), genesis_checkpoint(&f));
    }
}
