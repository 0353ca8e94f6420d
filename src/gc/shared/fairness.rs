//! Scans leave the threads they blocked their turn: a liveness measure for the shared space.
//!
//! A scan holds the space lock and every shard lock (`space.rs`), so every mutator that
//! creates, untracks or destroys a tracked object meanwhile blocks. That is the price of a
//! stop-the-world scan, and it is bounded by the scan. What must not happen is that the
//! *next* scan follows at once: `std`'s mutex is not fair, and a thread that unlocks and
//! relocks (a thread calling `collect()` in a loop, automatic scans at a low threshold, or
//! both) takes the locks again long before the waiter it woke is scheduled, which then finds
//! them held and sleeps again. Measured before this file existed, on `sync_stress` with a
//! `collect()` loop and automatic collection: mutators got about one lock per scan, a drop
//! cascade of 20,000 nodes (one shard lock per death) crawled at a few hundred nodes a second,
//! and a run that takes 1 s took 8 to 120 s.
//!
//! The rule: **a scan that ends while threads are blocked on the space's locks makes the next
//! scan (on any thread) wait, before it takes a lock, for as long as it held them** (capped at
//! [`MAX_PAUSE`]). While scans are contended the collector's share of the locks is then at most
//! one half; uncontended scans (nobody blocked at their end) impose no pause.
//!
//! Nothing here decides what a thread may touch: the counters are plain `core` atomics, not
//! modelled under loom (which does not check starvation), and every value they hold is safe.
//! Under loom the pause is compiled out and the locks are plain `lock()`s.

use crate::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crate::sync::unmodelled::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Threads blocked right now on the space lock or a shard lock.
#[cfg(not(loom))]
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// No scan starts before this instant (nanoseconds after [`epoch`]).
#[cfg(not(loom))]
static NOT_BEFORE: AtomicU64 = AtomicU64::new(0);

/// The longest pause one scan imposes on the next.
#[cfg(not(loom))]
const MAX_PAUSE: Duration = Duration::from_millis(100);

#[cfg(not(loom))]
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(not(loom))]
fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Lock one of the space's mutexes, counting this thread as blocked while it waits.
///
/// Nothing panics under these locks (a panicking `Trace` aborts); should one be poisoned
/// anyway, what it guards is consistent and is used as is.
#[cfg(not(loom))]
pub(crate) fn lock_counted<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.try_lock() {
        Ok(g) => return g,
        Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {}
    }
    WAITERS.fetch_add(1, Relaxed);
    let g = m.lock().unwrap_or_else(|e| e.into_inner());
    WAITERS.fetch_sub(1, Relaxed);
    g
}

/// Under loom: a plain `lock()`. Nothing is counted, and loom 0.7 reports false deadlocks
/// when a `try_lock` meets another thread's `lock()` of the same mutex (loom-tests/README.md).
#[cfg(loom)]
pub(crate) fn lock_counted<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When a scan took its locks (for [`after_scan`]).
pub(crate) struct LocksTaken {
    #[cfg(not(loom))]
    since: Instant,
}

impl LocksTaken {
    /// The scan has just taken all its locks.
    pub(crate) fn now() -> Self {
        Self {
            #[cfg(not(loom))]
            since: Instant::now(),
        }
    }
}

/// A scan is about to take the locks: wait out the pause the previous contended scan set.
#[cfg(not(loom))]
pub(crate) fn before_scan() {
    loop {
        let now = Instant::now();
        let not_before = NOT_BEFORE.load(Relaxed);
        let at = nanos_since_epoch(now);
        if at >= not_before {
            return;
        }
        let left = Duration::from_nanos(not_before - at);
        if left > Duration::from_micros(100) {
            std::thread::sleep(left);
        } else {
            std::thread::yield_now();
        }
    }
}

/// Under loom: no pause.
#[cfg(loom)]
pub(crate) fn before_scan() {}

/// A scan is about to release the locks (it still holds them): if anyone is blocked on them,
/// no scan may start again before as long as this one held them.
#[cfg(not(loom))]
pub(crate) fn after_scan(held: LocksTaken) {
    if WAITERS.load(Relaxed) == 0 {
        return;
    }
    let now = Instant::now();
    let held = now.saturating_duration_since(held.since).min(MAX_PAUSE);
    NOT_BEFORE.fetch_max(nanos_since_epoch(now + held), Relaxed);
}

/// Under loom: nothing.
#[cfg(loom)]
pub(crate) fn after_scan(_held: LocksTaken) {}

/// `fork()` child handler: the threads counted as blocked were not forked with us.
#[cfg(not(loom))]
pub(crate) fn reset_in_child() {
    WAITERS.store(0, Relaxed);
}
