//! The worker loop that ties the [`Scheduler`] and the [`MvMemory`] to a [`TransactionTask`]
//! (Algorithm 1 of the paper), and [`BlockStm`], which runs it on scoped threads.

use crate::{
    error::SchedulerError,
    mvmemory::{IndexedRead, MvMemory, MvRead, MvValue, ReadOrigin, ReadSet},
    scheduler::Scheduler,
    sync::{Mutex, spin_hint, yield_now},
    types::{Incarnation, Task, TxnIndex, Version},
};
use std::{hash::Hash, num::NonZeroUsize, panic::AssertUnwindSafe};

/// Looks for a task that a worker spins through before it starts yielding its core.
const IDLE_SPINS: u32 = 64;

/// Why a task's execution stopped early.
#[derive(Debug)]
pub enum TaskError<E> {
    /// A read met an ESTIMATE of this lower transaction; run again after it re-executes.
    Dependency(TxnIndex),
    /// The task cannot go on (e.g. the committed state failed to read). Ends the parallel run.
    Fatal(E),
}

/// The result of one incarnation.
#[derive(Debug)]
pub struct TaskOutput<K, V, O> {
    /// Every location written, with its value (at most one entry per location).
    pub writes: Vec<(K, V)>,
    /// What the caller gets back for this transaction if this incarnation is the last.
    pub output: O,
}

/// The per-transaction work Block-STM schedules. Knows the transactions; Block-STM knows only
/// their indices, and the locations and values they read and write.
pub trait TransactionTask: Sync {
    /// A memory location (an account, a storage slot...).
    type Key: Eq + Hash + Clone + Send + Sync;
    /// What is stored at a location.
    type Value: MvValue;
    /// The per-transaction result (receipt, gas...).
    type Output: Send;
    /// A fatal error.
    type Error: Send;
    /// Scratch state a worker keeps across the transactions it executes in one block (an
    /// interpreter instance, buffers), so that each execution need not build them anew.
    type Worker;

    /// A fresh worker state; called once per worker thread and block.
    fn worker(&self) -> Self::Worker;

    /// Locations transaction `txn_idx` is expected to write, known before anything runs (for
    /// an EVM block: the sender's account of a transaction that another one from the same
    /// sender follows). They start as ESTIMATE markers, so that a reader waits for the writer
    /// instead of executing on a stale value and being aborted. A wrong guess costs a wait,
    /// never correctness: the writer's first execution replaces the markers with what it
    /// really wrote.
    fn predicted_writes(&self, txn_idx: TxnIndex) -> Vec<Self::Key> {
        let _ = txn_idx;
        Vec::new()
    }

    /// The key group of a location (see [`MvMemory::with_key_groups`]); `None`, the default,
    /// spreads locations over the groups by hash.
    fn key_group(key: &Self::Key) -> Option<u8> {
        let _ = key;
        None
    }

    /// Receives a worker's state when it stops working on the block (for statistics).
    fn retire_worker(&self, worker: Self::Worker) {
        drop(worker);
    }

    /// Executes transaction `txn_idx` reading through `view`.
    fn execute(
        &self,
        worker: &mut Self::Worker,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        view: &mut TxnView<'_, Self::Key, Self::Value>,
    ) -> ExecutionResult<Self>;
}

/// What [`TransactionTask::execute`] of task `T` returns.
pub type ExecutionResult<T> = Result<
    TaskOutput<
        <T as TransactionTask>::Key,
        <T as TransactionTask>::Value,
        <T as TransactionTask>::Output,
    >,
    TaskError<<T as TransactionTask>::Error>,
>;

/// What one incarnation sees: the multi-version memory below its transaction. Records every
/// read for validation.
#[derive(Debug)]
pub struct TxnView<'a, K, V> {
    memory: &'a MvMemory<K, V>,
    txn_idx: TxnIndex,
    reads: ReadSet<K>,
}

impl<'a, K: Eq + Hash + Clone, V: MvValue> TxnView<'a, K, V> {
    /// A view for transaction `txn_idx`.
    pub fn new(memory: &'a MvMemory<K, V>, txn_idx: TxnIndex) -> Self {
        Self {
            memory,
            txn_idx,
            reads: Vec::new(),
        }
    }

    /// The transaction this view reads for.
    pub fn txn_idx(&self) -> TxnIndex {
        self.txn_idx
    }

    /// Reads `key`. [`MvRead::Storage`] means the caller reads the committed state. An `Err`
    /// carries the lower transaction to wait for: return it as [`TaskError::Dependency`].
    pub fn read(&mut self, key: &K) -> Result<MvRead<V>, TxnIndex> {
        let (value, entry) = self.memory.read_for(key, self.txn_idx)?;
        self.reads.push(entry);
        Ok(value)
    }

    /// [`TxnView::read`] with the transaction that wrote each value read (the read set is the
    /// same).
    pub fn read_indexed(&mut self, key: &K) -> Result<IndexedRead<V>, TxnIndex> {
        let (value, entry) = self.memory.read_indexed_for(key, self.txn_idx)?;
        self.reads.push(entry);
        Ok(value)
    }

    /// Records a read whose origin is known without looking (used by tasks that read through
    /// their own caches); prefer [`TxnView::read`].
    pub fn record_read(&mut self, key: K, origin: ReadOrigin) {
        self.reads.push(self.memory.read_entry(key, origin));
    }

    fn into_reads(self) -> ReadSet<K> {
        self.reads
    }
}

/// Shared state of one parallel run: everything the workers touch.
#[derive(Debug)]
pub struct BlockRun<'t, T: TransactionTask> {
    task: &'t T,
    scheduler: Scheduler,
    memory: MvMemory<T::Key, T::Value>,
    outputs: Box<[Mutex<Option<T::Output>>]>,
    failure: Mutex<Option<SchedulerError<T::Error>>>,
    contention: Option<ContentionLimit>,
    /// Executions that ended early on a dependency or were aborted by validation. Relaxed: a
    /// heuristic counter, incremented only on waste, so uncontended blocks never touch it.
    wasted: crossbeam_utils::CachePadded<crate::sync::AtomicUsize>,
    /// Executions started, per worker slot (see [`Scheduler::worker_slot`]) so that counting
    /// does not pass a cache line between the workers on every transaction. Relaxed: a
    /// statistic and a heuristic's denominator; a stale read only delays or advances the
    /// contention decision by a few executions.
    executions: Box<[crossbeam_utils::CachePadded<crate::sync::AtomicUsize>]>,
}

/// When a block is so contended that Block-STM would be slower than executing it in order,
/// the run stops with [`SchedulerError::Contended`] and the caller executes sequentially.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentionLimit {
    /// Wasted executions tolerated before the ratio below is checked at all.
    pub min_wasted: usize,
    /// Stop when wasted executions exceed this fraction (in percent) of the executions
    /// started so far.
    pub max_wasted_percent: usize,
}

impl Default for ContentionLimit {
    fn default() -> Self {
        Self {
            min_wasted: 64,
            max_wasted_percent: 40,
        }
    }
}

impl<'t, T: TransactionTask> BlockRun<'t, T> {
    /// A run of `num_txns` transactions of `task`.
    pub fn new(task: &'t T, num_txns: usize) -> Self {
        Self::with_contention_limit(task, num_txns, None)
    }

    /// A run that gives up with [`SchedulerError::Contended`] past `limit`.
    pub fn with_contention_limit(
        task: &'t T,
        num_txns: usize,
        limit: Option<ContentionLimit>,
    ) -> Self {
        let memory = MvMemory::with_key_groups(num_txns, T::key_group);
        for txn_idx in 0..num_txns {
            let predicted = task.predicted_writes(txn_idx);
            if !predicted.is_empty() {
                memory.seed_estimates(txn_idx, predicted);
            }
        }
        Self {
            task,
            scheduler: Scheduler::new(num_txns),
            memory,
            outputs: (0..num_txns).map(|_| Mutex::new(None)).collect(),
            failure: Mutex::new(None),
            contention: limit,
            wasted: crossbeam_utils::CachePadded::new(crate::sync::AtomicUsize::new(0)),
            executions: (0..crate::scheduler::WORKER_SLOTS)
                .map(|_| crossbeam_utils::CachePadded::new(crate::sync::AtomicUsize::new(0)))
                .collect(),
        }
    }

    /// Executions started so far (re-executions included).
    pub fn executions(&self) -> usize {
        self.executions
            .iter()
            .map(|count| count.load(crate::sync::Ordering::Relaxed))
            .sum()
    }

    /// Counts a wasted execution and stops the run if the block is too contended.
    fn waste(&self) {
        let Some(limit) = self.contention else { return };
        let wasted = self.wasted.fetch_add(1, crate::sync::Ordering::Relaxed) + 1;
        let executions = self.executions();
        if wasted >= limit.min_wasted && wasted * 100 > executions * limit.max_wasted_percent {
            self.fail(SchedulerError::Contended { wasted, executions });
        }
    }

    /// The scheduler of this run.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// One worker: takes tasks until the block is done. Run it on every thread.
    pub fn work(&self) {
        let mut worker = self.task.worker();
        let slot = self.scheduler.worker_slot();
        let mut task = None;
        // Consecutive looks that found nothing to do. Past a few, the worker yields its core:
        // with more workers than cores, a spinning worker would otherwise hold a core that a
        // worker with a task (perhaps the one everybody waits for) needs.
        let mut idle = 0u32;
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execution(version)) => self.try_execute(&mut worker, version, slot),
                Some(Task::Validation(version)) => self.validate(version, slot),
                None => {
                    let next = self.scheduler.next_task(slot);
                    if next.is_none() {
                        idle += 1;
                        if idle < IDLE_SPINS {
                            spin_hint();
                        } else {
                            yield_now();
                        }
                    } else {
                        idle = 0;
                    }
                    next
                }
            };
        }
        self.task.retire_worker(worker);
    }

    fn try_execute(&self, worker: &mut T::Worker, version: Version, slot: usize) -> Option<Task> {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        loop {
            self.executions[slot % self.executions.len()]
                .fetch_add(1, crate::sync::Ordering::Relaxed);
            let mut view = TxnView::new(&self.memory, txn_idx);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.task.execute(worker, txn_idx, incarnation, &mut view)
            }));
            match result {
                Ok(Ok(TaskOutput { writes, output })) => {
                    let wrote_new_location = self.memory.record(version, view.into_reads(), writes);
                    *self.outputs[txn_idx].lock() = Some(output);
                    return self.scheduler.finish_execution(
                        txn_idx,
                        incarnation,
                        wrote_new_location,
                        slot,
                    );
                }
                Ok(Err(TaskError::Dependency(blocking))) => {
                    if blocking >= txn_idx {
                        self.fail(SchedulerError::InvalidDependency { txn_idx, blocking });
                        return None;
                    }
                    self.waste();
                    if self.scheduler.add_dependency(txn_idx, blocking, slot) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: run again at once.
                }
                Ok(Err(TaskError::Fatal(error))) => {
                    self.fail(SchedulerError::Task { txn_idx, error });
                    return None;
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic".to_owned());
                    self.fail(SchedulerError::Panic { txn_idx, message });
                    return None;
                }
            }
        }
    }

    fn validate(&self, version: Version, slot: usize) -> Option<Task> {
        let Version {
            txn_idx,
            incarnation,
        } = version;
        let valid = self.memory.validate_read_set(txn_idx);
        let aborted = !valid && self.scheduler.try_validation_abort(txn_idx, incarnation);
        if aborted {
            self.memory.convert_writes_to_estimates(txn_idx);
            self.waste();
        }
        self.scheduler.finish_validation(txn_idx, aborted, slot)
    }

    fn fail(&self, error: SchedulerError<T::Error>) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            *failure = Some(error);
        }
        self.scheduler.halt();
    }

    /// Ends the run: the last incarnation's output of every transaction, and the memory that
    /// holds their final writes (see [`MvMemory::for_each_final`]).
    #[allow(clippy::type_complexity)]
    pub fn finish(
        self,
    ) -> Result<(Vec<T::Output>, MvMemory<T::Key, T::Value>), SchedulerError<T::Error>> {
        if let Some(error) = self.failure.into_inner() {
            return Err(error);
        }
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for (txn_idx, slot) in self.outputs.into_vec().into_iter().enumerate() {
            match slot.into_inner() {
                Some(output) => outputs.push(output),
                None => return Err(SchedulerError::MissingOutput { txn_idx }),
            }
        }
        Ok((outputs, self.memory))
    }
}

/// Runs blocks through Block-STM on a fixed set of worker threads that live as long as the
/// runner.
///
/// The workers are a dedicated rayon pool used only through [`rayon::ThreadPool::broadcast`]:
/// every worker runs [`BlockRun::work`] once per block. This cannot deadlock the way Block-STM
/// on a shared rayon pool can: a worker that spins waiting for work never calls into rayon, so
/// it never steals a nested job, and `run_lock` keeps two blocks from sharing the pool at once
/// (two broadcasts interleaved could leave each block's workers spinning on a worker that is
/// busy with the other block). Persistent threads also keep their allocator caches warm: fresh
/// threads per block paid for page faults on every block.
#[derive(Debug)]
pub struct BlockStm {
    pool: rayon::ThreadPool,
    threads: NonZeroUsize,
    run_lock: std::sync::Mutex<()>,
    contention: Option<ContentionLimit>,
}

impl BlockStm {
    /// A runner with `threads` workers.
    pub fn new(threads: NonZeroUsize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.get())
            .thread_name(|i| format!("block-stm-{i}"))
            .build()
            .expect("spawning worker threads succeeds");
        Self {
            pool,
            threads,
            run_lock: std::sync::Mutex::new(()),
            contention: Some(ContentionLimit::default()),
        }
    }

    /// Sets when a run gives up on a contended block (`None`: never; Block-STM then runs every
    /// block to the end however contended).
    pub fn with_contention_limit(mut self, limit: Option<ContentionLimit>) -> Self {
        self.contention = limit;
        self
    }

    /// Number of worker threads.
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
    }

    /// When a run gives up on a contended block (`None`: never).
    pub fn contention_limit(&self) -> Option<ContentionLimit> {
        self.contention
    }

    /// Executes transactions `0..num_txns` of `task` and returns each one's output from its
    /// final incarnation, plus the memory holding the final writes.
    #[allow(clippy::type_complexity)]
    pub fn run<T: TransactionTask>(
        &self,
        task: &T,
        num_txns: usize,
    ) -> Result<(Vec<T::Output>, MvMemory<T::Key, T::Value>), SchedulerError<T::Error>> {
        let run = BlockRun::with_contention_limit(task, num_txns, self.contention);
        if num_txns > 0 {
            let _exclusive = self
                .run_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.pool.broadcast(|_| run.work());
        }
        run.finish()
    }

    /// Runs `job(i, n)` once on each of the `n` workers and returns the results in worker
    /// order: for the caller's own parallel steps (folding the final state) on threads whose
    /// caches are warm.
    pub fn broadcast<R: Send>(&self, job: impl Fn(usize, usize) -> R + Sync) -> Vec<R> {
        let _exclusive = self
            .run_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.pool
            .broadcast(|ctx| job(ctx.index(), ctx.num_threads()))
    }
}

/// Folds a read that may have met deltas into one value: `base` is the value below the
/// deltas (from [`MvRead::Deltas::base`] or the committed state).
pub fn fold_deltas<V, B>(deltas: &[V], base: B, apply: impl FnMut(B, &V) -> B) -> B {
    deltas.iter().rev().fold(base, apply)
}
