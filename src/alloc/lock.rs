//! `RawLock`: the allocator's locks (the arena manager's, the heap registry's), a
//! test-and-test-and-set spin lock that yields to the scheduler when it spins for long.
//!
//! The allocator cannot use `std::sync::Mutex` guards across `fork()` handlers (they cannot be
//! force-unlocked) nor `parking_lot` (it allocates its parking table). The lock guards only
//! short list manipulations on slow paths (taking or returning a pool; binding, abandoning or
//! retiring a heap); no system call and no user code runs under it.

use crate::sync::{maybe_const_fn, spin_wait, AtomicBool, Ordering};

pub(crate) struct RawLock {
    locked: AtomicBool,
}

impl RawLock {
    maybe_const_fn! {
        pub(crate) fn new() -> RawLock {
            RawLock { locked: AtomicBool::new(false) }
        }
    }

    pub(crate) fn lock(&self) {
        let mut round = 0;
        loop {
            if !self.locked.swap(true, Ordering::Acquire) {
                return;
            }
            while self.locked.load(Ordering::Relaxed) {
                spin_wait(round);
                round = round.saturating_add(1);
            }
        }
    }

    pub(crate) fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Mark the lock free without owning it. Only for the child side of `fork()`, where the
    /// thread that holds it (the forking thread, in the prepare handler) is the only thread.
    #[cfg(not(loom))]
    pub(crate) fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}
