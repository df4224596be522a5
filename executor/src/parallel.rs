//! The parallel executor: each transaction is a Block-STM task whose revm database reads the
//! multi-version memory, falling through to the committed state.
//!
//! Memory locations are an account's record (nonce, balance, code hash) and each storage slot,
//! so transactions touching different accounts or slots never conflict. Code is
//! content-addressed and needs no versioning. Two kinds of writes are *deltas* that commute
//! (`MemValue::BalanceAdd`): the priority fee each transaction owes the beneficiary, and the
//! value of a plain transfer to an account without code. A transaction that reads such an
//! account sums the deltas below it; the others never wait for each other.
//!
//! Fees do not go to the beneficiary's record but to one of `FEE_LANES` locations of their
//! own, by transaction index: every transaction pays a fee, and one location written by all of
//! them would be one lock and one cache line that the workers pass back and forth on every
//! transaction. A full value of the beneficiary's record includes the fees of its writer and of
//! every transaction below; whoever needs the beneficiary's account (a transaction reading it,
//! the final fold) adds the lanes' fees of the transactions above that writer
//! (`Credits`).

use crate::{
    CodeCache, ExecutionEnv, ExecutorError,
    diff::{diff_from_sorted, normalized_update, slot_before, state_error},
    evm::{
        BlockEvm, FeePayment, account_effect, add_balance, block_evm, info_from_account,
        maybe_precompile, receipt, run_tx, skip_reason,
    },
    outcome::{BlockOutput, SkipReason, TxOutcome},
};
use alloy_primitives::{Address, B256, Bloom, Bytes, TxKind, U256, map::HashMap};
use chain_primitives::{Account, AccountUpdate, StateReader};
use chain_scheduler::{
    BlockStm, MvMemory, MvRead, MvValue, SchedulerError, TaskError, TaskOutput, TransactionTask,
    TxnIndex, TxnView, fold_deltas,
};
use parking_lot::RwLock;
use revm::{
    context::{DBErrorMarker, TxEnv, result::EVMError},
    state::{AccountInfo, Bytecode},
};
use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
};

/// A location in the multi-version memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// An account's nonce, balance and code hash.
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
    /// Fees owed to the beneficiary by the transactions whose index is `lane` modulo
    /// [`FEE_LANES`]; deltas only. `group` is the beneficiary's key group, so that the lanes
    /// are folded together with its record.
    FeeLane {
        /// The beneficiary's key group.
        group: u8,
        /// The lane.
        lane: u8,
    },
}

impl Location {
    /// The key group of the memory this location lives in: an account's record by the first
    /// four bits of its address, so that groups in order are addresses in order, and the
    /// beneficiary's fee lanes with its record. Slots have none: they are spread by hash, so
    /// that the storage of one busy contract does not crowd a sixteenth of the shards.
    fn group(&self) -> Option<u8> {
        match self {
            Location::Account(address) => Some(address_group(address)),
            Location::FeeLane { group, .. } => Some(*group),
            Location::Storage(..) => None,
        }
    }
}

fn address_group(address: &Address) -> u8 {
    const _: () = assert!(
        chain_scheduler::KEY_GROUPS == 16,
        "one group per first nibble"
    );
    address.0[0] >> 4
}

/// Locations the beneficiary's fees are spread over. Transactions executing at the same time
/// are close in the block, so neighbours writing different lanes keep the workers apart; a
/// reader of the beneficiary reads all of them.
const FEE_LANES: u8 = 16;

fn fee_lane(beneficiary: &Address, txn_idx: TxnIndex) -> Location {
    Location::FeeLane {
        group: address_group(beneficiary),
        lane: (txn_idx % usize::from(FEE_LANES)) as u8,
    }
}

/// An account from the full value below its deltas (`base`), plus the balance increases of
/// the deltas on its record and, for the beneficiary, of the fee lanes above that value.
fn credited(base: Option<Account>, record: &Credits, lanes: &Credits) -> Option<Account> {
    match (record.total(), lanes.total()) {
        (None, None) => base,
        // Additions commute, and applying them one by one or summed gives the same account:
        // only whether it ends empty matters for existence, and every credit touched it.
        (a, b) => add_balance(
            base,
            a.unwrap_or_default().saturating_add(b.unwrap_or_default()),
        ),
    }
}

/// Balance increases (deltas) summed, counting only those of transactions above `floor`.
///
/// For the fee lanes, `floor` is the writer of the full value of the beneficiary's record that
/// a reader sees (`None`: the committed state): that value already includes the fees of its
/// writer and of every transaction below.
struct Credits {
    floor: Option<TxnIndex>,
    sum: U256,
    any: bool,
}

impl Credits {
    fn above(floor: Option<TxnIndex>) -> Self {
        Self {
            floor,
            sum: U256::ZERO,
            any: false,
        }
    }

    /// Adds one delta written by `txn_idx`; `Err` if it is not a balance increase.
    fn add(&mut self, txn_idx: TxnIndex, value: &MemValue) -> Result<(), &'static str> {
        if self.floor.is_some_and(|floor| txn_idx <= floor) {
            return Ok(());
        }
        let MemValue::BalanceAdd(amount) = value else {
            return Err("a full value among balance increases");
        };
        self.sum = self.sum.saturating_add(*amount);
        self.any = true;
        Ok(())
    }

    /// The sum, if anything was added (even zero: a credit touches the account).
    fn total(&self) -> Option<U256> {
        self.any.then_some(self.sum)
    }
}

/// A value in the multi-version memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MemValue {
    /// An account record; `None` if the account does not exist (after deletion).
    Account(Option<Account>),
    /// A storage value.
    Storage(U256),
    /// An increase of an account's balance that applies on top of the value below it, with
    /// EIP-161 touch semantics (an account that is empty afterwards does not exist).
    BalanceAdd(U256),
}

impl MvValue for MemValue {
    fn is_delta(&self) -> bool {
        matches!(self, MemValue::BalanceAdd(_))
    }
}

/// Why an incarnation's database read stopped.
#[derive(Debug, thiserror::Error)]
enum MvDbError {
    #[error("read an ESTIMATE of transaction {0}")]
    Dependency(TxnIndex),
    #[error("state read failed: {0}")]
    State(String),
    #[error("multi-version memory holds {0} where it cannot")]
    Invariant(&'static str),
}

impl DBErrorMarker for MvDbError {}

/// What the final incarnation of a transaction left besides its writes.
#[derive(Debug)]
pub(crate) struct TxResult {
    outcome: TxOutcome,
    /// Accounts created or deleted: their storage before the block is void.
    storage_cleared: Vec<Address>,
    /// Code deployed.
    new_codes: Vec<(B256, Bytes)>,
    /// The transfer recipient whose balance was credited as a delta without reading it.
    deferred_recipient: Option<Address>,
    /// Accounts whose code was created.
    created: Vec<Address>,
}

struct EvmTask<'a, S> {
    state: &'a S,
    env: &'a ExecutionEnv,
    txs: &'a [TxEnv],
    codes: &'a CodeCache,
    /// Code deployed by this block, by any incarnation (content-addressed, so never wrong).
    new_code: RwLock<HashMap<B256, Bytecode>>,
    /// Executions started, for the abort-rate statistic, summed once per worker at the end of
    /// the run. Relaxed: read after the workers joined.
    executions: AtomicUsize,
    /// Nanoseconds the workers spent inside the EVM, summed once per worker at the end of the
    /// run. Relaxed: read after the workers joined.
    busy_ns: AtomicU64,
    /// Per transaction: whether a later transaction of the block has the same sender (it will
    /// read the account this one writes).
    sender_reused: Vec<bool>,
}

impl<S: StateReader> EvmTask<'_, S> {
    fn code(&self, hash: B256) -> Result<Option<Bytecode>, MvDbError> {
        if let Some(code) = self.new_code.read().get(&hash) {
            return Ok(Some(code.clone()));
        }
        self.codes
            .get_or_load(hash, || self.state.code(&hash))
            .map_err(|e| MvDbError::State(e.to_string()))
    }

    /// The recipient of a plain value transfer to an account without code, whose credit can
    /// be a delta. Decided on the committed state; a contract deployed at that address by an
    /// earlier transaction of the block is caught after the run (see `check_deferred`).
    fn deferred_recipient(&self, tx: &TxEnv) -> Result<Option<Address>, MvDbError> {
        let TxKind::Call(to) = tx.kind else {
            return Ok(None);
        };
        if tx.value.is_zero() || to == tx.caller || maybe_precompile(&to) {
            return Ok(None);
        }
        let account = self
            .state
            .account(&to)
            .map_err(|e| MvDbError::State(e.to_string()))?;
        Ok(match account {
            Some(account) if account.has_code() => None,
            _ => Some(to),
        })
    }
}

/// A copy of `code` that shares no memory with it (and so no reference count), with its jump
/// table as analysed already.
fn private_copy(code: &Bytecode) -> Bytecode {
    match code.legacy_jump_table() {
        Some(jump_table) if !code.bytecode().is_empty() => {
            // SAFETY: the bytes, their length and the jump table are those of a bytecode that
            // revm analysed and padded itself; copying them keeps every invariant
            // `new_analyzed` asks for.
            unsafe {
                Bytecode::new_analyzed(
                    Bytes::copy_from_slice(code.bytecode()),
                    code.len(),
                    jump_table.clone(),
                )
            }
        }
        _ => code.clone(),
    }
}

/// revm's database for the incarnations one worker executes.
///
/// The worker keeps one EVM for the whole block (building one per transaction cost more than
/// executing a transfer), so its database cannot borrow the task and the incarnation's view
/// for a lifetime the type system sees. It holds them as pointers instead, set by
/// `EvmTask::execute` before it runs the EVM and cleared right after: the EVM calls the
/// database only inside that window, and outside it the accessors return an error instead of
/// dereferencing.
struct WorkerDb<S> {
    task: *const (),
    view: *mut (),
    deferred_recipient: Option<Address>,
    /// What each account read returned, to tell real writes from touches.
    loaded: HashMap<Address, Option<Account>>,
    /// Time this worker spent executing transactions, in nanoseconds.
    busy_ns: u64,
    /// Transactions this worker executed (re-executions included).
    executions: usize,
    /// The code this worker ran in this block, as copies of its own: every execution clones
    /// and drops the code of the contracts it calls, and on a shared copy each clone and drop
    /// would pass the reference count's cache line between the workers.
    codes: HashMap<B256, Bytecode>,
    _state: std::marker::PhantomData<fn() -> S>,
}

impl<S: StateReader> WorkerDb<S> {
    fn new() -> Self {
        Self {
            task: std::ptr::null(),
            view: std::ptr::null_mut(),
            deferred_recipient: None,
            loaded: HashMap::default(),
            busy_ns: 0,
            executions: 0,
            codes: HashMap::default(),
            _state: std::marker::PhantomData,
        }
    }

    fn task(&self) -> Result<&EvmTask<'_, S>, MvDbError> {
        if self.task.is_null() {
            return Err(MvDbError::Invariant("no transaction is executing"));
        }
        // SAFETY: non-null only between `EvmTask::execute` setting it to its `&self` and
        // clearing it, during which the task outlives this borrow.
        Ok(unsafe { &*self.task.cast::<EvmTask<'_, S>>() })
    }

    fn view(&mut self) -> Result<&mut TxnView<'_, Location, MemValue>, MvDbError> {
        if self.view.is_null() {
            return Err(MvDbError::Invariant("no transaction is executing"));
        }
        // SAFETY: non-null only between `EvmTask::execute` setting it to its exclusive `view`
        // argument and clearing it; nothing else uses that view meanwhile.
        Ok(unsafe { &mut *self.view.cast::<TxnView<'_, Location, MemValue>>() })
    }

    fn committed_account(&self, address: &Address) -> Result<Option<Account>, MvDbError> {
        self.task()?
            .state
            .account(address)
            .map_err(|e| MvDbError::State(e.to_string()))
    }

    fn read_account(&mut self, address: Address) -> Result<Option<Account>, MvDbError> {
        if address == self.task()?.env.block.beneficiary {
            return self.read_beneficiary(address);
        }
        match self
            .view()?
            .read(&Location::Account(address))
            .map_err(MvDbError::Dependency)?
        {
            MvRead::Storage => self.committed_account(&address),
            MvRead::Value(MemValue::Account(account)) => Ok(account),
            MvRead::Deltas { deltas, base } => {
                let base = match base {
                    None => self.committed_account(&address)?,
                    Some(MemValue::Account(account)) => account,
                    Some(_) => {
                        return Err(MvDbError::Invariant("a non-account value under an account"));
                    }
                };
                Ok(fold_deltas(&deltas, base, |account, delta| match delta {
                    MemValue::BalanceAdd(amount) => add_balance(account, *amount),
                    _ => account,
                }))
            }
            MvRead::Value(_) => Err(MvDbError::Invariant("a non-account value at an account")),
        }
    }
}

impl<S: StateReader> WorkerDb<S> {
    /// The code with hash `hash`, from this worker's copies.
    fn code(&mut self, hash: B256) -> Result<Option<Bytecode>, MvDbError> {
        if let Some(code) = self.codes.get(&hash) {
            return Ok(Some(code.clone()));
        }
        let Some(shared) = self.task()?.code(hash)? else {
            return Ok(None);
        };
        let own = private_copy(&shared);
        self.codes.insert(hash, own.clone());
        Ok(Some(own))
    }

    /// The beneficiary's account: its record plus the fees in the lanes (see the module docs).
    fn read_beneficiary(&mut self, address: Address) -> Result<Option<Account>, MvDbError> {
        let record = self
            .view()?
            .read_indexed(&Location::Account(address))
            .map_err(MvDbError::Dependency)?;
        let (floor, base) = match record.base {
            None => (None, self.committed_account(&address)?),
            Some((txn_idx, MemValue::Account(account))) => (Some(txn_idx), account),
            Some(_) => {
                return Err(MvDbError::Invariant("a non-account value under an account"));
            }
        };
        let mut credits = Credits::above(None);
        for (txn_idx, value) in &record.deltas {
            credits.add(*txn_idx, value).map_err(MvDbError::Invariant)?;
        }
        let mut fees = Credits::above(floor);
        let view = self.view()?;
        for lane in 0..FEE_LANES {
            let read = view
                .read_indexed(&Location::FeeLane {
                    group: address_group(&address),
                    lane,
                })
                .map_err(MvDbError::Dependency)?;
            if read.base.is_some() {
                return Err(MvDbError::Invariant("a full value in a fee lane"));
            }
            for (txn_idx, value) in &read.deltas {
                fees.add(*txn_idx, value).map_err(MvDbError::Invariant)?;
            }
        }
        Ok(credited(base, &credits, &fees))
    }
}

impl<S: StateReader> revm::Database for WorkerDb<S> {
    type Error = MvDbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        if Some(address) == self.deferred_recipient {
            // Credited as a delta: execution must not depend on its balance. It has no code
            // (checked), and a plain transfer reads nothing else of it.
            return Ok(Some(info_from_account(Account::default(), None)));
        }
        let account = self.read_account(address)?;
        self.loaded.entry(address).or_insert(account);
        let Some(account) = account else {
            return Ok(None);
        };
        let code = if account.has_code() {
            self.code(account.code_hash)?
        } else {
            None
        };
        Ok(Some(info_from_account(account, code)))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.code(code_hash)?.unwrap_or_default())
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        match self
            .view()?
            .read(&Location::Storage(address, index))
            .map_err(MvDbError::Dependency)?
        {
            MvRead::Storage => self
                .task()?
                .state
                .storage(&address, &index)
                .map_err(|e| MvDbError::State(e.to_string())),
            MvRead::Value(MemValue::Storage(value)) => Ok(value),
            _ => Err(MvDbError::Invariant(
                "a non-storage value at a storage slot",
            )),
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.task()?
            .state
            .block_hash(number)
            .map_err(|e| MvDbError::State(e.to_string()))
    }
}

type Writes = Vec<(Location, MemValue)>;

impl<S: StateReader> TransactionTask for EvmTask<'_, S> {
    type Key = Location;
    type Value = MemValue;
    /// Boxed: the workers and the final assembly move a pointer, not a receipt with its bloom.
    type Output = Box<TxResult>;
    type Error = ExecutorError;
    type Worker = BlockEvm<WorkerDb<S>>;

    fn worker(&self) -> Self::Worker {
        block_evm(self.env, WorkerDb::new())
    }

    fn predicted_writes(&self, txn_idx: TxnIndex) -> Vec<Location> {
        if self.sender_reused[txn_idx] {
            vec![Location::Account(self.txs[txn_idx].caller)]
        } else {
            Vec::new()
        }
    }

    fn key_group(key: &Location) -> Option<u8> {
        key.group()
    }

    fn retire_worker(&self, evm: Self::Worker) {
        let db = &evm.ctx.journaled_state.database;
        self.busy_ns.fetch_add(db.busy_ns, Ordering::Relaxed);
        self.executions.fetch_add(db.executions, Ordering::Relaxed);
    }

    fn execute(
        &self,
        evm: &mut Self::Worker,
        txn_idx: TxnIndex,
        _incarnation: chain_scheduler::Incarnation,
        view: &mut TxnView<'_, Location, MemValue>,
    ) -> Result<TaskOutput<Location, MemValue, Box<TxResult>>, TaskError<ExecutorError>> {
        let tx = &self.txs[txn_idx];
        let fatal = |e: MvDbError| match e {
            MvDbError::Dependency(blocking) => TaskError::Dependency(blocking),
            MvDbError::State(message) => TaskError::Fatal(ExecutorError::State(message)),
            other => TaskError::Fatal(ExecutorError::Evm {
                txn_idx,
                message: other.to_string(),
            }),
        };
        let deferred_recipient = self.deferred_recipient(tx).map_err(fatal)?;
        let db = &mut evm.ctx.journaled_state.database;
        db.executions += 1;
        db.task = (self as *const Self).cast();
        db.view = (view as *mut TxnView<'_, Location, MemValue>).cast();
        db.deferred_recipient = deferred_recipient;
        db.loaded.clear();
        let started = std::time::Instant::now();
        let executed = run_tx(evm, tx.clone(), FeePayment::Deferred);
        let db = &mut evm.ctx.journaled_state.database;
        db.busy_ns += started.elapsed().as_nanos() as u64;
        db.task = std::ptr::null();
        db.view = std::ptr::null_mut();
        let (result, state) = match executed {
            Ok(executed) => executed,
            Err(EVMError::Database(e)) => return Err(fatal(e)),
            Err(error) => {
                let Some(reason) = skip_reason(&error) else {
                    return Err(TaskError::Fatal(ExecutorError::Evm {
                        txn_idx,
                        message: error.to_string(),
                    }));
                };
                let output = TxResult {
                    outcome: TxOutcome::Skipped(reason),
                    storage_cleared: Vec::new(),
                    new_codes: Vec::new(),
                    deferred_recipient: None,
                    created: Vec::new(),
                };
                return Ok(TaskOutput {
                    writes: Vec::new(),
                    output: Box::new(output),
                });
            }
        };
        let loaded = &db.loaded;
        let receipt = receipt(self.env, tx, result);
        let fee = receipt.beneficiary_fee;
        let beneficiary = self.env.block.beneficiary;

        let mut writes: Writes = Vec::with_capacity(state.len() + 2);
        let mut output = TxResult {
            outcome: TxOutcome::Skipped(SkipReason::Invalid(String::new())),
            storage_cleared: Vec::new(),
            new_codes: Vec::new(),
            deferred_recipient,
            created: Vec::new(),
        };
        let mut beneficiary_settled = false;
        for (address, account) in &state {
            if Some(*address) == deferred_recipient {
                if account.is_touched() {
                    // Started from a zero balance: what it holds now is what it received.
                    let mut amount = account.info.balance;
                    if *address == beneficiary {
                        amount += fee;
                        beneficiary_settled = true;
                    }
                    writes.push((Location::Account(*address), MemValue::BalanceAdd(amount)));
                }
                continue;
            }
            let Some(effect) = account_effect(account) else {
                continue;
            };
            if effect.storage_cleared {
                output.storage_cleared.push(*address);
            }
            if let Some((hash, code)) = effect.new_code {
                output.created.push(*address);
                output.new_codes.push((hash, code.original_bytes()));
                self.new_code.write().insert(hash, code);
            }
            let mut info = effect.info;
            if *address == beneficiary {
                info = add_balance(info, fee);
                beneficiary_settled = true;
            }
            if loaded.get(address) != Some(&info) {
                writes.push((Location::Account(*address), MemValue::Account(info)));
            }
            if info.is_some() {
                for (slot, value) in account.changed_storage_slots() {
                    writes.push((
                        Location::Storage(*address, *slot),
                        MemValue::Storage(value.present_value),
                    ));
                }
            }
        }
        if !beneficiary_settled {
            writes.push((fee_lane(&beneficiary, txn_idx), MemValue::BalanceAdd(fee)));
        }
        output.outcome = TxOutcome::Included(receipt);
        Ok(TaskOutput {
            writes,
            output: Box::new(output),
        })
    }
}

/// Statistics of one parallel run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParallelStats {
    /// Transaction executions, including re-executions (equal to the block size when nothing
    /// was aborted).
    pub executions: usize,
    /// Why the run's result was discarded for sequential execution, if it was.
    pub fallback: Option<String>,
    /// Wall time of the Block-STM run, in microseconds.
    pub run_us: u64,
    /// Wall time of folding the final writes into the state diff, in microseconds.
    pub assemble_us: u64,
    /// Time the workers spent inside the EVM, summed over workers, in microseconds. Divided
    /// by `run_us` it says how many workers were busy on average: the parallelism achieved.
    pub busy_us: u64,
}

/// Executes `txs` over `state` with Block-STM on the workers of `runner`. Falls back to sequential
/// execution if the parallel run fails or its result cannot be trusted (see
/// [`ParallelStats::fallback`]); the output is the sequential one in every case.
pub fn execute_parallel<S: StateReader>(
    state: &S,
    env: &ExecutionEnv,
    txs: &[TxEnv],
    codes: &CodeCache,
    runner: &BlockStm,
) -> Result<(BlockOutput, ParallelStats), ExecutorError> {
    let (sender_reused, longest_chain) = sender_chains(txs);
    // Transactions of one sender are chained by their nonces: when one sender has more than
    // half of the block, no schedule beats sequential execution by enough to pay for the
    // multi-version memory, so the attempt (and the contention limit's late give-up) is
    // skipped. Runners without a contention limit always run Block-STM to the end.
    if runner.contention_limit().is_some() && longest_chain * 2 > txs.len() && txs.len() > 1 {
        let stats = ParallelStats {
            fallback: Some(format!(
                "{longest_chain} of {} transactions share one sender, whose nonces chain them",
                txs.len()
            )),
            ..ParallelStats::default()
        };
        let output = crate::sequential::execute_sequential(state, env, txs, codes)?;
        return Ok((output, stats));
    }
    let task = EvmTask {
        state,
        env,
        txs,
        codes,
        new_code: RwLock::new(HashMap::default()),
        executions: AtomicUsize::new(0),
        busy_ns: AtomicU64::new(0),
        sender_reused,
    };
    let started = std::time::Instant::now();
    let run = runner.run(&task, txs.len());
    let mut stats = ParallelStats {
        executions: task.executions.load(Ordering::Relaxed),
        run_us: started.elapsed().as_micros() as u64,
        busy_us: task.busy_ns.load(Ordering::Relaxed) / 1000,
        ..ParallelStats::default()
    };
    let reason = match run {
        Ok((outputs, memory)) => {
            let started = std::time::Instant::now();
            let assembled = assemble(state, env, runner, txs, outputs, &memory)?;
            stats.assemble_us = started.elapsed().as_micros() as u64;
            match assembled {
                Ok(output) => return Ok((output, stats)),
                Err(reason) => reason,
            }
        }
        Err(SchedulerError::Task {
            error: ExecutorError::State(message),
            ..
        }) => {
            // The committed state failed to read: sequential execution would fail the same way.
            return Err(ExecutorError::State(message));
        }
        Err(error) => error.to_string(),
    };
    stats.fallback = Some(reason);
    let output = crate::sequential::execute_sequential(state, env, txs, codes)?;
    Ok((output, stats))
}

/// Builds the block output from the final incarnations. The inner `Err` is a reason to fall
/// back to sequential execution.
///
/// The work is split over the workers in two steps, with a little bookkeeping between them on
/// the caller's thread. First, each worker takes one share of the transactions and one share
/// of the key groups: it moves its transactions' outcomes into place (cumulative gas counted
/// from the start of its share) and folds the locations of its groups, then frees them:
/// account records (grouped by address) with the beneficiary's fee lanes, and slots (spread
/// by hash, so that one contract's storage is shared out too), each with the committed value.
/// Then each worker joins the records of its address groups with their slots from every
/// worker's part and completes its share's cumulative gas. Groups in worker order are
/// addresses in order: the results only need to be concatenated.
// The outputs stay boxed as the workers made them: unboxing would copy every receipt.
#[allow(clippy::vec_box)]
fn assemble<S: StateReader>(
    state: &S,
    env: &ExecutionEnv,
    runner: &BlockStm,
    txs: &[TxEnv],
    outputs: Vec<Box<TxResult>>,
    memory: &MvMemory<Location, MemValue>,
) -> Result<Result<BlockOutput, String>, ExecutorError> {
    let num_txns = outputs.len();
    let workers = runner.threads().get();
    let mut outcomes: Vec<TxOutcome> = Vec::with_capacity(num_txns);
    let (receipts, folded) = {
        // Every worker's share: where its outcomes go and the outputs they come from.
        let mut outputs = outputs;
        let shares = Handout::new(
            shares_of(&mut outcomes.spare_capacity_mut()[..num_txns], workers)
                .into_iter()
                .enumerate()
                .map(|(index, slots)| {
                    let rest = outputs.split_off(slots.len());
                    (
                        share(num_txns, index, workers),
                        slots,
                        std::mem::replace(&mut outputs, rest),
                    )
                }),
        );
        let folded = runner.broadcast(|index, count| {
            let receipts = shares
                .take(index)
                .map(|(range, slots, outputs)| place_outcomes(env, txs, range, slots, outputs));
            let groups = share(chain_scheduler::KEY_GROUPS, index, count);
            let shards = memory.group_shards(groups.clone());
            let folded = fold_groups(state, memory, shards.clone(), groups, env.block.beneficiary);
            memory.release_shards(shards);
            memory.release_transactions(share(num_txns, index, count));
            (receipts, folded)
        });
        folded.into_iter().unzip::<_, _, Vec<_>, Vec<_>>()
    };
    let receipts: Vec<PlacedOutcomes> = receipts.into_iter().flatten().collect();
    if receipts.iter().map(|r| r.range.len()).sum::<usize>() != num_txns {
        // Unreachable (every share has a worker); the placed outcomes are leaked, not read.
        return Ok(Err("a share of the outcomes was not placed".to_owned()));
    }
    // SAFETY: the shares cover `0..num_txns` (checked just above) and each worker wrote every
    // slot of its share (`place_outcomes` writes one per output, and a share has as many
    // outputs as slots).
    unsafe { outcomes.set_len(num_txns) };

    // A contract deployed at an address that a later transaction paid as a plain account
    // would have run code there.
    let mut created_at: HashMap<Address, TxnIndex> = HashMap::default();
    for (txn_idx, address) in receipts.iter().flat_map(|r| &r.created) {
        created_at.entry(*address).or_insert(*txn_idx);
    }
    if !created_at.is_empty() {
        for (txn_idx, recipient) in receipts.iter().flat_map(|r| &r.deferred) {
            if let Some(&creator) = created_at.get(recipient)
                && creator < *txn_idx
            {
                return Ok(Err(format!(
                    "transaction {txn_idx} paid {recipient} as a plain account, but transaction \
                     {creator} deployed code there first"
                )));
            }
        }
    }
    // Sequentially a transaction above the block's remaining gas is skipped, which changes
    // what later ones see.
    let mut gas_used = 0u64;
    let mut bloom = Bloom::ZERO;
    let mut prefixes = Vec::with_capacity(receipts.len());
    for part in &receipts {
        if i128::from(gas_used) > part.min_slack {
            return Ok(Err(format!(
                "a transaction among {:?} exceeds the block's remaining gas",
                part.range
            )));
        }
        prefixes.push(gas_used);
        gas_used += part.gas_used;
        bloom |= part.bloom;
    }
    let cleared: alloy_primitives::map::HashSet<Address> = receipts
        .iter()
        .flat_map(|r| r.storage_cleared.iter().copied())
        .collect();
    let new_codes: HashMap<B256, Bytes> = receipts.into_iter().flat_map(|r| r.new_codes).collect();

    let mut parts = Vec::with_capacity(folded.len());
    for part in folded {
        match part {
            Ok(part) => parts.push(part),
            Err(Ok(error)) => return Err(error),
            Err(Err(reason)) => return Ok(Err(reason)),
        }
    }
    let joined = {
        let shares = Handout::new(prefixes.into_iter().zip(shares_of(&mut outcomes, workers)));
        runner.broadcast(|index, count| {
            if let Some((prefix, outcomes)) = shares.take(index)
                && prefix > 0
            {
                for receipt in outcomes.iter_mut().filter_map(TxOutcome::receipt_mut) {
                    receipt.cumulative_gas_used += prefix;
                }
            }
            join_groups(
                state,
                &parts,
                index,
                share(chain_scheduler::KEY_GROUPS, index, count),
                &cleared,
            )
        })
    };
    let mut updates = Vec::with_capacity(parts.iter().map(|p| p.records.len()).sum());
    for part in joined {
        updates.extend(part?);
    }
    let diff = diff_from_sorted(updates, &new_codes);
    Ok(Ok(BlockOutput {
        outcomes,
        gas_used,
        logs_bloom: bloom,
        diff,
    }))
}

/// What one worker's share of the transactions left besides its outcomes.
struct PlacedOutcomes {
    /// The transactions of the share.
    range: std::ops::Range<TxnIndex>,
    /// Gas used by the share's transactions.
    gas_used: u64,
    /// The smallest gas that may precede the share in the block without one of its
    /// transactions exceeding the block's remaining gas.
    min_slack: i128,
    /// The share's logs bloom.
    bloom: Bloom,
    /// Accounts created or deleted, whose storage before the block is void.
    storage_cleared: Vec<Address>,
    /// Code deployed.
    new_codes: Vec<(B256, Bytes)>,
    /// Where each transaction that deployed code deployed it.
    created: Vec<(TxnIndex, Address)>,
    /// Plain transfers credited as deltas, by transaction (checked only if code was deployed).
    deferred: Vec<(TxnIndex, Address)>,
}

/// Moves the outcomes of transactions `range` into `slots`, one per output, counting their
/// cumulative gas from the start of the range.
#[allow(clippy::vec_box)]
fn place_outcomes(
    env: &ExecutionEnv,
    txs: &[TxEnv],
    range: std::ops::Range<TxnIndex>,
    slots: &mut [std::mem::MaybeUninit<TxOutcome>],
    outputs: Vec<Box<TxResult>>,
) -> PlacedOutcomes {
    let block_gas_limit = i128::from(env.block.gas_limit);
    let mut placed = PlacedOutcomes {
        range: range.clone(),
        gas_used: 0,
        min_slack: i128::MAX,
        bloom: Bloom::ZERO,
        storage_cleared: Vec::new(),
        new_codes: Vec::new(),
        created: Vec::new(),
        deferred: Vec::new(),
    };
    for ((txn_idx, slot), output) in range.zip(slots.iter_mut()).zip(outputs) {
        let TxResult {
            mut outcome,
            storage_cleared,
            new_codes,
            deferred_recipient,
            created,
        } = *output;
        if let TxOutcome::Included(receipt) = &mut outcome {
            let gas_limit = txs.get(txn_idx).map_or(0, |tx| tx.gas_limit);
            placed.min_slack = placed
                .min_slack
                .min(block_gas_limit - i128::from(placed.gas_used) - i128::from(gas_limit));
            placed.gas_used += receipt.gas_used;
            receipt.cumulative_gas_used = placed.gas_used;
            placed.bloom |= receipt.logs_bloom;
        }
        slot.write(outcome);
        placed.storage_cleared.extend(storage_cleared);
        placed.new_codes.extend(new_codes);
        placed
            .created
            .extend(created.into_iter().map(|address| (txn_idx, address)));
        placed
            .deferred
            .extend(deferred_recipient.map(|address| (txn_idx, address)));
    }
    placed
}

/// Share `index` of `count` of `0..n`; the shares in order cover it.
fn share(n: usize, index: usize, count: usize) -> std::ops::Range<usize> {
    n * index / count..n * (index + 1) / count
}

/// `items` cut into `count` shares, in order (see [`share`]).
fn shares_of<T>(mut items: &mut [T], count: usize) -> Vec<&mut [T]> {
    let n = items.len();
    (0..count)
        .map(|index| {
            let (head, tail) =
                std::mem::take(&mut items).split_at_mut(share(n, index, count).len());
            items = tail;
            head
        })
        .collect()
}

/// One item per worker, each taken by the worker of its index inside a broadcast.
struct Handout<T>(Vec<parking_lot::Mutex<Option<T>>>);

impl<T> Handout<T> {
    fn new(items: impl IntoIterator<Item = T>) -> Self {
        Self(
            items
                .into_iter()
                .map(|item| parking_lot::Mutex::new(Some(item)))
                .collect(),
        )
    }

    /// The item of worker `index`, once.
    fn take(&self, index: usize) -> Option<T> {
        self.0.get(index).and_then(|item| item.lock().take())
    }
}

/// The final record of an account, as the first fold step leaves it.
struct FinalRecord {
    address: Address,
    /// The record after the block, if the block wrote it (`Some(None)`: deleted).
    written: Option<Option<Account>>,
    /// The committed record.
    base: Option<Account>,
}

/// A slot written by the block: address, slot, final value, committed value.
type FinalSlot = (Address, U256, U256, U256);

/// What one worker folded: the records of the accounts of its address groups and the slots
/// (of any account) in its shards.
struct FoldedGroups {
    /// Sorted by address.
    records: Vec<FinalRecord>,
    /// Sorted by address and slot.
    slots: Vec<FinalSlot>,
}

/// The top of an account record's final writes: the balance increases above the first full
/// value, and that value with its writer (`floor`; `None`: none, the committed state is below).
struct RecordTop {
    credits: Credits,
    /// The full value (`None` inside: deleted); `None`: the committed state.
    below: Option<Option<Account>>,
    floor: Option<TxnIndex>,
    /// Whether the block wrote the record at all.
    written: bool,
}

/// No credits.
const NO_CREDITS: Credits = Credits {
    floor: None,
    sum: U256::ZERO,
    any: false,
};

impl RecordTop {
    /// Reads the final writes of a record, top-down; `Ok(None)` if there are none.
    fn of(
        top_down: &mut dyn Iterator<Item = (TxnIndex, &MemValue)>,
    ) -> Result<Option<Self>, &'static str> {
        let mut top = Self::untouched();
        for (txn_idx, value) in top_down {
            top.written = true;
            match value {
                MemValue::Account(account) => {
                    top.below = Some(*account);
                    top.floor = Some(txn_idx);
                    break;
                }
                MemValue::Storage(_) => return Err("a storage value at an account"),
                MemValue::BalanceAdd(_) => top.credits.add(txn_idx, value)?,
            }
        }
        Ok(top.written.then_some(top))
    }

    fn untouched() -> Self {
        Self {
            credits: Credits::above(None),
            below: None,
            floor: None,
            written: false,
        }
    }
}

/// Why a fold stopped: a state read failure (`Ok`) or a reason to fall back (`Err`).
type FoldError = Result<ExecutorError, String>;

/// The first fold step for the key groups `groups`, held in `shards`: account records with
/// their deltas summed (and the beneficiary's fee lanes added), and the final and committed
/// value of every slot written.
fn fold_groups<S: StateReader>(
    state: &S,
    memory: &MvMemory<Location, MemValue>,
    shards: std::ops::Range<usize>,
    groups: std::ops::Range<usize>,
    beneficiary: Address,
) -> Result<FoldedGroups, FoldError> {
    // Room for every location of these shards in both lists: one allocation each, as growing
    // them would copy megabytes (and fault in fresh pages for each copy). Untouched capacity
    // costs address space only.
    let locations = memory.locations_in(shards.clone());
    let mut records: Vec<FinalRecord> = Vec::with_capacity(locations);
    let mut slots: Vec<FinalSlot> = Vec::with_capacity(locations);
    // The beneficiary's record, kept aside until its fee lanes are read.
    let mut beneficiary_record: Option<RecordTop> = None;
    let mut failure: Option<FoldError> = None;
    let committed = |address: &Address| state.account(address).map_err(|e| Ok(state_error(e)));
    let estimate_left = |txn_idx: TxnIndex| {
        Err(SchedulerError::<ExecutorError>::EstimateLeft { txn_idx }.to_string())
    };
    let walked = memory.for_each_final_in(shards, |location, top_down| {
        if failure.is_some() {
            return;
        }
        let folded = match location {
            // Read below, once the beneficiary's record is known.
            Location::FeeLane { .. } => Ok(()),
            Location::Account(address) => match RecordTop::of(top_down) {
                Ok(None) => Ok(()),
                Ok(Some(top)) if *address == beneficiary => {
                    beneficiary_record = Some(top);
                    Ok(())
                }
                Ok(Some(top)) => committed(address).map(|base| {
                    records.push(FinalRecord {
                        address: *address,
                        written: Some(credited(
                            top.below.unwrap_or(base),
                            &top.credits,
                            &NO_CREDITS,
                        )),
                        base,
                    });
                }),
                Err(reason) => Err(Err(reason.to_owned())),
            },
            Location::Storage(address, slot) => match top_down.next() {
                Some((_, MemValue::Storage(value))) => slot_before(state, address, slot, false)
                    .map(|before| slots.push((*address, *slot, *value, before)))
                    .map_err(Ok),
                _ => Err(Err("a non-storage value at a slot".to_owned())),
            },
        };
        if let Err(error) = folded {
            failure = Some(error);
        }
    });
    walked.map_err(estimate_left)?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    if groups.contains(&usize::from(address_group(&beneficiary))) {
        let base = committed(&beneficiary)?;
        let top = beneficiary_record.unwrap_or_else(RecordTop::untouched);
        // The lanes' fees above the record's writer, summed where they lie.
        let mut fees = Credits::above(top.floor);
        for lane in 0..FEE_LANES {
            let location = Location::FeeLane {
                group: address_group(&beneficiary),
                lane,
            };
            let mut added = Ok(());
            memory
                .for_final_of(&location, |top_down| {
                    for (txn_idx, value) in top_down {
                        added = added.and_then(|()| fees.add(txn_idx, value));
                    }
                })
                .map_err(estimate_left)?;
            added.map_err(|reason| Err(reason.to_owned()))?;
        }
        if top.written || fees.total().is_some() {
            records.push(FinalRecord {
                address: beneficiary,
                written: Some(credited(top.below.unwrap_or(base), &top.credits, &fees)),
                base,
            });
        }
    }
    records.sort_unstable_by_key(|record| record.address);
    // By reference: copying the keys out for every comparison costs more than comparing.
    slots.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(FoldedGroups { records, slots })
}

/// The second fold step: the normalized updates of the accounts of address groups `groups`,
/// joining the records of `parts[index]` with their slots from every part, in address order.
/// Accounts in `cleared` have their storage before the block voided; those without a final
/// record or slot cannot occur (creation and deletion both write the record), but stay
/// correct if they do.
fn join_groups<S: StateReader>(
    state: &S,
    parts: &[FoldedGroups],
    index: usize,
    groups: std::ops::Range<usize>,
    cleared: &alloy_primitives::map::HashSet<Address>,
) -> Result<Vec<(Address, AccountUpdate)>, ExecutorError> {
    let group = |address: &Address| usize::from(address_group(address));
    let in_groups = |address: &Address| groups.contains(&group(address));
    // Each part's slots of these groups: a run of its sorted list.
    let mut runs: Vec<&[FinalSlot]> = parts
        .iter()
        .map(|part| {
            let slots = &part.slots[..];
            let start = slots.partition_point(|(a, ..)| group(a) < groups.start);
            let end = slots.partition_point(|(a, ..)| group(a) < groups.end);
            &slots[start..end]
        })
        .collect();
    // The smallest (address, slot) at the heads of the runs.
    let next_slot = |runs: &mut Vec<&[FinalSlot]>| {
        let (at, _) = runs
            .iter()
            .enumerate()
            .filter_map(|(at, run)| run.first().map(|head| (at, (head.0, head.1))))
            .min_by(|a, b| a.1.cmp(&b.1))?;
        let (head, rest) = runs[at].split_first()?;
        runs[at] = rest;
        Some(*head)
    };
    let mut extra: Vec<Address> = cleared.iter().filter(|a| in_groups(a)).copied().collect();
    extra.sort_unstable();
    let mut extra = extra.into_iter().peekable();
    let records = parts.get(index).map_or(&[][..], |part| &part.records[..]);
    let mut records = records.iter().peekable();
    let mut pending_slot = next_slot(&mut runs);
    let mut updates = Vec::with_capacity(records.len());
    loop {
        let address = [
            records.peek().map(|record| record.address),
            pending_slot.map(|(address, ..)| address),
            extra.peek().copied(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(address) = address else { break };
        let record = records.next_if(|record| record.address == address);
        extra.next_if_eq(&address);
        let storage_cleared = !cleared.is_empty() && cleared.contains(&address);
        // In slot order: collected into the map in one pass, not inserted one by one.
        let mut changed_slots = Vec::new();
        while let Some((slot_address, slot, value, before)) = pending_slot
            && slot_address == address
        {
            let before = if storage_cleared { U256::ZERO } else { before };
            if value != before {
                changed_slots.push((slot, value));
            }
            pending_slot = next_slot(&mut runs);
        }
        let changed_slots: BTreeMap<U256, U256> = changed_slots.into_iter().collect();
        let (written, base) = match record {
            Some(record) => (record.written, record.base),
            None => (None, state.account(&address).map_err(state_error)?),
        };
        if let Some(update) = normalized_update(base, written, storage_cleared, changed_slots) {
            updates.push((address, update));
        }
    }
    Ok(updates)
}

/// For each transaction, whether a later one has the same sender; and the most transactions
/// any one sender has.
fn sender_chains(txs: &[TxEnv]) -> (Vec<bool>, usize) {
    let mut counts: HashMap<Address, usize> =
        HashMap::with_capacity_and_hasher(txs.len(), Default::default());
    let mut reused = vec![false; txs.len()];
    let mut longest = 0;
    for (txn_idx, tx) in txs.iter().enumerate().rev() {
        let count = counts.entry(tx.caller).or_default();
        reused[txn_idx] = *count > 0;
        *count += 1;
        longest = longest.max(*count);
    }
    (reused, longest)
}
