//! The global allocator of the `chaind` binary: mimalloc, with optional counting of live and
//! peak bytes so that `chaind bench` can report the peak memory of executing a block.
//!
//! Counting is off unless [`measure_peak`] turns it on: the timed runs pay one relaxed load of
//! a flag per allocation, not a shared counter that would make the workers contend.

use mimalloc::MiMalloc;
use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicBool, AtomicIsize, Ordering},
};

/// mimalloc plus optional accounting.
#[derive(Debug)]
pub struct TrackingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to mimalloc with the same arguments; the accounting only
// touches atomics.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc's contract.
        let ptr = unsafe { MiMalloc.alloc(layout) };
        if COUNTING.load(Ordering::Relaxed) && !ptr.is_null() {
            record(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            record(-(layout.size() as isize));
        }
        // SAFETY: forwarded unchanged.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { MiMalloc.alloc_zeroed(layout) };
        if COUNTING.load(Ordering::Relaxed) && !ptr.is_null() {
            record(layout.size() as isize);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let new = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if COUNTING.load(Ordering::Relaxed) && !new.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// mimalloc v3's `mi_option_arena_eager_commit` (the Rust bindings lack the constant).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// mimalloc v3's `mi_option_purge_delay`, in milliseconds.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes mimalloc for a node that executes a block every second or so: keep freed memory
/// committed for a few seconds instead of returning it to the OS after 10 ms. Each block
/// allocates and frees tens of megabytes; returned memory comes back as fresh pages that the
/// kernel must zero, which cost a fifth of a parallel block's time before this. Call once,
/// first thing in `main`.
pub fn configure() {
    // SAFETY: mi_option_set only stores an option value; it is called before any other
    // thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 3_000);
    }
}

fn record(delta: isize) {
    let live = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Runs `f` with counting on and returns its result and the peak bytes allocated while it ran
/// above what was live when it started (frees of memory allocated before may make the figure
/// slightly low, never high). Meaningful only in a binary whose global allocator is
/// [`TrackingAllocator`].
pub fn measure_peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let result = f();
    COUNTING.store(false, Ordering::SeqCst);
    (result, PEAK.load(Ordering::SeqCst).max(0) as usize)
}
