//! Building a block from candidate transactions, and checking and executing a block someone
//! else built. Both end in an [`ExecutedBlock`] that the node commits atomically.

use crate::node::{
    chain::ChainStore,
    consensus::SealPayload,
    staking::{StakingInput, StakingParams, apply_staking_rule},
};
use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use chain_consensus::{Evidence, SignatureCache, SignedStakingOp};
use chain_executor::{BlockEnv, ExecutionEnv, Executor, SkipReason, TxOutcome, tx_env};
use chain_primitives::{
    Block, ConsensusSeal, StateDiff, StoredReceipt, TxEnvelope, receipts_root, transactions_root,
};
use chain_rpc::IndexedBlock;
use chain_state::StateDb;
use std::sync::Arc;

/// Parameters of the chain that block building and validation need.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// Chain id.
    pub chain_id: u64,
    /// Slot length in milliseconds.
    pub block_time_ms: u64,
    /// Gas limit of every block.
    pub gas_limit: u64,
    /// Largest extraData accepted, in bytes (Ethereum's 32).
    pub max_extra_data: usize,
    /// What the staking rule needs of the consensus parameters.
    pub staking: StakingParams,
}

/// Most seconds a block's timestamp may be ahead of the local clock.
pub const MAX_FUTURE_SECONDS: u64 = 15;

/// A block executed against its parent state: ready to commit.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The block, its hash, senders and transaction hashes.
    pub block: Arc<IndexedBlock>,
    /// Its receipts.
    pub receipts: Arc<Vec<StoredReceipt>>,
    /// Its effect on the state.
    pub diff: StateDiff,
    /// Candidates the builder left out, with the reason (empty for imported blocks).
    pub skipped: Vec<(B256, SkipReason)>,
    /// The staking operations the block carries (when building: the candidates the staking
    /// rule accepted, which the block's consensus payload must carry).
    pub staking_ops: Vec<SignedStakingOp>,
    /// The accounts the staking rule wrote (validators debited or paid back, the rewarded
    /// proposer, the escrow): with the transactions' senders, the accounts the transaction pool
    /// re-checks after the block.
    pub staking_touched: Vec<Address>,
    /// How long execution took, in microseconds.
    pub execution_us: u64,
    /// Block-STM's statistics, when the block ran in parallel.
    pub parallel: Option<chain_executor::ParallelStats>,
}

/// Why a block is invalid. Each variant names the field or rule that failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidBlock {
    /// Not a child of the current head.
    #[error("parent hash {got} is not the head {expected}")]
    ParentHash {
        /// The head.
        expected: B256,
        /// The block's parent hash.
        got: B256,
    },
    /// Wrong number.
    #[error("number {got}, expected {expected}")]
    Number {
        /// Head + 1.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// Timestamp before the parent's or too far in the future.
    #[error(
        "timestamp {got} is before the parent's {parent} or more than {MAX_FUTURE_SECONDS}s ahead of now ({now})"
    )]
    Timestamp {
        /// The block's.
        got: u64,
        /// The parent's.
        parent: u64,
        /// The local clock.
        now: u64,
    },
    /// Gas limit not the chain's.
    #[error("gas limit {got}, expected {expected}")]
    GasLimit {
        /// The chain's.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// More gas used than the limit.
    #[error("gas used {used} exceeds the gas limit {limit}")]
    GasUsedAboveLimit {
        /// Gas used.
        used: u64,
        /// Limit.
        limit: u64,
    },
    /// Base fee differs from the EIP-1559 computation.
    #[error("base fee {got:?}, expected {expected}")]
    BaseFee {
        /// Computed from the parent.
        expected: u64,
        /// The block's.
        got: Option<u64>,
    },
    /// A header field that must be a constant is not.
    #[error("header field {field} must be {expected}")]
    ConstantField {
        /// The field.
        field: &'static str,
        /// Its required value.
        expected: &'static str,
    },
    /// extraData too long.
    #[error("extra data is {0} bytes, at most 32 allowed")]
    ExtraData(usize),
    /// The transactions root does not match the transactions.
    #[error("transactions root {got}, computed {computed}")]
    TransactionsRoot {
        /// From the transactions.
        computed: B256,
        /// The header's.
        got: B256,
    },
    /// A transaction's signature does not recover.
    #[error("transaction {index} has an invalid signature")]
    Signature {
        /// Its index.
        index: usize,
    },
    /// A transaction of a type this chain does not execute.
    #[error("transaction {index}: {reason}")]
    UnsupportedTransaction {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A transaction cannot be included (nonce, balance, gas...).
    #[error("transaction {index} is invalid: {reason}")]
    Transaction {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A root or summary of execution differs from the header.
    #[error("{field} {got}, computed {computed}")]
    ExecutionMismatch {
        /// The header field.
        field: &'static str,
        /// After execution.
        computed: String,
        /// The header's.
        got: String,
    },
    /// The proposer's signature does not verify.
    #[error("proposer signature invalid: {0}")]
    Seal(String),
    /// The seal's slot is not after the parent's (slot 0 for a parent without a seal, the
    /// genesis): the staking rule takes the block's epoch from it, which must not go back.
    #[error("seal slot {got} is not after the parent's slot {parent}")]
    SlotNotAfterParent {
        /// The parent's.
        parent: u64,
        /// The block's.
        got: u64,
    },
    /// The seal's consensus payload does not decode.
    #[error("consensus payload: {0}")]
    ConsensusPayload(String),
    /// A staking operation breaks the staking rule (bad signature or nonce, the account cannot
    /// pay the deposit, ...).
    #[error("staking operation {index} is invalid: {reason}")]
    StakingOp {
        /// Its index in the block.
        index: usize,
        /// Why.
        reason: String,
    },
    /// An evidence item does not prove an equivocation, or its offender was already slashed.
    #[error("evidence {index} is invalid: {reason}")]
    Evidence {
        /// Its index in the block.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// The base fee of the child of `parent` (EIP-1559 with Ethereum's parameters).
pub fn next_base_fee(parent: &Header) -> u64 {
    let base_fee = parent
        .base_fee_per_gas
        .unwrap_or(chain_primitives::genesis::DEFAULT_BASE_FEE);
    BaseFeeParams::ethereum().next_block_base_fee(parent.gas_used, parent.gas_limit, base_fee)
}

/// The execution environment of `header`.
pub fn block_env(spec: &ChainSpec, header: &Header) -> ExecutionEnv {
    ExecutionEnv::new(BlockEnv {
        number: header.number,
        timestamp: header.timestamp,
        base_fee: header.base_fee_per_gas.unwrap_or_default(),
        prevrandao: header.mix_hash,
        gas_limit: header.gas_limit,
        beneficiary: header.beneficiary,
        chain_id: spec.chain_id,
    })
}

/// The environment of a block built on `parent` at `timestamp` by `beneficiary`.
pub fn child_env(
    spec: &ChainSpec,
    parent: &Header,
    timestamp: u64,
    beneficiary: Address,
    prevrandao: B256,
) -> ExecutionEnv {
    ExecutionEnv::new(BlockEnv {
        number: parent.number + 1,
        timestamp,
        base_fee: next_base_fee(parent),
        prevrandao,
        gas_limit: spec.gas_limit,
        beneficiary,
        chain_id: spec.chain_id,
    })
}

fn receipt_of(outcome: &chain_executor::TxReceipt) -> StoredReceipt {
    StoredReceipt {
        tx_type: outcome.tx_type,
        success: outcome.success(),
        cumulative_gas_used: outcome.cumulative_gas_used,
        gas_used: outcome.gas_used,
        effective_gas_price: outcome.effective_gas_price,
        contract_address: outcome.contract_address.unwrap_or_default(),
        logs: outcome.logs.clone(),
    }
}

/// Checks that `slot` (a child's seal slot) is after `parent`'s seal slot (0 for the genesis,
/// whose seal is empty). Slots, hence epochs, only go up along a chain, which the staking
/// rule's release queue relies on ([`crate::node::staking`]).
///
/// The slot is not checked against the timestamp: the producer takes the timestamp from its
/// clock when it builds (at or after the slot's start, and never before the parent's), not from
/// the slot, and the chain spec does not know the genesis time; so the two are not derivable
/// from each other exactly.
pub fn check_slot(parent: &IndexedBlock, slot: u64) -> Result<(), InvalidBlock> {
    let parent_slot = parent.block.block().seal.slot;
    if slot <= parent_slot {
        return Err(InvalidBlock::SlotNotAfterParent {
            parent: parent_slot,
            got: slot,
        });
    }
    Ok(())
}

/// The randomness (`mixHash`, the EVM's `prevrandao`) of the block after `parent` whose
/// proposer revealed `reveal`: a hash of the parent's randomness and the reveal.
pub fn next_mix(parent: &Header, reveal: &[u8]) -> B256 {
    keccak256([parent.mix_hash.as_slice(), reveal].concat())
}

/// A reveal for blocks built outside the consensus engine ([`crate::node::Node::produce_block`]):
/// the proposer's signature over the slot. Blocks of the running producer carry the engine's
/// hash-chain reveal instead ([`chain_consensus::ValidatorKey::randao_reveal`]).
pub fn randao_reveal(signer: &PrivateKeySigner, chain_id: u64, slot: u64) -> Bytes {
    let message = keccak256(
        [
            b"chaind-randao".as_slice(),
            &chain_id.to_be_bytes(),
            &slot.to_be_bytes(),
        ]
        .concat(),
    );
    signer
        .sign_hash_sync(&message)
        .map(|s| Bytes::from(s.as_bytes().to_vec()))
        .unwrap_or_default()
}

/// Builds, executes and seals a block on `parent` from `candidates` (in the pool's order; the
/// builder stops adding once the next transaction's gas limit no longer fits). `reveal` is the
/// proposer's RANDAO reveal for the slot: it goes into the seal and into the block's `mixHash`.
/// The seal's `payload` is left empty (the producer fills it once consensus signed the block;
/// the seal is not part of the header hash). After the transactions the block applies the
/// staking rule ([`crate::node::staking`]) to `evidence` and the `staking_ops` candidates: the
/// ones it accepts are in [`ExecutedBlock::staking_ops`], and the payload must carry exactly
/// those and `evidence`.
#[allow(clippy::too_many_arguments)]
pub fn build_block(
    spec: &ChainSpec,
    db: &StateDb,
    executor: &Executor,
    parent: &IndexedBlock,
    candidates: Vec<(TxEnvelope, Address)>,
    timestamp: u64,
    slot: u64,
    reveal: Bytes,
    signer: &PrivateKeySigner,
    evidence: &[Evidence],
    staking_ops: &[SignedStakingOp],
) -> anyhow::Result<ExecutedBlock> {
    check_slot(parent, slot).map_err(|e| anyhow::anyhow!("cannot build this block: {e}"))?;
    let parent_header = parent.block.header();
    let env = child_env(
        spec,
        parent_header,
        timestamp,
        signer.address(),
        next_mix(parent_header, &reveal),
    );
    let mut txs = Vec::with_capacity(candidates.len());
    let mut senders = Vec::with_capacity(candidates.len());
    let mut envs = Vec::with_capacity(candidates.len());
    let mut skipped = Vec::new();
    let mut gas = 0u64;
    for (tx, sender) in candidates {
        let Ok(env) = tx_env(&tx, sender) else {
            skipped.push((
                *tx.tx_hash(),
                SkipReason::Invalid("unsupported transaction type".into()),
            ));
            continue;
        };
        if gas.saturating_add(env.gas_limit) > spec.gas_limit {
            continue;
        }
        gas += env.gas_limit;
        envs.push(env);
        txs.push(tx);
        senders.push(sender);
    }
    let started = std::time::Instant::now();
    let (output, parallel) = executor.execute(&db.reader(), &env, &envs)?;
    let execution_us = started.elapsed().as_micros() as u64;

    let mut included_txs = Vec::with_capacity(txs.len());
    let mut included_senders = Vec::with_capacity(txs.len());
    let mut receipts = Vec::with_capacity(txs.len());
    for ((tx, sender), outcome) in txs.into_iter().zip(senders).zip(&output.outcomes) {
        match outcome {
            TxOutcome::Included(receipt) => {
                receipts.push(receipt_of(receipt));
                included_txs.push(tx);
                included_senders.push(sender);
            }
            TxOutcome::Skipped(reason) => skipped.push((*tx.tx_hash(), reason.clone())),
        }
    }
    let mut diff = output.diff;
    let staking = apply_staking_rule(
        &db.reader(),
        &mut diff,
        &StakingInput {
            chain_id: spec.chain_id,
            epoch: spec.staking.epoch_of(slot),
            proposer: signer.address(),
            evidence,
            ops: staking_ops,
        },
        &spec.staking,
        &SignatureCache::default(),
        true,
    )
    .map_err(|failure| anyhow::anyhow!("staking rule: {failure}"))?;
    let state_root = db.state_root_after(&diff)?;
    let header = Header {
        parent_hash: parent.block.hash(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: signer.address(),
        state_root,
        transactions_root: transactions_root(&included_txs),
        receipts_root: receipts_root(&receipts),
        logs_bloom: output.logs_bloom,
        difficulty: U256::ZERO,
        number: parent_header.number + 1,
        gas_limit: spec.gas_limit,
        gas_used: output.gas_used,
        timestamp,
        extra_data: Bytes::from_static(b"chaind"),
        mix_hash: env.block.prevrandao,
        nonce: Default::default(),
        base_fee_per_gas: Some(env.block.base_fee),
        ..Header::default()
    };
    let hash = header.hash_slow();
    let signature = signer.sign_hash_sync(&hash)?;
    let seal = ConsensusSeal {
        slot,
        proposer: signer.address(),
        signature: Bytes::from(signature.as_bytes().to_vec()),
        randao_reveal: reveal,
        payload: Bytes::new(),
    };
    let block = Block {
        header,
        transactions: included_txs,
        seal,
    };
    let size = block.size();
    let tx_hashes = block.transactions.iter().map(|tx| *tx.tx_hash()).collect();
    Ok(ExecutedBlock {
        block: Arc::new(IndexedBlock {
            block: block.seal_slow(),
            senders: included_senders,
            tx_hashes,
            size,
        }),
        receipts: Arc::new(receipts),
        diff,
        skipped,
        staking_ops: staking.included,
        staking_touched: staking.touched,
        execution_us,
        parallel,
    })
}

/// Checks `block` against its parent (the head) and executes it. Changes nothing: the caller
/// commits the result only if this returns `Ok`.
pub fn validate_and_execute(
    spec: &ChainSpec,
    db: &StateDb,
    executor: &Executor,
    head: &IndexedBlock,
    block: Block,
    now_seconds: u64,
) -> Result<ExecutedBlock, ValidationFailure> {
    let parent = head.block.header();
    let header = &block.header;
    let invalid = |e: InvalidBlock| Err(ValidationFailure::Invalid(e));
    if header.parent_hash != head.block.hash() {
        return invalid(InvalidBlock::ParentHash {
            expected: head.block.hash(),
            got: header.parent_hash,
        });
    }
    if header.number != parent.number + 1 {
        return invalid(InvalidBlock::Number {
            expected: parent.number + 1,
            got: header.number,
        });
    }
    // Sub-second slots share a second: timestamps may repeat but never go back.
    if header.timestamp < parent.timestamp || header.timestamp > now_seconds + MAX_FUTURE_SECONDS {
        return invalid(InvalidBlock::Timestamp {
            got: header.timestamp,
            parent: parent.timestamp,
            now: now_seconds,
        });
    }
    if header.gas_limit != spec.gas_limit {
        return invalid(InvalidBlock::GasLimit {
            expected: spec.gas_limit,
            got: header.gas_limit,
        });
    }
    if header.gas_used > header.gas_limit {
        return invalid(InvalidBlock::GasUsedAboveLimit {
            used: header.gas_used,
            limit: header.gas_limit,
        });
    }
    let expected_base_fee = next_base_fee(parent);
    if header.base_fee_per_gas != Some(expected_base_fee) {
        return invalid(InvalidBlock::BaseFee {
            expected: expected_base_fee,
            got: header.base_fee_per_gas,
        });
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return invalid(InvalidBlock::ConstantField {
            field: "ommersHash",
            expected: "the empty list's hash",
        });
    }
    if !header.difficulty.is_zero() {
        return invalid(InvalidBlock::ConstantField {
            field: "difficulty",
            expected: "0",
        });
    }
    if !header.nonce.is_zero() {
        return invalid(InvalidBlock::ConstantField {
            field: "nonce",
            expected: "0",
        });
    }
    if header.withdrawals_root.is_some()
        || header.blob_gas_used.is_some()
        || header.excess_blob_gas.is_some()
        || header.parent_beacon_block_root.is_some()
        || header.requests_hash.is_some()
    {
        return invalid(InvalidBlock::ConstantField {
            field: "post-Shanghai fields",
            expected: "absent",
        });
    }
    if header.extra_data.len() > spec.max_extra_data {
        return invalid(InvalidBlock::ExtraData(header.extra_data.len()));
    }
    let computed = transactions_root(&block.transactions);
    if computed != header.transactions_root {
        return invalid(InvalidBlock::TransactionsRoot {
            computed,
            got: header.transactions_root,
        });
    }
    check_slot(head, block.seal.slot).map_err(ValidationFailure::Invalid)?;
    let hash = header.hash_slow();
    verify_seal(&block, hash).map_err(ValidationFailure::Invalid)?;
    // Blocks built outside the consensus engine carry no payload: no evidence, no operations.
    let payload = if block.seal.payload.is_empty() {
        None
    } else {
        Some(SealPayload::decode_exact(&block.seal.payload).map_err(|e| {
            ValidationFailure::Invalid(InvalidBlock::ConsensusPayload(e.to_string()))
        })?)
    };

    let senders = recover_senders(&block.transactions).map_err(ValidationFailure::Invalid)?;
    let mut envs = Vec::with_capacity(block.transactions.len());
    for (index, (tx, sender)) in block.transactions.iter().zip(&senders).enumerate() {
        match tx_env(tx, *sender) {
            Ok(env) => envs.push(env),
            Err(e) => {
                return invalid(InvalidBlock::UnsupportedTransaction {
                    index,
                    reason: e.to_string(),
                });
            }
        }
    }
    let env = block_env(spec, header);
    let started = std::time::Instant::now();
    let (output, parallel) = executor
        .execute(&db.reader(), &env, &envs)
        .map_err(|e| ValidationFailure::Internal(e.to_string()))?;
    let execution_us = started.elapsed().as_micros() as u64;
    let mut receipts = Vec::with_capacity(envs.len());
    for (index, outcome) in output.outcomes.iter().enumerate() {
        match outcome {
            TxOutcome::Included(receipt) => receipts.push(receipt_of(receipt)),
            TxOutcome::Skipped(reason) => {
                return invalid(InvalidBlock::Transaction {
                    index,
                    reason: reason.to_string(),
                });
            }
        }
    }
    let mismatch = |field: &'static str, computed: String, got: String| {
        Err(ValidationFailure::Invalid(
            InvalidBlock::ExecutionMismatch {
                field,
                computed,
                got,
            },
        ))
    };
    if output.gas_used != header.gas_used {
        return mismatch(
            "gasUsed",
            output.gas_used.to_string(),
            header.gas_used.to_string(),
        );
    }
    if output.logs_bloom != header.logs_bloom {
        return mismatch(
            "logsBloom",
            format!("{}", output.logs_bloom),
            format!("{}", header.logs_bloom),
        );
    }
    let computed_receipts = receipts_root(&receipts);
    if computed_receipts != header.receipts_root {
        return mismatch(
            "receiptsRoot",
            computed_receipts.to_string(),
            header.receipts_root.to_string(),
        );
    }
    let mut diff = output.diff;
    let (evidence, staking_ops) = payload
        .map(|payload| (payload.evidence, payload.staking_ops))
        .unwrap_or_default();
    let staking = apply_staking_rule(
        &db.reader(),
        &mut diff,
        &StakingInput {
            chain_id: spec.chain_id,
            // The slot was checked against the parent's above.
            epoch: spec.staking.epoch_of(block.seal.slot),
            proposer: block.seal.proposer,
            evidence: &evidence,
            ops: &staking_ops,
        },
        &spec.staking,
        &SignatureCache::default(),
        false,
    )?;
    let state_root = db
        .state_root_after(&diff)
        .map_err(|e| ValidationFailure::Internal(e.to_string()))?;
    if state_root != header.state_root {
        return mismatch(
            "stateRoot",
            state_root.to_string(),
            header.state_root.to_string(),
        );
    }
    let size = block.size();
    let tx_hashes = block.transactions.iter().map(|tx| *tx.tx_hash()).collect();
    Ok(ExecutedBlock {
        block: Arc::new(IndexedBlock {
            block: block.seal_slow(),
            senders,
            tx_hashes,
            size,
        }),
        receipts: Arc::new(receipts),
        diff,
        skipped: Vec::new(),
        staking_ops,
        staking_touched: staking.touched,
        execution_us,
        parallel,
    })
}

/// Why a block was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ValidationFailure {
    /// The block breaks a rule.
    #[error("invalid block: {0}")]
    Invalid(InvalidBlock),
    /// The node failed while checking it (storage); the block may be fine.
    #[error("internal error while validating: {0}")]
    Internal(String),
}

fn verify_seal(block: &Block, hash: B256) -> Result<(), InvalidBlock> {
    let signature = alloy_primitives::Signature::try_from(block.seal.signature.as_ref())
        .map_err(|e| InvalidBlock::Seal(e.to_string()))?;
    let signer = signature
        .recover_address_from_prehash(&hash)
        .map_err(|e| InvalidBlock::Seal(e.to_string()))?;
    if signer != block.seal.proposer || signer != block.header.beneficiary {
        return Err(InvalidBlock::Seal(format!(
            "signed by {signer}, proposer {} and beneficiary {}",
            block.seal.proposer, block.header.beneficiary
        )));
    }
    Ok(())
}

/// Recovers the senders of `txs` in parallel (signature recovery dominates the cost).
pub fn recover_senders(txs: &[TxEnvelope]) -> Result<Vec<Address>, InvalidBlock> {
    use alloy_consensus::transaction::SignerRecoverable;
    use rayon::prelude::*;
    txs.par_iter()
        .enumerate()
        .map(|(index, tx)| {
            tx.recover_signer()
                .map_err(|_| InvalidBlock::Signature { index })
        })
        .collect()
}

/// Commits an executed block: state, block, receipts and indexes in one atomic write.
pub fn commit(
    chain: &ChainStore,
    executed: &ExecutedBlock,
    extra: Vec<chain_state::ChainWrite>,
) -> anyhow::Result<()> {
    let mut writes = ChainStore::block_writes(&executed.block, &executed.receipts);
    writes.extend(extra);
    let number = executed.block.block.number();
    let root = chain.db().commit_block(number, &executed.diff, &writes)?;
    anyhow::ensure!(
        root == executed.block.block.header().state_root,
        "committed state root {root} differs from the block's {}",
        executed.block.block.header().state_root
    );
    chain.cache(executed.block.clone(), executed.receipts.clone());
    Ok(())
}
