//! The background collector thread of the shared space (not under loom, whose models call
//! `SharedSpace::service_pending` themselves).
//!
//! Spawned on the first garbage set an automatic scan queues; it sleeps on a condition
//! variable and tears down the queued sets (finalizers, `Drop`s, freeing) at each wake-up. If
//! the thread cannot be spawned the sets stay queued until the next explicit `collect()`,
//! which finishes them.

use std::sync::{Condvar, Mutex, OnceLock};

/// The wake-up channel to the collector thread.
pub(crate) struct CollectorThread {
    wake: Mutex<bool>,
    cond: Condvar,
    started: OnceLock<bool>,
}

impl CollectorThread {
    pub(crate) const fn new() -> Self {
        Self {
            wake: Mutex::new(false),
            cond: Condvar::new(),
            started: OnceLock::new(),
        }
    }

    /// Wake the collector (spawning it the first time).
    pub(crate) fn wake(&self) {
        let running = *self.started.get_or_init(|| {
            std::thread::Builder::new()
                .name("pyheap-gc".into())
                .spawn(run)
                .is_ok()
        });
        if !running {
            return;
        }
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        *w = true;
        self.cond.notify_one();
    }

    pub(crate) fn wait(&self) {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        while !*w {
            w = self.cond.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        *w = false;
    }
}

/// The collector thread: wait, tear down, forever. A panicking `Drop` in the garbage is
/// caught (the objects it did not free stay leaked) so that automatic collection keeps
/// working.
fn run() {
    let space = super::space::space();
    loop {
        space.collector_wait();
        let _ = std::panic::catch_unwind(|| space.service_pending());
    }
}
