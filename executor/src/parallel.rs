//! The parallel executor: each transaction is a Block-STM task whose revm database reads the
//! multi-version memory, falling through to the committed state.
//!
//! Memory locations are an account's record (nonce, balance, code hash) and each storage slot,
//! so transactions touching different accounts or slots never conflict. Code is
//! content-addressed and needs no versioning. Two kinds of writes are *deltas* that commute
//! (`MemValue::BalanceAdd`): the priority fee each transaction owes the beneficiary, and the
//! value of a plain transfer to an account without code. A transaction that reads such an
//! account sums the deltas below it; the others never wait for each other.

use crate::{
    CodeCache, ExecutionEnv, ExecutorError,
    diff::{FinalAccount, build_diff, state_error},
    evm::{
        BlockEvm, FeePayment, account_effect, add_balance, block_evm, info_from_account,
        maybe_precompile, receipt, run_tx, skip_reason,
    },
    outcome::{BlockOutput, SkipReason, TxOutcome},
};
use alloy_primitives::{Address, B256, Bloom, Bytes, TxKind, U256, map::HashMap};
use chain_primitives::{Account, StateReader};
use chain_scheduler::{
    BlockStm, MvMemory, MvRead, MvValue, SchedulerError, TaskError, TaskOutput, TransactionTask,
    TxnIndex, TxnView, fold_deltas,
};
use crossbeam_utils::CachePadded;
use parking_lot::RwLock;
use revm::{
    context::{DBErrorMarker, TxEnv, result::EVMError},
    state::{AccountInfo, Bytecode},
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A location in the multi-version memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// An account's nonce, balance and code hash.
    Account(Address),
    /// One storage slot.
    Storage(Address, U256),
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
    /// Executions started, for the abort-rate statistic. Relaxed: a counter read after the
    /// workers joined.
    executions: CachePadded<AtomicUsize>,
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
            self.task()?.code(account.code_hash)?
        } else {
            None
        };
        Ok(Some(info_from_account(account, code)))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.task()?.code(code_hash)?.unwrap_or_default())
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
    type Output = TxResult;
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

    fn retire_worker(&self, evm: Self::Worker) {
        let busy_ns = evm.ctx.journaled_state.database.busy_ns;
        self.busy_ns.fetch_add(busy_ns, Ordering::Relaxed);
    }

    fn execute(
        &self,
        evm: &mut Self::Worker,
        txn_idx: TxnIndex,
        _incarnation: chain_scheduler::Incarnation,
        view: &mut TxnView<'_, Location, MemValue>,
    ) -> Result<TaskOutput<Location, MemValue, TxResult>, TaskError<ExecutorError>> {
        self.executions.fetch_add(1, Ordering::Relaxed);
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
                    output,
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
            writes.push((Location::Account(beneficiary), MemValue::BalanceAdd(fee)));
        }
        output.outcome = TxOutcome::Included(receipt);
        Ok(TaskOutput { writes, output })
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
        executions: CachePadded::new(AtomicUsize::new(0)),
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
fn assemble<S: StateReader>(
    state: &S,
    env: &ExecutionEnv,
    runner: &BlockStm,
    txs: &[TxEnv],
    outputs: Vec<TxResult>,
    memory: &MvMemory<Location, MemValue>,
) -> Result<Result<BlockOutput, String>, ExecutorError> {
    // A contract deployed at an address that a later transaction paid as a plain account
    // would have run code there.
    let mut created_at: HashMap<Address, TxnIndex> = HashMap::default();
    for (txn_idx, output) in outputs.iter().enumerate() {
        for address in &output.created {
            created_at.entry(*address).or_insert(txn_idx);
        }
    }
    for (txn_idx, output) in outputs.iter().enumerate() {
        if let Some(recipient) = output.deferred_recipient
            && created_at
                .get(&recipient)
                .is_some_and(|&creator| creator < txn_idx)
        {
            return Ok(Err(format!(
                "transaction {txn_idx} paid {recipient} as a plain account, but transaction \
                     {} deployed code there first",
                created_at[&recipient]
            )));
        }
    }

    let mut storage_cleared: Vec<Address> = Vec::new();
    let mut new_codes: HashMap<B256, Bytes> = HashMap::default();
    let mut outcomes = Vec::with_capacity(outputs.len());
    let mut gas_used = 0u64;
    let mut bloom = Bloom::ZERO;
    for (txn_idx, output) in outputs.into_iter().enumerate() {
        let mut outcome = output.outcome;
        if let TxOutcome::Included(receipt) = &mut outcome {
            let remaining = env.block.gas_limit.saturating_sub(gas_used);
            if txs[txn_idx].gas_limit > remaining {
                // Sequentially this transaction is skipped, which changes what later ones see.
                return Ok(Err(format!(
                    "transaction {txn_idx} exceeds the block's remaining gas"
                )));
            }
            gas_used += receipt.gas_used;
            receipt.cumulative_gas_used = gas_used;
            bloom |= receipt.logs_bloom;
        }
        outcomes.push(outcome);
        storage_cleared.extend(output.storage_cleared);
        new_codes.extend(output.new_codes);
    }

    // Fold the final writes shard by shard on the workers' threads, each sorting its part by
    // account; then merge the sorted parts and group them into accounts, without hashing.
    let shard_ranges: Vec<std::ops::Range<usize>> = {
        let shards = memory.shard_count();
        let parts = runner.threads().get().min(shards);
        let per = shards.div_ceil(parts);
        (0..parts)
            .map(|p| p * per..((p + 1) * per).min(shards))
            .collect()
    };
    let folded = par_chunks_each(shard_ranges, runner, |ranges| {
        let mut parts = Vec::new();
        for range in ranges {
            fold_final(state, memory, range, &mut parts)?;
        }
        parts.sort_unstable_by_key(|(address, _)| *address);
        Ok::<_, Result<ExecutorError, String>>(parts)
    });
    let mut sorted: Vec<(Address, FinalPart)> = Vec::new();
    for part in folded {
        match part {
            Ok(part) => sorted = merge_sorted(sorted, part),
            Err(Ok(error)) => return Err(error),
            Err(Err(reason)) => return Ok(Err(reason)),
        }
    }
    let cleared: alloy_primitives::map::HashSet<Address> = storage_cleared.into_iter().collect();
    let mut accounts: Vec<(Address, FinalAccount)> = Vec::with_capacity(sorted.len());
    for (address, part) in sorted {
        if accounts.last().is_none_or(|(last, _)| *last != address) {
            let storage_cleared = cleared.contains(&address);
            accounts.push((
                address,
                FinalAccount {
                    storage_cleared,
                    ..FinalAccount::default()
                },
            ));
        }
        let account = &mut accounts.last_mut().expect("pushed above").1;
        match part {
            FinalPart::Info(info) => account.info = Some(info),
            FinalPart::Slot(slot, value) => account.storage.push((slot, value)),
        }
    }
    // Accounts created or deleted without a final account write cannot occur (creation and
    // deletion both write the record), but stay correct if they do.
    for address in cleared {
        if accounts
            .binary_search_by_key(&address, |(a, _)| *a)
            .is_err()
        {
            accounts.push((
                address,
                FinalAccount {
                    storage_cleared: true,
                    ..FinalAccount::default()
                },
            ));
        }
    }
    let diff = build_diff(state, accounts, &new_codes, Some(runner))?;
    Ok(Ok(BlockOutput {
        outcomes,
        gas_used,
        logs_bloom: bloom,
        diff,
    }))
}

/// One final value of an account's record or of one of its slots.
enum FinalPart {
    Info(Option<Account>),
    Slot(U256, U256),
}

/// Merges two lists sorted by address into one.
fn merge_sorted(
    a: Vec<(Address, FinalPart)>,
    b: Vec<(Address, FinalPart)>,
) -> Vec<(Address, FinalPart)> {
    if a.is_empty() {
        return b;
    }
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some((x, _)), Some((y, _))) => x <= y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        merged.extend(if take_a { a.next() } else { b.next() });
    }
    merged
}

/// Folds the final writes of some shards: deltas summed onto the value below them. The error
/// is a state read failure (`Ok`) or a reason to fall back (`Err`).
fn fold_final<S: StateReader>(
    state: &S,
    memory: &MvMemory<Location, MemValue>,
    shards: std::ops::Range<usize>,
    parts: &mut Vec<(Address, FinalPart)>,
) -> Result<(), Result<ExecutorError, String>> {
    let mut failure = None;
    let walked = memory.for_each_final_in(shards, |location, top_down| {
        if failure.is_some() {
            return;
        }
        match location {
            Location::Account(address) => {
                let mut added = U256::ZERO;
                let mut deltas = 0usize;
                let mut base = None;
                for (_, value) in top_down {
                    match value {
                        MemValue::BalanceAdd(amount) => {
                            added = added.saturating_add(*amount);
                            deltas += 1;
                        }
                        MemValue::Account(account) => {
                            base = Some(*account);
                            break;
                        }
                        MemValue::Storage(_) => {
                            failure = Some(Err("a storage value at an account".to_owned()));
                            return;
                        }
                    }
                }
                let base = match base {
                    Some(account) => account,
                    None => match state.account(address) {
                        Ok(account) => account,
                        Err(e) => {
                            failure = Some(Ok(state_error(e)));
                            return;
                        }
                    },
                };
                // Balance additions commute, and applying them one by one or summed gives the
                // same account: only whether it ends empty matters for existence.
                let info = if deltas == 0 {
                    base
                } else {
                    add_balance(base, added)
                };
                parts.push((*address, FinalPart::Info(info)));
            }
            Location::Storage(address, slot) => match top_down.next() {
                Some((_, MemValue::Storage(value))) => {
                    parts.push((*address, FinalPart::Slot(*slot, *value)));
                }
                _ => failure = Some(Err("a non-storage value at a slot".to_owned())),
            },
        }
    });
    if let Err(txn_idx) = walked {
        return Err(Err(SchedulerError::<ExecutorError>::EstimateLeft {
            txn_idx,
        }
        .to_string()));
    }
    failure.map_or(Ok(()), Err)
}

/// Runs `work` on each worker of `runner` with one of `items` (one item per worker).
fn par_chunks_each<T: Send, R: Send>(
    items: Vec<T>,
    runner: &BlockStm,
    work: impl Fn(Vec<T>) -> R + Sync,
) -> Vec<R> {
    let slots: Vec<parking_lot::Mutex<Option<T>>> = items
        .into_iter()
        .map(|item| parking_lot::Mutex::new(Some(item)))
        .collect();
    runner.broadcast(|index, _| {
        work(
            slots
                .get(index)
                .and_then(|slot| slot.lock().take())
                .into_iter()
                .collect(),
        )
    })
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
