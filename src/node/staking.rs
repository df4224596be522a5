//! Staking in the EVM state: the system rule that moves deposits between validators' accounts
//! and the staking escrow, and the pool of staking operations waiting for a block.
//!
//! # The rule
//!
//! Consensus ([`chain_consensus`]) decides who validates with what stake; this rule makes the
//! stake cost ether. It runs after a block's transactions, in [`apply_staking_rule`], which both
//! the builder and the importer call ([`crate::node::execution`]), so the block's state root
//! covers its effects and a block whose root omits them is invalid. It is a deterministic
//! function of the state after the transactions, the block's epoch (its seal's slot over
//! `epoch_slots`), its proposer, and the evidence and staking operations of its consensus
//! payload: it needs no consensus state, so any node that can execute the block can check it.
//!
//! - Deposits sit in the escrow account [`STAKING_ESCROW`]; one stake unit (what consensus
//!   weighs) is [`WEI_PER_STAKE_UNIT`] wei (1 gwei: the node counts genesis stakes in gwei too). The escrow's storage is the ledger (layout in [`slots`]): per
//!   validator its operation nonce, the units it has bonded, the units being released and when,
//!   and whether it was slashed; and a FIFO queue of releases.
//! - The validator's *committed* stake is `bonded - unbonding`. A `Join` or `SetStake` to a
//!   stake above it debits the difference × [`WEI_PER_STAKE_UNIT`] from the validator's account
//!   into the escrow at once; an operation whose account lacks that balance is not includable
//!   (the builder leaves it out, an imported block carrying it is invalid).
//! - A `Leave`, or a `SetStake` below the committed stake, starts releasing the difference: it
//!   is paid back to the validator by the first block of epoch `e + `[`UNBONDING_EPOCHS`]
//!   (`e` the epoch of the operation's block) or later. Until then it stays in the escrow and
//!   can be slashed: consensus moves the stake out of the validator set one to two epochs after
//!   the operation (longer when the churn limit holds it back), and evidence is includable only
//!   while the offender is in the set, so the delay outlasts the validator's slashability in all
//!   but churn-limited exits (see the known limits in the consensus crate).
//! - Evidence included in a block burns `slash_fraction_bps` of the offender's bonded units
//!   (bonded includes what is being released) and pays `reporter_reward_bps` of the burned
//!   amount to the block's proposer, the fractions consensus uses; the rest of the burned ether
//!   leaves the supply. The offender's remaining bond is released after [`UNBONDING_EPOCHS`]
//!   (consensus ejects it and it can never rejoin); evidence against an offender already
//!   slashed makes the block invalid.
//! - Operations and evidence are checked for what the rule needs without consensus state
//!   (chain id, signatures, the ledger's nonce, balance); consensus checks the rest before a
//!   block enters its tree. The ledger nonce counts the same included operations as consensus's
//!   nonce, so the two agree on every chain that went through the engine.
//!
//! Genesis validators' stakes are granted by the genesis, not escrowed: their committed stake
//! in the ledger starts at zero, so a genesis validator raising its stake pays for the whole new
//! stake, and a genesis validator leaving gets nothing back (and, with no bond, loses nothing
//! when slashed). Ether sent to the escrow by transactions is locked there for good.
//!
//! Order within a block: transactions, then evidence, then staking operations (in the block's
//! order), then due releases.

use alloy_primitives::{Address, B256, U256, address, keccak256};
use chain_consensus::{Evidence, SignatureCache, SignedStakingOp, StakingOpKind};
use chain_primitives::{Account, StateDiff, StateReader};
use std::collections::BTreeMap;

use crate::node::execution::{InvalidBlock, ValidationFailure};

/// The account that holds staking deposits. No key or code controls it: only the staking
/// rule moves its ether.
pub const STAKING_ESCROW: Address = address!("0x000000000000000000000000000000005374616b");

/// Wei per unit of consensus stake (1 gwei).
pub const WEI_PER_STAKE_UNIT: u64 = 1_000_000_000;

/// Epochs after the block of a stake decrease, a leave or a slashing before the released
/// deposit is paid back.
pub const UNBONDING_EPOCHS: u64 = 4;

/// Most staking operations the pool keeps.
pub const MAX_POOLED_STAKING_OPS: usize = 1_024;

/// Largest encoded staking operation accepted from outside, in bytes.
pub const MAX_STAKING_OP_BYTES: usize = 1_024;

/// The consensus parameters the rule uses: they must be the chain's, like the rest of
/// [`crate::node::execution::ChainSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StakingParams {
    /// Slots per epoch.
    pub epoch_slots: u64,
    /// Fraction of the offender's bond burned per evidence, in basis points.
    pub slash_fraction_bps: u32,
    /// Fraction of the burned amount paid to the including proposer, in basis points.
    pub reporter_reward_bps: u32,
    /// Most evidence items a block may carry.
    pub max_evidence_per_block: usize,
    /// Most staking operations a block may carry.
    pub max_staking_ops_per_block: usize,
}

impl StakingParams {
    /// The parameters of a consensus configuration.
    pub fn of(config: &chain_consensus::ConsensusConfig) -> Self {
        Self {
            epoch_slots: config.epoch_slots,
            slash_fraction_bps: config.slash_fraction_bps,
            reporter_reward_bps: config.reporter_reward_bps,
            max_evidence_per_block: config.max_evidence_per_block,
            max_staking_ops_per_block: config.max_staking_ops_per_block,
        }
    }

    /// The epoch of `slot`.
    pub fn epoch_of(&self, slot: u64) -> u64 {
        slot / self.epoch_slots.max(1)
    }
}

/// The storage layout of the ledger in [`STAKING_ESCROW`]'s storage.
pub mod slots {
    use super::*;

    /// The validator's staking-operation nonce.
    pub const NONCE: u8 = 0;
    /// Units the validator has in the escrow (including those being released).
    pub const BONDED: u8 = 1;
    /// Units being released.
    pub const UNBONDING: u8 = 2;
    /// The epoch from which the units being released are paid back.
    pub const RELEASE_EPOCH: u8 = 3;
    /// 1 once the validator was slashed.
    pub const SLASHED: u8 = 4;

    /// The slot of a validator's `field`: `keccak256("chaind/staking" ‖ validator ‖ field)`.
    pub fn validator(validator: Address, field: u8) -> U256 {
        let mut input = b"chaind/staking".to_vec();
        input.extend_from_slice(validator.as_slice());
        input.push(field);
        U256::from_be_bytes(keccak256(input).0)
    }

    /// The index of the release queue's first entry.
    pub fn queue_head() -> U256 {
        U256::from_be_bytes(keccak256(b"chaind/staking/queue-head").0)
    }

    /// The index after the release queue's last entry.
    pub fn queue_tail() -> U256 {
        U256::from_be_bytes(keccak256(b"chaind/staking/queue-tail").0)
    }

    /// Entry `index` of the release queue: `release_epoch << 160 | validator`.
    pub fn queue_entry(index: u64) -> U256 {
        let mut input = b"chaind/staking/queue".to_vec();
        input.extend_from_slice(&index.to_be_bytes());
        U256::from_be_bytes(keccak256(input).0)
    }
}

/// A validator's entry in the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StakingAccount {
    /// The nonce its next staking operation must carry.
    pub nonce: u64,
    /// Units it has in the escrow, including those being released.
    pub bonded: u64,
    /// Units being released.
    pub unbonding: u64,
    /// The epoch from which they are paid back (0 when nothing is being released).
    pub release_epoch: u64,
    /// Whether it was slashed.
    pub slashed: bool,
}

impl StakingAccount {
    /// The stake it has paid for and not asked back.
    pub fn committed(&self) -> u64 {
        self.bonded.saturating_sub(self.unbonding)
    }
}

/// Reads a validator's ledger entry from a state.
pub fn staking_account<R: StateReader>(
    state: &R,
    validator: Address,
) -> Result<StakingAccount, R::Error> {
    let read = |field| {
        state
            .storage(&STAKING_ESCROW, &slots::validator(validator, field))
            .map(saturating_u64)
    };
    Ok(StakingAccount {
        nonce: read(slots::NONCE)?,
        bonded: read(slots::BONDED)?,
        unbonding: read(slots::UNBONDING)?,
        release_epoch: read(slots::RELEASE_EPOCH)?,
        slashed: read(slots::SLASHED)? != 0,
    })
}

fn saturating_u64(value: U256) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `units` stake units in wei.
pub fn units_to_wei(units: u64) -> U256 {
    U256::from(units) * U256::from(WEI_PER_STAKE_UNIT)
}

/// The consensus part of a block that the rule applies.
#[derive(Clone, Copy, Debug)]
pub struct StakingInput<'a> {
    /// The chain id operations and evidence must be signed for.
    pub chain_id: u64,
    /// The block's epoch.
    pub epoch: u64,
    /// The block's proposer (earns the reporter rewards).
    pub proposer: Address,
    /// Evidence the block includes.
    pub evidence: &'a [Evidence],
    /// Staking operations the block includes (or, when building, the candidates).
    pub ops: &'a [SignedStakingOp],
}

/// What the rule did to a block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StakingOutcome {
    /// The operations applied, in order (when building: the candidates that were includable).
    pub included: Vec<SignedStakingOp>,
    /// Wei moved from validators into the escrow.
    pub deposited: U256,
    /// Wei paid back from the escrow.
    pub released: U256,
    /// Wei burned by slashing (reporter rewards excluded).
    pub burned: U256,
    /// Wei paid to the proposer as reporter rewards.
    pub rewarded: U256,
    /// The accounts whose record the rule wrote (validators debited or paid back, the
    /// proposer rewarded, the escrow), in address order: the transaction pool re-checks them.
    pub touched: Vec<Address>,
}

/// Applies the staking rule of the block described by `input` on top of `diff` (the block's
/// transactions' effect on `state`), adding its effects to `diff`. When `building`, an
/// operation that breaks the rule is left out (and not in [`StakingOutcome::included`]);
/// otherwise it makes the block invalid. Evidence that breaks the rule is an error either way
/// (the consensus engine only hands the builder evidence it checked).
pub fn apply_staking_rule<R: StateReader>(
    state: &R,
    diff: &mut StateDiff,
    input: &StakingInput<'_>,
    params: &StakingParams,
    cache: &SignatureCache,
    building: bool,
) -> Result<StakingOutcome, ValidationFailure> {
    // Bounds the signature checks a block can cost (consensus has the same limits).
    if input.evidence.len() > params.max_evidence_per_block {
        return Err(ValidationFailure::Invalid(InvalidBlock::Evidence {
            index: params.max_evidence_per_block,
            reason: "too many evidence items".into(),
        }));
    }
    let ops = if building {
        &input.ops[..input.ops.len().min(params.max_staking_ops_per_block)]
    } else if input.ops.len() > params.max_staking_ops_per_block {
        return Err(ValidationFailure::Invalid(InvalidBlock::StakingOp {
            index: params.max_staking_ops_per_block,
            reason: "too many staking operations".into(),
        }));
    } else {
        input.ops
    };
    let mut ledger = Ledger::new(state, &*diff);
    let mut outcome = StakingOutcome::default();
    for (index, evidence) in input.evidence.iter().enumerate() {
        ledger
            .slash(evidence, index, input, params, cache, &mut outcome)
            .map_err(LedgerError::into_rule_failure)?;
    }
    for (index, op) in ops.iter().enumerate() {
        let checkpoint = ledger.checkpoint();
        match ledger.apply_op(op, input, cache, &mut outcome) {
            Ok(()) => outcome.included.push(*op),
            Err(LedgerError::Rule(reason)) if building => {
                tracing::debug!(validator = %op.op.validator, %reason, "staking operation not includable");
                ledger.restore(checkpoint);
            }
            Err(LedgerError::Rule(reason)) => {
                return Err(ValidationFailure::Invalid(InvalidBlock::StakingOp {
                    index,
                    reason,
                }));
            }
            Err(failure) => return Err(failure.into_rule_failure()),
        }
    }
    ledger
        .release_due(input.epoch, &mut outcome)
        .map_err(LedgerError::into_rule_failure)?;
    let writes = ledger.finish().map_err(LedgerError::into_rule_failure)?;
    outcome.touched = writes.accounts.keys().copied().collect();
    writes.write_into(diff);
    Ok(outcome)
}

/// Why one step of the rule failed.
enum LedgerError {
    /// A staking operation breaks the rule.
    Rule(String),
    /// Evidence breaks the rule (index, reason).
    Evidence(usize, String),
    /// Reading the state failed, or the escrow holds less than its ledger says.
    Internal(String),
}

impl LedgerError {
    /// The failure outside an operation (operation failures carry the operation's index and
    /// are mapped where it is known).
    fn into_rule_failure(self) -> ValidationFailure {
        match self {
            Self::Evidence(index, reason) => {
                ValidationFailure::Invalid(InvalidBlock::Evidence { index, reason })
            }
            Self::Rule(reason) | Self::Internal(reason) => ValidationFailure::Internal(reason),
        }
    }
}

/// The accounts and escrow slots the rule touched, over the state after the transactions.
struct Ledger<'a, R> {
    state: &'a R,
    base: &'a StateDiff,
    accounts: BTreeMap<Address, Account>,
    storage: BTreeMap<U256, U256>,
}

/// A copy of the ledger's writes, to undo an operation the builder leaves out.
type LedgerCheckpoint = (BTreeMap<Address, Account>, BTreeMap<U256, U256>);

impl<'a, R: StateReader> Ledger<'a, R> {
    fn new(state: &'a R, base: &'a StateDiff) -> Self {
        Self {
            state,
            base,
            accounts: BTreeMap::new(),
            storage: BTreeMap::new(),
        }
    }

    fn checkpoint(&self) -> LedgerCheckpoint {
        (self.accounts.clone(), self.storage.clone())
    }

    fn restore(&mut self, (accounts, storage): LedgerCheckpoint) {
        self.accounts = accounts;
        self.storage = storage;
    }

    fn account(&self, address: Address) -> Result<Account, LedgerError> {
        if let Some(account) = self.accounts.get(&address) {
            return Ok(*account);
        }
        if let Some(update) = self.base.accounts.get(&address) {
            return Ok(update.info.unwrap_or_default());
        }
        self.state
            .account(&address)
            .map(Option::unwrap_or_default)
            .map_err(|e| LedgerError::Internal(e.to_string()))
    }

    fn read(&self, slot: U256) -> Result<U256, LedgerError> {
        if let Some(value) = self.storage.get(&slot) {
            return Ok(*value);
        }
        if let Some(update) = self.base.accounts.get(&STAKING_ESCROW) {
            if let Some(value) = update.storage.get(&slot) {
                return Ok(*value);
            }
            if update.storage_cleared || update.info.is_none() {
                return Ok(U256::ZERO);
            }
        }
        self.state
            .storage(&STAKING_ESCROW, &slot)
            .map_err(|e| LedgerError::Internal(e.to_string()))
    }

    fn read_u64(&self, slot: U256) -> Result<u64, LedgerError> {
        self.read(slot).map(saturating_u64)
    }

    fn write(&mut self, slot: U256, value: u64) {
        self.storage.insert(slot, U256::from(value));
    }

    fn get(&self, validator: Address, field: u8) -> Result<u64, LedgerError> {
        self.read_u64(slots::validator(validator, field))
    }

    /// `validator`'s ledger entry as the block has left it so far.
    fn staking_account(&self, validator: Address) -> Result<StakingAccount, LedgerError> {
        Ok(StakingAccount {
            nonce: self.get(validator, slots::NONCE)?,
            bonded: self.get(validator, slots::BONDED)?,
            unbonding: self.get(validator, slots::UNBONDING)?,
            release_epoch: self.get(validator, slots::RELEASE_EPOCH)?,
            slashed: self.get(validator, slots::SLASHED)? != 0,
        })
    }

    fn set(&mut self, validator: Address, field: u8, value: u64) {
        self.write(slots::validator(validator, field), value);
    }

    /// Credits `wei` to `address`. Nothing for 0 wei: the rule must not write an account it
    /// does not change, which would create an empty one (EIP-161 forbids them).
    fn add_balance(&mut self, address: Address, wei: U256) -> Result<(), LedgerError> {
        if wei.is_zero() {
            return Ok(());
        }
        let mut account = self.account(address)?;
        account.balance = account.balance.saturating_add(wei);
        self.accounts.insert(address, account);
        Ok(())
    }

    /// Takes `wei` from `address`; `None` if its balance is short. Nothing for 0 wei (see
    /// [`Ledger::add_balance`]).
    fn take_balance(&mut self, address: Address, wei: U256) -> Result<Option<()>, LedgerError> {
        if wei.is_zero() {
            return Ok(Some(()));
        }
        let mut account = self.account(address)?;
        let Some(balance) = account.balance.checked_sub(wei) else {
            return Ok(None);
        };
        account.balance = balance;
        self.accounts.insert(address, account);
        Ok(Some(()))
    }

    fn take_from_escrow(&mut self, wei: U256) -> Result<(), LedgerError> {
        self.take_balance(STAKING_ESCROW, wei)?.ok_or_else(|| {
            LedgerError::Internal(format!(
                "the staking escrow holds less than the {wei} wei its ledger owes"
            ))
        })
    }

    /// Queues the release of everything `validator` has unbonding at `release_epoch`.
    fn queue_release(&mut self, validator: Address, release_epoch: u64) -> Result<(), LedgerError> {
        self.set(validator, slots::RELEASE_EPOCH, release_epoch);
        let tail = self.read_u64(slots::queue_tail())?;
        let entry =
            (U256::from(release_epoch) << 160usize) | U256::from_be_slice(validator.as_slice());
        self.storage.insert(slots::queue_entry(tail), entry);
        self.write(slots::queue_tail(), tail.saturating_add(1));
        Ok(())
    }

    fn slash(
        &mut self,
        evidence: &Evidence,
        index: usize,
        input: &StakingInput<'_>,
        params: &StakingParams,
        cache: &SignatureCache,
        outcome: &mut StakingOutcome,
    ) -> Result<(), LedgerError> {
        let offender = evidence
            .verify(input.chain_id, cache)
            .map_err(|e| LedgerError::Evidence(index, e.to_string()))?;
        if self.get(offender, slots::SLASHED)? != 0 {
            return Err(LedgerError::Evidence(
                index,
                format!("{offender} was already slashed"),
            ));
        }
        let bonded = self.get(offender, slots::BONDED)?;
        let burned = (u128::from(bonded) * u128::from(params.slash_fraction_bps) / 10_000) as u64;
        let reward = (u128::from(burned) * u128::from(params.reporter_reward_bps) / 10_000) as u64;
        self.take_from_escrow(units_to_wei(burned))?;
        self.add_balance(input.proposer, units_to_wei(reward))?;
        outcome.burned += units_to_wei(burned - reward);
        outcome.rewarded += units_to_wei(reward);
        let remaining = bonded - burned;
        self.set(offender, slots::SLASHED, 1);
        self.set(offender, slots::BONDED, remaining);
        self.set(offender, slots::UNBONDING, remaining);
        if remaining > 0 {
            self.queue_release(offender, input.epoch.saturating_add(UNBONDING_EPOCHS))?;
        } else {
            self.set(offender, slots::RELEASE_EPOCH, 0);
        }
        Ok(())
    }

    fn apply_op(
        &mut self,
        signed: &SignedStakingOp,
        input: &StakingInput<'_>,
        cache: &SignatureCache,
        outcome: &mut StakingOutcome,
    ) -> Result<(), LedgerError> {
        let rule = |rejection: StakingOpRejection| LedgerError::Rule(rejection.to_string());
        check_origin(signed, input.chain_id, cache).map_err(rule)?;
        let validator = signed.op.validator;
        let account = self.staking_account(validator)?;
        let balance = self.account(validator)?.balance;
        match check_on_ledger(signed, &account, balance).map_err(rule)? {
            StakeChange::Deposit { units } => {
                let wei = units_to_wei(units);
                if self.take_balance(validator, wei)?.is_none() {
                    return Err(LedgerError::Internal(format!(
                        "{validator} could pay {wei} wei a moment ago"
                    )));
                }
                self.add_balance(STAKING_ESCROW, wei)?;
                let bonded = account.bonded.checked_add(units).ok_or_else(|| {
                    LedgerError::Rule("the validator's bond would overflow".to_string())
                })?;
                self.set(validator, slots::BONDED, bonded);
                outcome.deposited += wei;
            }
            StakeChange::Release { units } => {
                self.set(validator, slots::UNBONDING, account.unbonding + units);
                self.queue_release(validator, input.epoch.saturating_add(UNBONDING_EPOCHS))?;
            }
            StakeChange::Unchanged => {}
        }
        self.set(validator, slots::NONCE, account.nonce.saturating_add(1));
        Ok(())
    }

    /// Pays back the releases due at `epoch`, oldest first. An entry whose validator's release
    /// moved later (a second decrease, merged into the first) is skipped: the later entry pays
    /// both.
    ///
    /// Stopping at the first entry not yet due is sound because queue entries are in
    /// release-epoch order: every entry is queued at its block's epoch plus the constant
    /// [`UNBONDING_EPOCHS`] (saturating, which keeps the order), and a block's epoch is its
    /// seal's slot over `epoch_slots`, where the slot is strictly greater than the parent's
    /// (import refuses any other block, [`InvalidBlock::SlotNotAfterParent`], and the builder
    /// refuses to build one). So epochs never go down along a chain, and neither do the queued
    /// release epochs.
    fn release_due(&mut self, epoch: u64, outcome: &mut StakingOutcome) -> Result<(), LedgerError> {
        let mut head = self.read_u64(slots::queue_head())?;
        let tail = self.read_u64(slots::queue_tail())?;
        let start = head;
        while head < tail {
            let entry = self.read(slots::queue_entry(head))?;
            let release_epoch = saturating_u64(entry >> 160usize);
            if release_epoch > epoch {
                break;
            }
            let mask = U256::MAX >> 96usize;
            let word: [u8; 32] = (entry & mask).to_be_bytes();
            let validator = Address::from_slice(&word[12..]);
            self.storage.insert(slots::queue_entry(head), U256::ZERO);
            head += 1;
            if self.get(validator, slots::RELEASE_EPOCH)? != release_epoch {
                continue;
            }
            let unbonding = self.get(validator, slots::UNBONDING)?;
            let bonded = self.get(validator, slots::BONDED)?;
            let units = unbonding.min(bonded);
            let wei = units_to_wei(units);
            self.take_from_escrow(wei)?;
            self.add_balance(validator, wei)?;
            outcome.released += wei;
            self.set(validator, slots::BONDED, bonded - units);
            self.set(validator, slots::UNBONDING, 0);
            self.set(validator, slots::RELEASE_EPOCH, 0);
        }
        if head != start {
            self.write(slots::queue_head(), head);
        }
        Ok(())
    }

    /// The touched accounts and escrow slots, to add to the block's diff.
    fn finish(mut self) -> Result<LedgerWrites, LedgerError> {
        if !self.storage.is_empty() {
            // The escrow must exist to hold storage. Its nonce is set to 1 so that it is never
            // "empty" under EIP-161 (a transaction touching an empty account deletes it, and
            // its storage, the ledger, with it).
            let mut escrow = self.account(STAKING_ESCROW)?;
            escrow.nonce = escrow.nonce.max(1);
            self.accounts.insert(STAKING_ESCROW, escrow);
        }
        Ok(LedgerWrites {
            accounts: self.accounts,
            escrow_storage: self.storage,
        })
    }
}

/// What the rule writes: account records, and the escrow's storage slots.
struct LedgerWrites {
    accounts: BTreeMap<Address, Account>,
    escrow_storage: BTreeMap<U256, U256>,
}

impl LedgerWrites {
    fn write_into(self, diff: &mut StateDiff) {
        let mut storage = self.escrow_storage;
        for (address, account) in self.accounts {
            let update = diff.accounts.entry(address).or_default();
            update.info = Some(account);
            if address == STAKING_ESCROW {
                update.storage.append(&mut storage);
            }
        }
    }
}

/// Staking operations waiting for a block: at most one per validator, carrying the validator's
/// next nonce, served in validator order.
///
/// An operation enters only if it could go into the next block as far as the head's state
/// tells: signature, chain id, the ledger's next nonce (not a later one: those could not be
/// checked against the balance or consensus, and would sit in the pool for good), a validator
/// not slashed, a join of a validator with nothing committed, and a balance that pays the
/// deposit. The node also asks consensus before pooling ([`crate::node::Node`]'s
/// `send_staking_op`). A new operation of a validator with one pooled, for the same nonce,
/// replaces it, so a stuck operation can be replaced. The pool never holds more than
/// [`MAX_POOLED_STAKING_OPS`] validators' operations.
///
/// Nothing stays for good: every new head drops what it made unincludable ([`Self::prune`]),
/// and the block producer drops what consensus or the staking rule refuses although its nonce
/// is the next one ([`Self::drop_refused`]).
#[derive(Debug, Default)]
pub struct StakingOpPool {
    ops: parking_lot::Mutex<BTreeMap<Address, SignedStakingOp>>,
}

/// Why the pool refused a staking operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StakingOpRejection {
    /// The bytes are not an RLP-encoded signed staking operation.
    #[error("malformed staking operation: {0}")]
    Malformed(String),
    /// The operation is signed for another chain.
    #[error("staking operation for chain {got}, this is chain {expected}")]
    WrongChain {
        /// The operation's.
        got: u64,
        /// This chain's.
        expected: u64,
    },
    /// The signature does not verify against the operation's validator.
    #[error("invalid staking operation signature: {0}")]
    BadSignature(String),
    /// The nonce was already used on the chain.
    #[error("staking operation nonce too low: {got}, next is {next}")]
    NonceTooLow {
        /// The operation's.
        got: u64,
        /// The validator's next.
        next: u64,
    },
    /// The nonce is ahead of the validator's next: operations are pooled one at a time, the
    /// next once the one before is on the chain.
    #[error("staking operation nonce too high: {got}, next is {next}")]
    NonceTooHigh {
        /// The operation's.
        got: u64,
        /// The validator's next.
        next: u64,
    },
    /// The validator was slashed and can never stake again.
    #[error("validator {0} was slashed")]
    Slashed(Address),
    /// A join of a validator that has stake committed in the escrow.
    #[error("validator {validator} already has {committed} units committed")]
    AlreadyCommitted {
        /// The validator.
        validator: Address,
        /// Its committed units.
        committed: u64,
    },
    /// The validator's account cannot pay the deposit (checked against the latest state; the
    /// block that includes the operation checks again).
    #[error("insufficient funds for the deposit: balance {balance} wei, deposit {deposit} wei")]
    InsufficientFunds {
        /// The account's balance.
        balance: U256,
        /// What the operation would debit.
        deposit: U256,
    },
    /// This very operation is already pooled.
    #[error("already known")]
    AlreadyKnown,
    /// The pool is full.
    #[error("staking operation pool is full")]
    PoolFull,
    /// The state could not be read.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Decodes an RLP-encoded signed staking operation from outside, refusing oversized input and
/// trailing bytes.
pub fn decode_staking_op(raw: &[u8]) -> Result<SignedStakingOp, StakingOpRejection> {
    if raw.len() > MAX_STAKING_OP_BYTES {
        return Err(StakingOpRejection::Malformed("too large".into()));
    }
    let mut buf = raw;
    let op = <SignedStakingOp as alloy_rlp::Decodable>::decode(&mut buf)
        .map_err(|e| StakingOpRejection::Malformed(e.to_string()))?;
    if !buf.is_empty() {
        return Err(StakingOpRejection::Malformed("trailing bytes".into()));
    }
    Ok(op)
}

/// What an operation that passed [`check_on_ledger`] does to its validator's stake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StakeChange {
    /// The stake rises by `units`: that many units' worth of ether goes into the escrow.
    Deposit { units: u64 },
    /// The stake falls by `units`, paid back after the unbonding delay.
    Release { units: u64 },
    /// The stake stays (a `SetStake` to the committed stake).
    Unchanged,
}

/// Whether `op` comes from its validator for this chain: the chain id and the signature.
fn check_origin(
    op: &SignedStakingOp,
    chain_id: u64,
    cache: &SignatureCache,
) -> Result<(), StakingOpRejection> {
    if op.op.chain_id != chain_id {
        return Err(StakingOpRejection::WrongChain {
            got: op.op.chain_id,
            expected: chain_id,
        });
    }
    op.verify(cache)
        .map_err(|e| StakingOpRejection::BadSignature(e.to_string()))
}

/// The rule's checks of `op` against its validator's ledger entry `account` and account
/// `balance`: the next nonce, not slashed, a join only with nothing committed, the deposit
/// affordable. The rule applies operations with it, and the pool admits and keeps them with it,
/// so that the two cannot disagree.
fn check_on_ledger(
    op: &SignedStakingOp,
    account: &StakingAccount,
    balance: U256,
) -> Result<StakeChange, StakingOpRejection> {
    let validator = op.op.validator;
    if account.slashed {
        return Err(StakingOpRejection::Slashed(validator));
    }
    let (got, next) = (op.op.nonce, account.nonce);
    if got < next {
        return Err(StakingOpRejection::NonceTooLow { got, next });
    }
    if got > next {
        return Err(StakingOpRejection::NonceTooHigh { got, next });
    }
    let committed = account.committed();
    let requested = match op.op.kind {
        StakingOpKind::Join { .. } if committed > 0 => {
            return Err(StakingOpRejection::AlreadyCommitted {
                validator,
                committed,
            });
        }
        StakingOpKind::Join { stake, .. } | StakingOpKind::SetStake { stake } => stake,
        StakingOpKind::Leave => 0,
    };
    Ok(match requested.cmp(&committed) {
        std::cmp::Ordering::Greater => {
            let units = requested - committed;
            let deposit = units_to_wei(units);
            if balance < deposit {
                return Err(StakingOpRejection::InsufficientFunds { balance, deposit });
            }
            StakeChange::Deposit { units }
        }
        std::cmp::Ordering::Less => StakeChange::Release {
            units: committed - requested,
        },
        std::cmp::Ordering::Equal => StakeChange::Unchanged,
    })
}

/// [`check_on_ledger`] of `op` on `state`.
fn check_on_state<R: StateReader>(
    op: &SignedStakingOp,
    state: &R,
) -> Result<StakeChange, StakingOpRejection> {
    let internal = |e: R::Error| StakingOpRejection::Internal(e.to_string());
    let account = staking_account(state, op.op.validator).map_err(internal)?;
    let balance = state
        .account(&op.op.validator)
        .map_err(internal)?
        .map_or(U256::ZERO, |a| a.balance);
    check_on_ledger(op, &account, balance)
}

impl StakingOpPool {
    /// Decodes and checks an operation from outside against `state` (the head's) and pools
    /// it; returns its hash (keccak256 of its encoding).
    pub fn add_raw<R: StateReader>(
        &self,
        raw: &[u8],
        chain_id: u64,
        state: &R,
        cache: &SignatureCache,
    ) -> Result<B256, StakingOpRejection> {
        self.add(decode_staking_op(raw)?, chain_id, state, cache)
    }

    /// Checks `op` against `state` (the head's) and pools it, replacing the validator's pooled
    /// operation if there is one (with the same nonce: both carry the next one); returns its
    /// hash.
    pub fn add<R: StateReader>(
        &self,
        op: SignedStakingOp,
        chain_id: u64,
        state: &R,
        cache: &SignatureCache,
    ) -> Result<B256, StakingOpRejection> {
        check_origin(&op, chain_id, cache)?;
        check_on_state(&op, state)?;
        let validator = op.op.validator;
        let mut ops = self.ops.lock();
        match ops.get(&validator) {
            Some(pooled) if *pooled == op => return Err(StakingOpRejection::AlreadyKnown),
            // Checked against a newer head than `state` (a block landed meanwhile).
            Some(pooled) if pooled.op.nonce > op.op.nonce => {
                return Err(StakingOpRejection::NonceTooLow {
                    got: op.op.nonce,
                    next: pooled.op.nonce,
                });
            }
            Some(pooled) => {
                tracing::debug!(
                    %validator,
                    nonce = op.op.nonce,
                    replaced = %staking_op_hash(pooled),
                    "staking operation replaces the pooled one"
                );
            }
            None if ops.len() >= MAX_POOLED_STAKING_OPS => {
                return Err(StakingOpRejection::PoolFull);
            }
            None => {}
        }
        ops.insert(validator, op);
        Ok(staking_op_hash(&op))
    }

    /// The pooled operations, by validator.
    pub fn candidates(&self) -> Vec<SignedStakingOp> {
        self.ops.lock().values().copied().collect()
    }

    /// Number of pooled operations.
    pub fn len(&self) -> usize {
        self.ops.lock().len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.lock().is_empty()
    }

    /// Drops the operations `state` (a new head's) makes unincludable: included ones and any
    /// other whose nonce is no longer the validator's next, those of slashed validators, and
    /// those whose deposit the account can no longer pay. Operations whose state cannot be
    /// read stay.
    pub fn prune<R: StateReader>(&self, state: &R) {
        self.ops.lock().retain(|validator, op| {
            match check_on_state(op, state) {
                Ok(_) | Err(StakingOpRejection::Internal(_)) => true,
                Err(reason) => {
                    tracing::debug!(%validator, nonce = op.op.nonce, %reason, "staking operation leaves the pool");
                    false
                }
            }
        });
    }

    /// Drops the `refused` operations (with why) that a block built on `state` (its parent's)
    /// left out although each carried its validator's next nonce there: consensus or the
    /// staking rule refused them on their own account (a join of an active validator, a deposit
    /// the block's transactions left unpayable, ...), and they would be offered to every block
    /// for nothing. An operation replaced meanwhile stays, and so do those whose nonce is not
    /// the next one ([`Self::prune`] is for them). Returns how many left.
    pub fn drop_refused<R: StateReader>(
        &self,
        refused: &[(SignedStakingOp, &str)],
        state: &R,
    ) -> usize {
        let mut dropped = 0;
        for (op, reason) in refused {
            let validator = op.op.validator;
            let Ok(account) = staking_account(state, validator) else {
                continue;
            };
            if op.op.nonce != account.nonce {
                continue;
            }
            let mut ops = self.ops.lock();
            if ops.get(&validator) == Some(op) {
                ops.remove(&validator);
                dropped += 1;
                tracing::debug!(%validator, nonce = op.op.nonce, %reason, "staking operation not includable: dropped from the pool");
            }
        }
        dropped
    }
}

/// The hash that names a staking operation: keccak256 of its RLP encoding.
pub fn staking_op_hash(op: &SignedStakingOp) -> B256 {
    keccak256(alloy_rlp::encode(op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chain_consensus::{Checkpoint, SignedVote, StakingOp, ValidatorKey, Vote};
    use chain_primitives::InMemoryState;

    const CHAIN: u64 = 31337;
    const PARAMS: StakingParams = StakingParams {
        epoch_slots: 32,
        slash_fraction_bps: 5_000,
        reporter_reward_bps: 1_000,
        max_evidence_per_block: 16,
        max_staking_ops_per_block: 4,
    };

    fn key(byte: u8) -> ValidatorKey {
        ValidatorKey::from_secret_bytes([byte; 32], 16).unwrap()
    }

    fn eth(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000_000_000_000_000u128)
    }

    fn funded(accounts: &[(Address, U256)]) -> InMemoryState {
        let mut state = InMemoryState::new();
        for (address, balance) in accounts {
            state.insert_account(
                *address,
                Account {
                    balance: *balance,
                    ..Account::default()
                },
            );
        }
        state
    }

    fn op(key: &ValidatorKey, nonce: u64, kind: StakingOpKind) -> SignedStakingOp {
        SignedStakingOp::sign(
            StakingOp {
                chain_id: CHAIN,
                validator: key.address(),
                nonce,
                kind,
            },
            key,
        )
    }

    fn join(key: &ValidatorKey, nonce: u64, stake: u64) -> SignedStakingOp {
        op(
            key,
            nonce,
            StakingOpKind::Join {
                stake,
                randao_anchor: key.randao_anchor(0).unwrap(),
            },
        )
    }

    fn set_stake(key: &ValidatorKey, nonce: u64, stake: u64) -> SignedStakingOp {
        op(key, nonce, StakingOpKind::SetStake { stake })
    }

    /// Runs the rule for one block on `state` and applies its diff.
    fn block(
        state: &mut InMemoryState,
        epoch: u64,
        proposer: Address,
        evidence: &[Evidence],
        ops: &[SignedStakingOp],
        building: bool,
    ) -> Result<StakingOutcome, ValidationFailure> {
        let mut diff = StateDiff::default();
        let outcome = apply_staking_rule(
            &*state,
            &mut diff,
            &StakingInput {
                chain_id: CHAIN,
                epoch,
                proposer,
                evidence,
                ops,
            },
            &PARAMS,
            &SignatureCache::default(),
            building,
        )?;
        state.apply(&diff);
        Ok(outcome)
    }

    /// Applies a block on import that carries no evidence and must be accepted.
    fn applied(
        state: &mut InMemoryState,
        epoch: u64,
        proposer: Address,
        ops: &[SignedStakingOp],
    ) -> StakingOutcome {
        block(state, epoch, proposer, &[], ops, false)
            .unwrap_or_else(|_| panic!("the block of epoch {epoch} is refused"))
    }

    /// Applies a block of epoch 0 in which `validator` joins with `stake` units.
    fn joined(state: &mut InMemoryState, validator: &ValidatorKey, stake: u64, proposer: Address) {
        applied(state, 0, proposer, &[join(validator, 0, stake)]);
    }

    fn balance(state: &InMemoryState, address: Address) -> U256 {
        state
            .account(&address)
            .unwrap()
            .map_or(U256::ZERO, |a| a.balance)
    }

    /// A join debits stake × 1 gwei into the escrow; a leave pays it back exactly
    /// `UNBONDING_EPOCHS` later, not before; nothing is created or lost on the way.
    #[test]
    fn join_debits_and_leave_refunds_after_the_unbonding_delay() {
        let alice = key(1);
        let proposer = Address::repeat_byte(0xaa);
        let mut state = funded(&[(alice.address(), eth(10))]);
        let stake = 3_000_000_000; // 3 ETH in gwei units
        let outcome = applied(&mut state, 0, proposer, &[join(&alice, 0, stake)]);
        assert_eq!(outcome.deposited, eth(3));
        assert_eq!(balance(&state, alice.address()), eth(7));
        assert_eq!(balance(&state, STAKING_ESCROW), eth(3));
        let ledger = staking_account(&state, alice.address()).unwrap();
        assert_eq!(
            (ledger.nonce, ledger.bonded, ledger.committed()),
            (1, stake, stake)
        );
        assert_eq!(state.account(&STAKING_ESCROW).unwrap().unwrap().nonce, 1);

        // Raise to 5 ETH: only the 2 ETH difference is debited.
        applied(
            &mut state,
            1,
            proposer,
            &[set_stake(&alice, 1, 5_000_000_000)],
        );
        assert_eq!(balance(&state, alice.address()), eth(5));
        assert_eq!(balance(&state, STAKING_ESCROW), eth(5));

        applied(
            &mut state,
            2,
            proposer,
            &[op(&alice, 2, StakingOpKind::Leave)],
        );
        assert_eq!(balance(&state, alice.address()), eth(5), "nothing back yet");
        for epoch in 2..2 + UNBONDING_EPOCHS {
            let outcome = applied(&mut state, epoch, proposer, &[]);
            assert_eq!(
                outcome.released,
                U256::ZERO,
                "released early at epoch {epoch}"
            );
        }
        let outcome = applied(&mut state, 2 + UNBONDING_EPOCHS, proposer, &[]);
        assert_eq!(outcome.released, eth(5));
        assert_eq!(balance(&state, alice.address()), eth(10));
        assert_eq!(balance(&state, STAKING_ESCROW), U256::ZERO);
        let ledger = staking_account(&state, alice.address()).unwrap();
        assert_eq!((ledger.bonded, ledger.unbonding, ledger.nonce), (0, 0, 3));
        // The release is paid once.
        let outcome = applied(&mut state, 3 + UNBONDING_EPOCHS, proposer, &[]);
        assert_eq!(outcome.released, U256::ZERO);
    }

    /// An account that cannot pay the deposit: a block carrying the operation is invalid; the
    /// builder leaves it out (and the next operation of the same validator with it).
    #[test]
    fn insufficient_balance_is_not_includable() {
        let (poor, rich) = (key(2), key(3));
        let proposer = Address::repeat_byte(0xaa);
        let mut state = funded(&[(poor.address(), eth(1)), (rich.address(), eth(100))]);
        let too_much = join(&poor, 0, 2_000_000_000);
        match block(&mut state, 0, proposer, &[], &[too_much], false) {
            Err(ValidationFailure::Invalid(InvalidBlock::StakingOp { index: 0, reason })) => {
                assert!(reason.contains("deposit"), "{reason}")
            }
            other => panic!("expected an invalid block, got {other:?}"),
        }
        assert_eq!(balance(&state, poor.address()), eth(1), "nothing applied");

        let ok = join(&rich, 0, 50_000_000_000);
        let outcome = block(
            &mut state,
            0,
            proposer,
            &[],
            &[too_much, op(&poor, 1, StakingOpKind::Leave), ok],
            true,
        )
        .unwrap_or_else(|_| panic!("building never fails on operations"));
        assert_eq!(outcome.included, vec![ok]);
        assert_eq!(balance(&state, poor.address()), eth(1));
        assert_eq!(balance(&state, rich.address()), eth(50));
        assert_eq!(balance(&state, STAKING_ESCROW), eth(50));

        // Replays and forged signatures break the rule too.
        assert!(
            block(&mut state, 0, proposer, &[], &[ok], false).is_err(),
            "nonce used"
        );
        let mut forged = join(&poor, 0, 1);
        forged.signature = rich.sign_unprotected(forged.op.signing_digest());
        assert!(block(&mut state, 0, proposer, &[], &[forged], false).is_err());
    }

    fn vote(key: &ValidatorKey, target: u8) -> SignedVote {
        SignedVote::sign_unprotected(
            Vote {
                chain_id: CHAIN,
                validator: key.address(),
                source: Checkpoint {
                    hash: B256::repeat_byte(1),
                    height: 1,
                },
                target: Checkpoint {
                    hash: B256::repeat_byte(target),
                    height: 4,
                },
                target_slot: 4,
            },
            key,
        )
    }

    /// Evidence burns half of the offender's bond, a tenth of that goes to the proposer, the
    /// rest of the bond is released after the delay; the offender cannot stake again, and a
    /// second piece of evidence against it makes the block invalid.
    #[test]
    fn evidence_burns_the_slashed_fraction_and_rewards_the_proposer() {
        let offender = key(4);
        let proposer = Address::repeat_byte(0xbb);
        let mut state = funded(&[(offender.address(), eth(10))]);
        joined(&mut state, &offender, 8_000_000_000, proposer);
        let evidence = Evidence::double_vote(vote(&offender, 2), vote(&offender, 3));
        let outcome = block(&mut state, 1, proposer, &[evidence], &[], false)
            .unwrap_or_else(|_| panic!("evidence applies"));
        // 8 ETH bonded: 4 ETH slashed, 0.4 ETH to the proposer, 3.6 ETH burned.
        assert_eq!(outcome.rewarded, eth(4) / U256::from(10));
        assert_eq!(outcome.burned, eth(36) / U256::from(10));
        assert_eq!(balance(&state, proposer), eth(4) / U256::from(10));
        assert_eq!(balance(&state, STAKING_ESCROW), eth(4));
        let ledger = staking_account(&state, offender.address()).unwrap();
        assert!(ledger.slashed);
        assert_eq!(
            (ledger.bonded, ledger.unbonding),
            (4_000_000_000, 4_000_000_000)
        );

        assert!(
            matches!(
                block(&mut state, 1, proposer, &[evidence], &[], false),
                Err(ValidationFailure::Invalid(InvalidBlock::Evidence { .. }))
            ),
            "slashed twice"
        );
        assert!(
            block(
                &mut state,
                1,
                proposer,
                &[],
                &[set_stake(&offender, 1, 9)],
                false
            )
            .is_err(),
            "a slashed validator cannot stake"
        );
        let outcome = applied(&mut state, 1 + UNBONDING_EPOCHS, proposer, &[]);
        assert_eq!(outcome.released, eth(4));
        assert_eq!(balance(&state, offender.address()), eth(6));
        assert_eq!(balance(&state, STAKING_ESCROW), U256::ZERO);

        // Evidence that does not verify is refused.
        let bogus = Evidence::DoubleVote {
            first: vote(&offender, 2),
            second: vote(&offender, 2),
        };
        assert!(matches!(
            block(&mut state, 9, proposer, &[bogus], &[], false),
            Err(ValidationFailure::Invalid(InvalidBlock::Evidence { .. }))
        ));
    }

    /// A second decrease before the first is paid merges into it and moves the release later.
    #[test]
    fn decreases_merge_into_one_later_release() {
        let alice = key(5);
        let proposer = Address::repeat_byte(0xaa);
        let mut state = funded(&[(alice.address(), eth(10))]);
        joined(&mut state, &alice, 4_000_000_000, proposer);
        applied(
            &mut state,
            1,
            proposer,
            &[set_stake(&alice, 1, 3_000_000_000)],
        );
        applied(
            &mut state,
            2,
            proposer,
            &[op(&alice, 2, StakingOpKind::Leave)],
        );
        let at = |state: &mut InMemoryState, epoch| applied(state, epoch, proposer, &[]).released;
        assert_eq!(at(&mut state, 1 + UNBONDING_EPOCHS), U256::ZERO);
        assert_eq!(at(&mut state, 2 + UNBONDING_EPOCHS), eth(4));
        assert_eq!(balance(&state, alice.address()), eth(10));
    }

    /// A block may carry at most `max_staking_ops_per_block` operations; the builder takes the
    /// first ones.
    #[test]
    fn operations_per_block_are_bounded() {
        let keys: Vec<_> = (10..15u8).map(key).collect();
        let proposer = Address::repeat_byte(0xaa);
        let mut state = funded(
            &keys
                .iter()
                .map(|k| (k.address(), eth(1)))
                .collect::<Vec<_>>(),
        );
        let ops: Vec<_> = keys.iter().map(|k| join(k, 0, 1)).collect();
        assert!(matches!(
            block(&mut state, 0, proposer, &[], &ops, false),
            Err(ValidationFailure::Invalid(InvalidBlock::StakingOp {
                index: 4,
                ..
            }))
        ));
        let outcome = block(&mut state, 0, proposer, &[], &ops, true)
            .unwrap_or_else(|_| panic!("building truncates"));
        assert_eq!(outcome.included, ops[..4].to_vec());
    }

    #[test]
    fn the_pool_refuses_bad_input_without_panicking() {
        let alice = key(6);
        let state = funded(&[(alice.address(), eth(2))]);
        let pool = StakingOpPool::default();
        let cache = SignatureCache::default();
        for garbage in [&b""[..], b"\xc0", b"\xf8\xff", &[0xc1; 2000][..]] {
            assert!(matches!(
                pool.add_raw(garbage, CHAIN, &state, &cache),
                Err(StakingOpRejection::Malformed(_))
            ));
        }
        let good = join(&alice, 0, 1_000_000_000);
        let raw = alloy_rlp::encode(good);
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(pool.add_raw(&trailing, CHAIN, &state, &cache).is_err());
        assert_eq!(
            pool.add_raw(&raw, CHAIN, &state, &cache),
            Ok(staking_op_hash(&good))
        );
        assert_eq!(
            pool.add_raw(&raw, CHAIN, &state, &cache),
            Err(StakingOpRejection::AlreadyKnown)
        );
        assert!(matches!(
            pool.add(join(&alice, 0, 1), CHAIN + 1, &state, &cache),
            Err(StakingOpRejection::WrongChain { .. })
        ));
        let other = key(7);
        assert!(matches!(
            pool.add(join(&other, 0, 1), CHAIN, &state, &cache),
            Err(StakingOpRejection::InsufficientFunds { .. })
        ));
        assert_eq!(pool.candidates(), vec![good]);
    }

    /// Only an operation with the validator's next nonce enters, and only if the account pays
    /// its deposit: a later nonce (which nothing could check against the balance or consensus)
    /// is refused, however cheap or expensive.
    #[test]
    fn the_pool_admits_only_the_next_nonce() {
        let alice = key(20);
        let state = funded(&[(alice.address(), eth(2))]);
        let pool = StakingOpPool::default();
        let cache = SignatureCache::default();
        for op in [
            join(&alice, 1, 1),
            join(&alice, 7, 5_000_000_000),
            op(&alice, 1, StakingOpKind::Leave),
        ] {
            assert_eq!(
                pool.add(op, CHAIN, &state, &cache),
                Err(StakingOpRejection::NonceTooHigh {
                    got: op.op.nonce,
                    next: 0
                })
            );
        }
        assert!(matches!(
            pool.add(join(&alice, 0, 5_000_000_000), CHAIN, &state, &cache),
            Err(StakingOpRejection::InsufficientFunds { .. })
        ));
        assert!(pool.is_empty());

        // Once the ledger has a join, a second join is not includable either.
        let mut state = state;
        block(
            &mut state,
            0,
            alice.address(),
            &[],
            &[join(&alice, 0, 1)],
            false,
        )
        .unwrap_or_else(|_| panic!("join applies"));
        assert!(matches!(
            pool.add(join(&alice, 0, 1), CHAIN, &state, &cache),
            Err(StakingOpRejection::NonceTooLow { got: 0, next: 1 })
        ));
        assert!(matches!(
            pool.add(join(&alice, 1, 1), CHAIN, &state, &cache),
            Err(StakingOpRejection::AlreadyCommitted { committed: 1, .. })
        ));
        assert!(
            pool.add(op(&alice, 1, StakingOpKind::Leave), CHAIN, &state, &cache)
                .is_ok()
        );
    }

    /// A new operation of a validator with one pooled replaces it (a stuck operation is not
    /// there for good); the very same operation is "already known". A full pool still takes
    /// replacements, and refuses only validators it has no operation of.
    #[test]
    fn a_new_operation_replaces_the_pooled_one() {
        let alice = key(21);
        let state = funded(&[(alice.address(), eth(10))]);
        let pool = StakingOpPool::default();
        let cache = SignatureCache::default();
        let first = join(&alice, 0, 1_000_000_000);
        let second = join(&alice, 0, 2_000_000_000);
        assert_eq!(
            pool.add(first, CHAIN, &state, &cache),
            Ok(staking_op_hash(&first))
        );
        assert_eq!(
            pool.add(first, CHAIN, &state, &cache),
            Err(StakingOpRejection::AlreadyKnown)
        );
        assert_eq!(
            pool.add(second, CHAIN, &state, &cache),
            Ok(staking_op_hash(&second))
        );
        assert_eq!(pool.candidates(), vec![second]);

        // Fill the pool with other validators.
        let keys: Vec<ValidatorKey> = (0..MAX_POOLED_STAKING_OPS as u16)
            .map(|i| {
                let mut secret = [0x33; 32];
                secret[..2].copy_from_slice(&i.to_be_bytes());
                ValidatorKey::from_secret_bytes(secret, 1).unwrap()
            })
            .collect();
        let mut state = state;
        for k in &keys {
            state.insert_account(
                k.address(),
                Account {
                    balance: eth(1),
                    ..Account::default()
                },
            );
        }
        let mut admitted = 1;
        let mut refused = 0;
        for k in &keys {
            match pool.add(join(k, 0, 1), CHAIN, &state, &cache) {
                Ok(_) => admitted += 1,
                Err(StakingOpRejection::PoolFull) => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(admitted, MAX_POOLED_STAKING_OPS);
        assert_eq!(refused, 1);
        assert_eq!(pool.len(), MAX_POOLED_STAKING_OPS);
        let third = set_stake(&alice, 0, 3);
        assert_eq!(
            pool.add(third, CHAIN, &state, &cache),
            Ok(staking_op_hash(&third)),
            "a replacement needs no room"
        );
        assert_eq!(pool.len(), MAX_POOLED_STAKING_OPS);
    }

    /// A new head drops what it makes unincludable: a used nonce, a deposit the account no
    /// longer pays, a slashed validator.
    #[test]
    fn prune_drops_what_the_head_makes_unincludable() {
        let (alice, bob, carol) = (key(22), key(23), key(24));
        let mut state = funded(&[
            (alice.address(), eth(10)),
            (bob.address(), eth(10)),
            (carol.address(), eth(10)),
        ]);
        let pool = StakingOpPool::default();
        let cache = SignatureCache::default();
        let ops = [
            join(&alice, 0, 1_000_000_000),
            join(&bob, 0, 5_000_000_000),
            join(&carol, 0, 1_000_000_000),
        ];
        for op in ops {
            pool.add(op, CHAIN, &state, &cache).unwrap();
        }
        // Alice's join is included; Bob spends his ether.
        applied(&mut state, 0, carol.address(), &[ops[0]]);
        state.insert_account(
            bob.address(),
            Account {
                balance: eth(1),
                ..Account::default()
            },
        );
        pool.prune(&state);
        assert_eq!(pool.candidates(), vec![ops[2]]);
    }

    /// The builder's refusals leave the pool only for the operation that was refused and only
    /// with the validator's next nonce: a replacement pooled meanwhile stays.
    #[test]
    fn drop_refused_removes_only_the_refused_operation() {
        let (alice, bob) = (key(25), key(26));
        let state = funded(&[(alice.address(), eth(10)), (bob.address(), eth(10))]);
        let pool = StakingOpPool::default();
        let cache = SignatureCache::default();
        let refused_alice = join(&alice, 0, 1);
        let refused_bob = join(&bob, 0, 1);
        pool.add(refused_alice, CHAIN, &state, &cache).unwrap();
        pool.add(refused_bob, CHAIN, &state, &cache).unwrap();
        let replacement = join(&bob, 0, 2);
        pool.add(replacement, CHAIN, &state, &cache).unwrap();
        let dropped = pool.drop_refused(
            &[
                (refused_alice, "refused by consensus"),
                (refused_bob, "refused by consensus"),
                (join(&alice, 5, 1), "refused by consensus"),
            ],
            &state,
        );
        assert_eq!(dropped, 1);
        assert_eq!(pool.candidates(), vec![replacement]);
    }

    /// Evidence against an offender with nothing bonded burns and rewards nothing: the rule
    /// writes no account for the proposer (an empty account must not be created, EIP-161).
    #[test]
    fn a_zero_reward_creates_no_account() {
        let offender = key(27);
        let proposer = Address::repeat_byte(0xcc);
        let mut state = funded(&[]);
        let evidence = Evidence::double_vote(vote(&offender, 2), vote(&offender, 3));
        let outcome = block(&mut state, 1, proposer, &[evidence], &[], false)
            .unwrap_or_else(|_| panic!("evidence applies"));
        assert_eq!(outcome.rewarded, U256::ZERO);
        assert_eq!(state.account(&proposer).unwrap(), None);
        assert!(!outcome.touched.contains(&proposer));
        assert!(staking_account(&state, offender.address()).unwrap().slashed);
    }

    /// The rule reports the accounts it wrote, for the transaction pool to re-check.
    #[test]
    fn the_outcome_names_the_accounts_the_rule_changed() {
        let (alice, offender) = (key(28), key(29));
        let proposer = Address::repeat_byte(0xdd);
        let mut state = funded(&[(alice.address(), eth(10)), (offender.address(), eth(10))]);
        joined(&mut state, &offender, 2_000_000_000, proposer);
        let evidence = Evidence::double_vote(vote(&offender, 2), vote(&offender, 3));
        let outcome = block(
            &mut state,
            1,
            proposer,
            &[evidence],
            &[join(&alice, 0, 1_000_000_000)],
            false,
        )
        .unwrap_or_else(|_| panic!("block applies"));
        let mut expected = vec![alice.address(), proposer, STAKING_ESCROW];
        expected.sort();
        assert_eq!(outcome.touched, expected);
    }
}
