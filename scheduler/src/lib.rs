//! Block-STM: executes the transactions of a block in parallel and produces exactly the result
//! of executing them one after another in block order.
//!
//! This is the algorithm of Gelashvili et al., "Block-STM: Scaling Blockchain Execution by
//! Turning Ordering Curse to a Performance Blessing" (PPoPP 2023). The crate knows nothing of
//! the EVM: a [`TransactionTask`] executes transaction `i` against a [`TxnView`] and returns the
//! locations it wrote; the crate decides what runs when and which results stand.
//!
//! # The algorithm
//!
//! * **Optimistic execution with versions.** Every transaction runs against the
//!   [`MvMemory`] (`mvmemory.rs`), which keeps, for each location, the value written by each
//!   transaction. Transaction `j` reads the write of the highest transaction `i < j`, or the
//!   committed state if there is none, and records where each read came from: the
//!   [`Version`] `(i, incarnation)` or the committed state.
//! * **Incarnations.** A transaction may run several times; run number `n` is its incarnation
//!   `n`. Writes are tagged with the incarnation that made them, so a re-execution that writes
//!   the same value still counts as a new version.
//! * **Validation.** After a transaction executes, a validation task re-reads its read set: if
//!   any location would now come from a different version, the incarnation is aborted
//!   ([`MvMemory::validate_read_set`]).
//! * **ESTIMATE markers.** An aborted incarnation's writes are not deleted but turned into
//!   ESTIMATE markers ([`MvMemory::convert_writes_to_estimates`]): they predict that the next
//!   incarnation writes there too. A transaction that reads an ESTIMATE stops
//!   ([`TaskError::Dependency`]) and is suspended until the writer re-executes, instead of
//!   running on to a certain abort.
//! * **The collaborative scheduler** (`scheduler.rs`). Two shared counters, the execution
//!   index and the validation index, point at the lowest transaction that may need each kind
//!   of task; a free worker takes the lower one. An abort lowers the validation index to
//!   revalidate every higher transaction; resuming suspended transactions lowers the execution
//!   index. A decrease counter and an active-task count let a worker decide that the block is
//!   done: both indices past the end, no task in flight, and no decrease since it looked. The
//!   transaction status machine (ReadyToExecute, Executing, Executed, Aborting) is documented
//!   on `Status` in `scheduler.rs`; dependency suspension and resumption are
//!   [`Scheduler::add_dependency`] and [`Scheduler::finish_execution`].
//! * **The worker loop** (`block_stm.rs`, Algorithm 1 of the paper). [`BlockRun::work`] runs
//!   tasks until the scheduler says done; [`BlockStm::run`] starts the workers on scoped
//!   threads and returns each transaction's output of its final incarnation.
//!
//! Beyond the paper, the memory supports **deltas** ([`MvValue::is_delta`]): commutative
//! updates that do not hide the write below them, so that transactions that only add to one
//! location (fee payments to the block's beneficiary, credits of plain transfers) do not
//! conflict. Locations can name a **key group** ([`TransactionTask::key_group`], sixteen
//! groups, each with its own shards of the memory), so that the caller can fold and free the
//! final state of whole groups on several threads ([`MvMemory::group_shards`]). The
//! active-task count is kept **per worker** (each worker updates only its own cache line; the
//! done check adds them up), as are the execution counts: on two cores a cache line passed
//! between them costs more than most of the bookkeeping it carries.
//!
//! Failures inside a run (a fatal task error, a panic, a broken invariant) do not panic the
//! caller: [`BlockStm::run`] returns a [`SchedulerError`] and the caller falls back to
//! sequential execution.
//!
//! The concurrent core is model-checked with loom: `RUSTFLAGS="--cfg loom" cargo test -p
//! chain-scheduler --release --test loom` (see `tests/loom.rs`).

/// The worker loop and the thread runner.
pub mod block_stm;
/// Errors of a parallel run.
pub mod error;
/// The multi-version memory.
pub mod mvmemory;
/// The collaborative scheduler.
pub mod scheduler;
mod sync;
/// Transaction indices, incarnations, versions and tasks.
pub mod types;

pub use block_stm::{
    BlockRun, BlockStm, ContentionLimit, ExecutionResult, TaskError, TaskOutput, TransactionTask,
    TxnView, fold_deltas,
};
pub use error::SchedulerError;
pub use mvmemory::{
    IndexedRead, KEY_GROUPS, MvMemory, MvRead, MvValue, ReadEntry, ReadOrigin, ReadSet,
};
pub use scheduler::Scheduler;
pub use types::{Incarnation, Task, TxnIndex, Version};
