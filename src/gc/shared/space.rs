//! The shared object space of `pyheap::Gc`: one set of generations for the whole process,
//! behind one lock, and the background thread that runs automatic collections.
//!
//! # The space lock (`docs/concurrency.md` §2.4, simplified)
//!
//! One `Mutex` guards the [`GenState`]: every generation list, every tracked object's
//! `next`/`prev` links, the counts and thresholds. It is held
//! * by a mutator for one list operation: linking a new tracked object (`track_new`),
//!   unlinking one whose last handle went (`object_died`), `get_mut` taking an object out
//!   and a later shared use putting it back (`untrack_unique`, `retrack`);
//! * by the collector for a whole scan (its passes, validation, commit and promotion), which
//!   runs no user code: only `Trace` impls, which never block.
//!
//! No user code ever runs under it (finalizers and `Drop` run after it is released), and
//! pyheap takes no other lock while holding it except the interior locks `Trace` *tries*
//! (never waits for). So the only waits are a mutator waiting out a scan, and nobody waits
//! for a mutator: no deadlock. A mutator whose last drop waits for the lock keeps its object
//! out of the garbage (its count is zero: a root, see `collect::find_roots`) and destroys it
//! after the scan.
//!
//! The young generation is one list, so tracked allocation and death take this lock
//! (uncontended cost: one atomic swap each way); per-thread shards of generation 0 are the
//! known next step (§2.4).
//!
//! # Automatic collection
//!
//! Creating a tracked object counts toward generation 0 under the lock; past the threshold
//! the creating thread only raises `pending` and wakes the collector thread (spawned on the
//! first request), which runs `collect_generations` with no caller lock held: a garbage
//! object's `Drop` that needs a `Mutex` the allocating thread holds then simply waits for it,
//! instead of deadlocking that thread (§5.1). Several threads crossing the threshold together
//! raise `pending` once: one collection.

use core::cell::Cell;

use crate::gc::collect::{self, CollectionToken, Flavor};
use crate::gc::generations::GenState;
use crate::gc::header::{Counts, Links, FLAG_DEAD, FLAG_UNIQUE};
use crate::gc::list;
use crate::gc::space::destroy;
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};

use super::counts::SharedCounts;

/// The generations, owned by whoever holds the space lock.
pub(crate) struct LockedState(GenState);

// SAFETY: `GenState` is `!Send` only because of its `Cell`s and raw pointers; it is only ever
// reached through the space `Mutex`, so one thread at a time uses it, and the objects its
// lists link are `Send + Sync` (every constructor of the shared flavor requires it).
unsafe impl Send for LockedState {}

/// The process-wide object space.
pub(crate) struct SharedSpace {
    state: Mutex<LockedState>,
    /// `gc.isenabled()` for the shared space.
    pub(crate) enabled: AtomicBool,
    /// A collection was requested and has not started yet.
    pending: AtomicBool,
    #[cfg(not(loom))]
    collector: super::collector::CollectorThread,
    /// Loom models only: how many times `pending` went from false to true.
    #[cfg(loom)]
    requests: crate::sync::StatCounter,
}

impl SharedSpace {
    fn new() -> Self {
        Self {
            state: Mutex::new(LockedState(GenState::new())),
            enabled: AtomicBool::new(true),
            pending: AtomicBool::new(false),
            #[cfg(not(loom))]
            collector: super::collector::CollectorThread::new(),
            #[cfg(loom)]
            requests: crate::sync::StatCounter::new(),
        }
    }

    /// Lock the generations. Nothing panics under this lock (a panicking `Trace` aborts), so
    /// poisoning cannot happen; should it, the state is still consistent and is used as is.
    fn lock(&self) -> MutexGuard<'_, LockedState> {
        let g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the state lives in the space, which is never moved (a static).
        unsafe { g.0.init() };
        g
    }

    /// Run `f` with the generations, under the space lock.
    #[inline]
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&GenState) -> R) -> R {
        let g = self.lock();
        f(&g.0)
    }

    /// Link a new, fully built tracked object into generation 0; past the threshold, request
    /// an automatic collection (after the lock is released).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor in no list.
    pub(crate) unsafe fn track_new(&self, links: *const Links) {
        let due = self.with_state(|st| {
            // SAFETY: lists are intact under the lock; `links` is unlinked per the caller.
            unsafe { list::push_back(st.gen_head(0), links) };
            let g0 = &st.gens[0];
            let c = g0.count.get() + 1;
            g0.count.set(c);
            c > g0.threshold.get() && g0.threshold.get() != 0
        });
        if due && self.enabled.load(Ordering::Relaxed) {
            self.request_collection();
        }
    }

    /// Raise `pending` (once for any number of racing requests) and wake the collector.
    fn request_collection(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        #[cfg(loom)]
        self.requests.add_shared(1);
        #[cfg(not(loom))]
        self.collector.wake();
    }

    /// Loom models only: whether a collection is requested and not yet started.
    #[cfg(loom)]
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Loom models only: how many requests raised `pending` (from false to true).
    #[cfg(loom)]
    pub(crate) fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Run the requested automatic collection, if any (the collector thread's loop body; under
    /// loom the models call it directly). Returns the number of objects freed.
    pub(crate) fn service_pending(&self) -> usize {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return 0;
        }
        if !self.enabled.load(Ordering::Relaxed) {
            return 0;
        }
        collect::collect_generations::<Shared>()
    }

    /// The collector thread's wait for a request.
    #[cfg(not(loom))]
    pub(crate) fn collector_wait(&self) {
        self.collector.wait()
    }

    /// Take a live tracked object out of its generation (`try_unwrap`, a death).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor.
    pub(crate) unsafe fn untrack(&self, links: *const Links) {
        self.with_state(|st| {
            // SAFETY: lists are intact under the lock; a self-loop stays one.
            unsafe { list::unlink(links) };
            let g0 = &st.gens[0].count;
            g0.set(g0.get().saturating_sub(1));
        });
    }

    /// `get_mut`: take the object out of the generations (once) and mark it `FLAG_UNIQUE`, so
    /// no scan reads the value while the `&mut` may live. Waits out a running scan.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor whose only handle is
    /// the caller's (strong 1, no `Weak`).
    pub(crate) unsafe fn untrack_unique(&self, links: *const Links) {
        self.with_state(|_| {
            // SAFETY: under the lock; per the caller.
            unsafe {
                if SharedCounts::flags(links) & FLAG_UNIQUE == 0 {
                    list::unlink(links);
                    SharedCounts::set_flag(links, FLAG_UNIQUE);
                }
            }
        });
    }

    /// A shared use of a `FLAG_UNIQUE` object's handle proves `get_mut`'s borrow over: put it
    /// back into generation 0 (unless a collection already did).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor.
    pub(crate) unsafe fn retrack(&self, links: *const Links) {
        self.with_state(|st| {
            // SAFETY: under the lock; the flag says whether it is in a list.
            unsafe {
                if SharedCounts::flags(links) & FLAG_UNIQUE != 0 {
                    SharedCounts::clear_flag(links, FLAG_UNIQUE);
                    list::push_back(st.gen_head(0), links);
                }
            }
        });
    }
}

#[cfg(not(loom))]
static SPACE: std::sync::LazyLock<SharedSpace> = std::sync::LazyLock::new(SharedSpace::new);

#[cfg(loom)]
loom::lazy_static! {
    static ref SPACE: SharedSpace = SharedSpace::new();
}

/// The shared space.
#[inline]
pub(crate) fn space() -> &'static SharedSpace {
    &SPACE
}

crate::sync::thread_local! {
    /// This thread is running a collection of the shared space (re-entrant `collect()` from a
    /// `Drop` returns 0).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
    /// This thread is destroying shared objects; new deaths go onto `PENDING`.
    static DROPPING: Cell<bool> = const { Cell::new(false) };
    /// Objects whose destruction is queued, linked through their own `next` (they are in no
    /// list, and no other thread can reach them: their strong count is zero).
    static PENDING: Cell<*const Links> = const { Cell::new(core::ptr::null()) };
}

/// Clears `DROPPING` even if a `Drop` panics (queued objects are then destroyed by the next
/// outermost destroyer on this thread: a delay, never a double drop).
struct DroppingGuard;

impl Drop for DroppingGuard {
    fn drop(&mut self) {
        DROPPING.with(|d| d.set(false));
    }
}

fn drain() {
    loop {
        let p = PENDING.with(|q| q.get());
        if p.is_null() {
            break;
        }
        // SAFETY: queued objects are dead, unlinked, with strong zero and their value not yet
        // dropped; the queue owns them.
        unsafe {
            PENDING.with(|q| q.set((*p).next.get()));
            (*p).next.set(p);
            destroy::<SharedCounts>(p);
        }
    }
}

/// The thread-safe flavor, as the collector sees it.
pub(crate) enum Shared {}

// SAFETY: `with_state` holds the space lock for the whole closure, so it gives exclusive use
// of the one `GenState` every shared object lives in; the rest keeps the stated contracts.
unsafe impl Flavor for Shared {
    type Counts = SharedCounts;
    const CONCURRENT: bool = true;

    #[inline]
    fn with_state<R>(f: impl FnOnce(&GenState) -> R) -> R {
        space().with_state(f)
    }

    fn enter_collection() -> Option<CollectionToken<Self>> {
        COLLECTING.with(|c| {
            if c.get() {
                None
            } else {
                c.set(true);
                Some(CollectionToken::new())
            }
        })
    }

    fn leave_collection() {
        COLLECTING.with(|c| c.set(false));
    }

    fn destroying<R>(f: impl FnOnce() -> R) -> R {
        if DROPPING.with(|d| d.replace(true)) {
            return f();
        }
        let _g = DroppingGuard;
        let r = f();
        drain();
        r
    }

    unsafe fn object_died(links: *const Links) {
        // SAFETY: per the caller a live tracked object with strong zero: no other thread can
        // reach it any more; unlinked under the lock, then ours alone.
        unsafe {
            space().untrack(links);
            SharedCounts::set_flag(links, FLAG_DEAD);
        }
        if DROPPING.with(|d| d.get()) {
            // SAFETY: the object is unlinked, so `next` is free to chain the queue.
            unsafe { (*links).next.set(PENDING.with(|q| q.get())) };
            PENDING.with(|q| q.set(links));
            return;
        }
        Self::destroying(|| {
            // SAFETY: dead, unlinked, strong zero, value not dropped: ours to destroy.
            unsafe { destroy::<SharedCounts>(links) }
        })
    }

    unsafe fn resurrected(_set: &[*const Links]) -> bool {
        // Conservative: a set whose finalizers ran goes back to the old generation (its
        // finalizers never run again) and is freed by the next collection that finds it
        // unreachable. Checking for resurrection exactly would need a second validated scan
        // of the set; a one-collection delay for finalized cycles is the price of not having
        // it (documented on `Gc::new_finalized`).
        true
    }
}
