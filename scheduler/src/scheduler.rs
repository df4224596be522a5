//! The collaborative scheduler of Block-STM (Algorithms 4 and 5 of the paper).
//!
//! Two shared indices, `execution_idx` and `validation_idx`, point at the lowest transaction
//! that may need an execution or a validation task; every worker takes the lower of the two
//! next. Aborts and resumptions move the indices down again, and `decrease_cnt` counts those
//! moves so that `check_done` can tell a quiet moment from a finished block.

use crate::{
    sync::{AtomicBool, AtomicUsize, Mutex, Ordering},
    types::{Incarnation, Task, TxnIndex, Version},
};
use crossbeam_utils::CachePadded;

/// Where a transaction is in its life.
///
/// ```text
///  ReadyToExecute(i) --try_incarnate--> Executing(i) --finish_execution--> Executed(i)
///         ^                                 |                                  |
///         |                          add_dependency                 try_validation_abort
///         |                                 v                                  |
///         +--------- set_ready_status --- Aborting(i) <-------------------------+
///                      (i becomes i + 1)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for a worker to run incarnation `i`.
    ReadyToExecute,
    /// A worker runs incarnation `i`.
    Executing,
    /// Incarnation `i` ran and recorded its reads and writes.
    Executed,
    /// Incarnation `i` is void (a read turned out stale, or it met an ESTIMATE); its writes
    /// are ESTIMATE markers until incarnation `i + 1` runs.
    Aborting,
}

/// Incarnation number and status of one transaction, updated under one lock.
#[derive(Debug)]
struct TxnState {
    incarnation: Incarnation,
    status: Status,
}

/// Slots of the active-task count: workers beyond this many share slots.
pub(crate) const WORKER_SLOTS: usize = if cfg!(loom) { 2 } else { 16 };

/// The shared task dispenser of one block.
///
/// Memory ordering: every atomic here uses `SeqCst`. The algorithm's correctness argument (and
/// `check_done` in particular, which reads three counters and must not see a decrease of an
/// index without the matching increment of `decrease_cnt`) assumes one total order of these
/// operations, which only `SeqCst` gives. On x86 the cost over `AcqRel` is one `xchg` per
/// store; the read-modify-write operations cost the same.
#[derive(Debug)]
pub struct Scheduler {
    num_txns: usize,
    /// Next transaction to hand out for execution. `SeqCst`: see the type's docs.
    execution_idx: CachePadded<AtomicUsize>,
    /// Next transaction to hand out for validation. `SeqCst`: see the type's docs.
    validation_idx: CachePadded<AtomicUsize>,
    /// Number of times either index was moved down. `SeqCst`: see the type's docs.
    decrease_cnt: CachePadded<AtomicUsize>,
    /// Tasks handed out and not finished, counted per worker slot: every task is counted in
    /// the slot of the worker that runs it (a task passed on as a return value stays with that
    /// worker), so a worker only ever updates its own cache line, and only `check_done` adds
    /// them up. The sum is the paper's single counter. `SeqCst`: see the type's docs.
    num_active_tasks: Box<[CachePadded<AtomicUsize>]>,
    /// Hands out worker slots. Relaxed: any assignment is correct (workers that share a slot
    /// share its counter); it only spreads them.
    next_worker_slot: AtomicUsize,
    /// Set once every transaction is executed and validated (or the block is halted).
    /// `SeqCst` so that a worker that sees it also sees every write made before it.
    done_marker: CachePadded<AtomicBool>,
    /// Transactions suspended until the transaction at this index finishes executing.
    /// Per-transaction entries are not cache-padded: padding would make a 10,000-transaction
    /// block allocate and fault in megabytes per array, and two workers rarely touch
    /// neighbouring transactions' entries at the same moment.
    txn_dependency: Box<[Mutex<Vec<TxnIndex>>]>,
    /// Incarnation and status per transaction.
    txn_status: Box<[Mutex<TxnState>]>,
}

impl Scheduler {
    /// A scheduler for a block of `num_txns` transactions, all ready to execute.
    pub fn new(num_txns: usize) -> Self {
        Self {
            num_txns,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: (0..WORKER_SLOTS)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            next_worker_slot: AtomicUsize::new(0),
            done_marker: CachePadded::new(AtomicBool::new(num_txns == 0)),
            txn_dependency: (0..num_txns).map(|_| Mutex::new(Vec::new())).collect(),
            txn_status: (0..num_txns)
                .map(|_| {
                    Mutex::new(TxnState {
                        incarnation: 0,
                        status: Status::ReadyToExecute,
                    })
                })
                .collect(),
        }
    }

    /// A slot for one worker's active-task count. Each worker takes one before its first task
    /// and passes it to every call that starts or ends a task.
    pub fn worker_slot(&self) -> usize {
        self.next_worker_slot.fetch_add(1, Ordering::Relaxed) % WORKER_SLOTS
    }

    fn active(&self, slot: usize) -> &AtomicUsize {
        &self.num_active_tasks[slot % WORKER_SLOTS]
    }

    /// Number of transactions in the block.
    pub fn num_txns(&self) -> usize {
        self.num_txns
    }

    /// Whether all work is done (or the block was halted).
    pub fn done(&self) -> bool {
        self.done_marker.load(Ordering::SeqCst)
    }

    /// Stops every worker at its next call to [`Scheduler::next_task`] or
    /// [`Scheduler::done`]. Used when a task fails in a way that voids the parallel run.
    pub fn halt(&self) {
        self.done_marker.store(true, Ordering::SeqCst);
    }

    /// The next task for a worker, or `None` if there is nothing to do right now (the caller
    /// checks [`Scheduler::done`] and asks again). `slot` is the worker's
    /// [`Scheduler::worker_slot`], as for every call that starts or ends a task.
    pub fn next_task(&self, slot: usize) -> Option<Task> {
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate(slot).map(Task::Validation)
        } else {
            self.next_version_to_execute(slot).map(Task::Execution)
        }
    }

    /// Suspends `txn_idx` (whose execution read an ESTIMATE written by `blocking_txn_idx`)
    /// until `blocking_txn_idx` finishes executing. Returns `false` if it already has, in which
    /// case the caller re-executes `txn_idx` at once.
    pub fn add_dependency(
        &self,
        txn_idx: TxnIndex,
        blocking_txn_idx: TxnIndex,
        slot: usize,
    ) -> bool {
        debug_assert!(blocking_txn_idx < txn_idx);
        {
            let mut dependents = self.txn_dependency[blocking_txn_idx].lock();
            // Lock order: dependency list, then status. finish_execution never holds both.
            if self.txn_status[blocking_txn_idx].lock().status == Status::Executed {
                return false;
            }
            {
                let mut state = self.txn_status[txn_idx].lock();
                debug_assert_eq!(state.status, Status::Executing);
                state.status = Status::Aborting;
            }
            dependents.push(txn_idx);
        }
        self.active(slot).fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Marks the incarnation executed, resumes the transactions waiting for it, and returns
    /// its validation task if the caller should run it at once.
    ///
    /// `wrote_new_location` says whether this incarnation wrote a location the previous one
    /// did not: higher transactions may then have read past it and all need revalidation.
    pub fn finish_execution(
        &self,
        txn_idx: TxnIndex,
        incarnation: Incarnation,
        wrote_new_location: bool,
        slot: usize,
    ) -> Option<Task> {
        {
            let mut state = self.txn_status[txn_idx].lock();
            debug_assert_eq!(state.status, Status::Executing);
            debug_assert_eq!(state.incarnation, incarnation);
            state.status = Status::Executed;
        }
        let dependents = std::mem::take(&mut *self.txn_dependency[txn_idx].lock());
        self.resume_dependencies(&dependents);
        if self.validation_idx.load(Ordering::SeqCst) > txn_idx {
            if wrote_new_location {
                self.decrease_validation_idx(txn_idx);
            } else {
                return Some(Task::Validation(Version::new(txn_idx, incarnation)));
            }
        }
        self.active(slot).fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Claims the right to abort `incarnation` of `txn_idx` after a failed validation. Only
    /// one validator wins; the others see a different status or incarnation.
    pub fn try_validation_abort(&self, txn_idx: TxnIndex, incarnation: Incarnation) -> bool {
        let mut state = self.txn_status[txn_idx].lock();
        if state.incarnation == incarnation && state.status == Status::Executed {
            state.status = Status::Aborting;
            true
        } else {
            false
        }
    }

    /// Ends a validation task. After an abort, schedules the next incarnation (returned to the
    /// caller when it can run it at once) and revalidation of every higher transaction.
    pub fn finish_validation(&self, txn_idx: TxnIndex, aborted: bool, slot: usize) -> Option<Task> {
        if aborted {
            self.set_ready_status(txn_idx);
            self.decrease_validation_idx(txn_idx + 1);
            if self.execution_idx.load(Ordering::SeqCst) > txn_idx
                && let Some(version) = self.try_incarnate(txn_idx)
            {
                // The validation task's count in num_active_tasks passes to this execution.
                return Some(Task::Execution(version));
            }
        }
        self.active(slot).fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// The incarnation a transaction last reached and its status.
    #[cfg(test)]
    pub(crate) fn state(&self, txn_idx: TxnIndex) -> (Incarnation, Status) {
        let state = self.txn_status[txn_idx].lock();
        (state.incarnation, state.status)
    }

    fn decrease_execution_idx(&self, target_idx: TxnIndex) {
        self.execution_idx.fetch_min(target_idx, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target_idx: TxnIndex) {
        self.validation_idx.fetch_min(target_idx, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    /// Reading the slots one after another instead of one counter is as good: with both
    /// indices past the end, a task can only start from an active one (a task passed on, or a
    /// decrease of an index). If that active task's slot reads zero, the task ended before the
    /// read, and any decrease it made shows in `decrease_cnt` at the final load; if it is
    /// still running, its slot is not zero.
    fn check_done(&self) {
        let observed_cnt = self.decrease_cnt.load(Ordering::SeqCst);
        let execution_idx = self.execution_idx.load(Ordering::SeqCst);
        let validation_idx = self.validation_idx.load(Ordering::SeqCst);
        if execution_idx.min(validation_idx) >= self.num_txns
            && self
                .num_active_tasks
                .iter()
                .all(|active| active.load(Ordering::SeqCst) == 0)
            && observed_cnt == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done_marker.store(true, Ordering::SeqCst);
        }
    }

    /// Moves `txn_idx` from ReadyToExecute to Executing. Does not touch `num_active_tasks`:
    /// its callers account for the task themselves.
    fn try_incarnate(&self, txn_idx: TxnIndex) -> Option<Version> {
        if txn_idx < self.num_txns {
            let mut state = self.txn_status[txn_idx].lock();
            if state.status == Status::ReadyToExecute {
                state.status = Status::Executing;
                return Some(Version::new(txn_idx, state.incarnation));
            }
        }
        None
    }

    fn next_version_to_execute(&self, slot: usize) -> Option<Version> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.num_txns {
            self.check_done();
            return None;
        }
        self.active(slot).fetch_add(1, Ordering::SeqCst);
        let idx = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        let version = self.try_incarnate(idx);
        if version.is_none() {
            self.active(slot).fetch_sub(1, Ordering::SeqCst);
        }
        version
    }

    fn next_version_to_validate(&self, slot: usize) -> Option<Version> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.num_txns {
            self.check_done();
            return None;
        }
        self.active(slot).fetch_add(1, Ordering::SeqCst);
        let idx = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if idx < self.num_txns {
            let state = self.txn_status[idx].lock();
            if state.status == Status::Executed {
                return Some(Version::new(idx, state.incarnation));
            }
        }
        self.active(slot).fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn set_ready_status(&self, txn_idx: TxnIndex) {
        let mut state = self.txn_status[txn_idx].lock();
        debug_assert_eq!(state.status, Status::Aborting);
        state.incarnation += 1;
        state.status = Status::ReadyToExecute;
    }

    fn resume_dependencies(&self, dependents: &[TxnIndex]) {
        for &dependent in dependents {
            self.set_ready_status(dependent);
        }
        if let Some(&min_dependent) = dependents.iter().min() {
            self.decrease_execution_idx(min_dependent);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn exec(i: TxnIndex, n: Incarnation) -> Option<Task> {
        Some(Task::Execution(Version::new(i, n)))
    }
    fn val(i: TxnIndex, n: Incarnation) -> Option<Task> {
        Some(Task::Validation(Version::new(i, n)))
    }

    #[test]
    fn executes_and_validates_in_order() {
        let s = Scheduler::new(2);
        assert_eq!(s.next_task(0), exec(0, 0));
        assert_eq!(s.finish_execution(0, 0, false, 0), None);
        assert_eq!(s.next_task(0), val(0, 0));
        assert_eq!(s.finish_validation(0, false, 0), None);
        assert_eq!(s.next_task(0), exec(1, 0));
        assert_eq!(s.finish_execution(1, 0, false, 0), None);
        assert_eq!(s.next_task(0), val(1, 0));
        assert_eq!(s.finish_validation(1, false, 0), None);
        assert!(!s.done());
        assert_eq!(s.next_task(0), None);
        assert!(s.done());
    }

    #[test]
    fn validation_skips_unexecuted_transactions() {
        let s = Scheduler::new(2);
        assert_eq!(s.next_task(0), exec(0, 0));
        // validation_idx (0) < execution_idx (1), but 0 is still executing: nothing to do.
        assert_eq!(s.next_task(0), None);
        // validation_idx is now 1 == execution_idx: the next task executes 1.
        assert_eq!(s.next_task(0), exec(1, 0));
        // 0 finishes after validation_idx passed it: it validates itself at once.
        assert_eq!(s.finish_execution(0, 0, false, 0), val(0, 0));
        assert_eq!(s.finish_validation(0, false, 0), None);
        // validation_idx (1) is not past 1: its validation is left to the next free worker.
        assert_eq!(s.finish_execution(1, 0, false, 0), None);
        assert_eq!(s.next_task(0), val(1, 0));
        assert_eq!(s.finish_validation(1, false, 0), None);
        assert_eq!(s.next_task(0), None);
        assert!(s.done());
    }

    #[test]
    fn abort_reincarnates_and_revalidates_higher() {
        let s = Scheduler::new(2);
        assert_eq!(s.next_task(0), exec(0, 0));
        assert_eq!(s.finish_execution(0, 0, false, 0), None);
        assert_eq!(s.next_task(0), val(0, 0));
        assert!(s.try_validation_abort(0, 0));
        assert!(
            !s.try_validation_abort(0, 0),
            "only one validator may abort"
        );
        assert_eq!(s.finish_validation(0, true, 0), exec(0, 1));
        assert_eq!(s.state(0), (1, Status::Executing));
        // validation_idx was lowered to 1, past 0: the re-execution validates itself.
        assert_eq!(
            s.finish_execution(0, 1, true, 0),
            None,
            "new location: validation_idx drops"
        );
        assert_eq!(s.next_task(0), val(0, 1));
        assert_eq!(s.finish_validation(0, false, 0), None);
        assert_eq!(s.next_task(0), exec(1, 0));
        assert_eq!(s.finish_execution(1, 0, false, 0), None);
        assert_eq!(s.next_task(0), val(1, 0));
        assert_eq!(s.finish_validation(1, false, 0), None);
        assert_eq!(s.next_task(0), None);
        assert!(s.done());
    }

    #[test]
    fn dependency_suspends_until_blocking_finishes() {
        let s = Scheduler::new(2);
        assert_eq!(s.next_task(0), exec(0, 0));
        assert_eq!(s.next_task(0), None);
        assert_eq!(s.next_task(0), exec(1, 0));
        assert!(s.add_dependency(1, 0, 0));
        assert_eq!(s.state(1), (0, Status::Aborting));
        assert!(!s.done());
        assert_eq!(s.finish_execution(0, 0, true, 0), None);
        assert_eq!(s.state(1), (1, Status::ReadyToExecute));
        // execution_idx went back to 1; validation_idx to 0.
        assert_eq!(s.next_task(0), val(0, 0));
        assert_eq!(s.finish_validation(0, false, 0), None);
        assert_eq!(s.next_task(0), exec(1, 1));
        assert_eq!(s.finish_execution(1, 1, false, 0), None);
        assert!(!s.add_dependency_possible(0));
        assert_eq!(s.next_task(0), val(1, 1));
        assert_eq!(s.finish_validation(1, false, 0), None);
        assert_eq!(s.next_task(0), None);
        assert!(s.done());
    }

    impl Scheduler {
        fn add_dependency_possible(&self, blocking: TxnIndex) -> bool {
            self.txn_status[blocking].lock().status != Status::Executed
        }
    }

    #[test]
    fn empty_block_is_done() {
        let s = Scheduler::new(0);
        assert!(s.done());
        assert_eq!(s.next_task(0), None);
    }
}
