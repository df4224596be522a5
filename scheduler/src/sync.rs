//! Synchronisation primitives, swapped for loom's under `--cfg loom` so that the model checker
//! sees every lock and atomic the scheduler and the multi-version memory use.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A mutex whose `lock` never fails (poisoning is not used: a panicking worker aborts the block
/// and the whole parallel run is discarded).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(
    #[cfg(loom)] loom::sync::Mutex<T>,
    #[cfg(not(loom))] parking_lot::Mutex<T>,
);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(loom)]
        return Self(loom::sync::Mutex::new(value));
        #[cfg(not(loom))]
        return Self(parking_lot::Mutex::new(value));
    }

    #[cfg(loom)]
    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(not(loom))]
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
        self.0.lock()
    }

    pub(crate) fn into_inner(self) -> T {
        #[cfg(loom)]
        return self
            .0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(not(loom))]
        return self.0.into_inner();
    }
}

/// A readers-writer lock whose operations never fail, like [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct RwLock<T>(
    #[cfg(loom)] loom::sync::RwLock<T>,
    #[cfg(not(loom))] parking_lot::RwLock<T>,
);

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(loom)]
        return Self(loom::sync::RwLock::new(value));
        #[cfg(not(loom))]
        return Self(parking_lot::RwLock::new(value));
    }

    #[cfg(loom)]
    pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(not(loom))]
    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, T> {
        self.0.read()
    }

    #[cfg(loom)]
    pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(not(loom))]
    pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, T> {
        self.0.write()
    }
}

/// Called by a worker that found no task: lets loom schedule another thread (a spin loop
/// without a yield point is an infinite branch to the model checker), and on real hardware
/// tells the core that this is a spin loop.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the core to another thread: under loom a yield point like [`spin_hint`].
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
