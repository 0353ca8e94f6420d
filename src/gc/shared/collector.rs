//! The background collector thread of the shared space (not under loom, whose models call
//! `SharedSpace::service_pending` themselves).
//!
//! Spawned on the first garbage set an automatic scan queues; it sleeps on a condition
//! variable and tears down the queued sets (finalizers, `Drop`s, freeing) at each wake-up. If
//! the thread cannot be spawned the sets stay queued until the next explicit `collect()`,
//! which finishes them. A child process forked after the thread started has no such thread:
//! the fork handler (`fork.rs`) marks it not started, and the child's first wake-up spawns
//! its own.

use crate::sync::unmodelled::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// `CollectorThread::state`: not spawned yet (or forked away), spawning, running, spawn
/// failed.
const NOT_STARTED: u8 = 0;
const SPAWNING: u8 = 1;
const RUNNING: u8 = 2;
const FAILED: u8 = 3;

/// The wake-up channel to the collector thread.
pub(crate) struct CollectorThread {
    wake: Mutex<bool>,
    cond: Condvar,
    state: AtomicU8,
}

impl CollectorThread {
    pub(crate) const fn new() -> Self {
        Self {
            wake: Mutex::new(false),
            cond: Condvar::new(),
            state: AtomicU8::new(NOT_STARTED),
        }
    }

    /// Wake the collector (spawning it the first time). The flag is set in every case but a
    /// failed spawn, also while another thread is still spawning it: a new collector thread
    /// finds it set and looks at the queue, so no wake-up is lost.
    pub(crate) fn wake(&self) {
        match self.state.load(Ordering::Acquire) {
            RUNNING | SPAWNING => {}
            NOT_STARTED => {
                if self
                    .state
                    .compare_exchange(NOT_STARTED, SPAWNING, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return self.wake();
                }
                let ok = std::thread::Builder::new()
                    .name("pyheap-gc".into())
                    .spawn(run)
                    .is_ok();
                self.state
                    .store(if ok { RUNNING } else { FAILED }, Ordering::Release);
                if !ok {
                    return;
                }
            }
            _ => return, // FAILED: the sets wait for an explicit `collect()`
        }
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        *w = true;
        self.cond.notify_one();
    }

    /// `fork()` prepare handler: hold the wake-up lock across the fork.
    pub(crate) fn lock_for_fork(&self) -> MutexGuard<'_, bool> {
        self.wake.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `fork()` child handler: the collector thread was not forked with us.
    pub(crate) fn forget_thread(&self) {
        self.state.store(NOT_STARTED, Ordering::Release);
    }

    pub(crate) fn wait(&self) {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        while !*w {
            w = self.cond.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        *w = false;
    }
}

/// The collector thread: wait, tear down, forever. A panicking `Drop` or finalizer in the
/// garbage does not stop a teardown (`gc::panics`): the first panic of each wake-up is
/// reported on stderr, as CPython's "Exception ignored in", and the thread lives on.
fn run() {
    let space = super::space::space();
    loop {
        space.collector_wait();
        space.service_pending_reporting(
            "a Drop or finalizer of garbage torn down by the pyheap-gc thread",
        );
        // This thread may now sleep for long: give back the medium blocks its collection
        // freed, which its cache would keep until its next allocation (`purge()` asks other
        // threads' caches to empty only at their next use).
        crate::alloc::flush_medium_cache();
    }
}
