//! Vectors the collector keeps between collections.
//!
//! A collection fills vectors as long as the generation it scans (the garbage set; in a
//! concurrent scan also the count snapshots, the recorded edges and the held lock guards). Allocating them afresh
//! every time costs more than filling them: with glibc's malloc, a request of 1 KiB or more
//! made while freed small chunks wait in the fast bins first consolidates those bins, merging
//! the chunks that the next small allocations would have reused at once. A generation-0
//! collection comes right after many small frees (refcount deaths, the previous teardown), so
//! fresh vectors growing past 1 KiB cost a consolidation per collection: measured,
//! `gc_cycles` ran 1.39x slower (158.7 against 113.8 ms) after the `tree` and `chain`
//! workloads had left many free chunks behind.
//!
//! The single-thread flavor keeps one spare of each kind per thread (its collections never
//! overlap on one thread). The thread-safe flavor's scan runs on whichever thread crosses the
//! threshold and its teardown on the collector thread, so its spares are process-wide, behind
//! a lock taken twice per collection. Vectors above [`KEEP_MAX`] entries are not kept (a huge
//! full collection does not pin its memory). Under loom nothing is kept.

#[cfg(not(loom))]
use core::cell::Cell;

use super::header::Links;
use super::held::Held;

/// The largest capacity kept (512 KiB of pointers on 64-bit).
const KEEP_MAX: usize = 1 << 16;

/// One spare vector of each kind the collector fills.
#[derive(Default)]
struct Spares {
    links: Vec<*const Links>,
    edges: Vec<*const Links>,
    stack: Vec<*const Links>,
    objects: Vec<*const Links>,
    words: Vec<u64>,
    held: Vec<Held>,
}

#[cfg(not(loom))]
std::thread_local! {
    static LOCAL: Cell<Option<Spares>> = const { Cell::new(None) };
}

/// The thread-safe flavor's spares. The pointers in them are never read (the vectors are
/// empty), only their allocations reused.
#[cfg(not(loom))]
struct SharedSpares(std::sync::Mutex<Option<Spares>>);
// SAFETY: the vectors are empty whenever they are in here; only allocations move between
// threads, which `Vec` allows for any element type that is `Send` — raw pointers are not,
// but an empty vector holds none.
#[cfg(not(loom))]
unsafe impl Sync for SharedSpares {}

#[cfg(not(loom))]
static SHARED: SharedSpares = SharedSpares(std::sync::Mutex::new(None));

/// The process-wide spares' lock, held across `fork()` (`gc/shared/fork.rs`).
#[cfg(not(loom))]
pub(crate) struct SparesGuard(#[allow(dead_code)] std::sync::MutexGuard<'static, Option<Spares>>);

/// Take the process-wide spares' lock (a leaf lock: its holders wait for nothing).
#[cfg(not(loom))]
pub(crate) fn lock_spares() -> SparesGuard {
    SparesGuard(
        SHARED
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// Which vector (the snapshots have their own functions, [`take_words`]).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// The garbage set of a scan.
    Garbage,
    /// The tracer's edge buffer (concurrent scans).
    Edges,
    /// The tracer's mark stack.
    Stack,
    /// A concurrent scan's objects, in list order.
    Objects,
}

/// Run `f` on the spares of this flavor (`concurrent`: the process-wide ones).
#[cfg(not(loom))]
fn with_spares<R>(concurrent: bool, f: impl FnOnce(&mut Spares) -> R) -> Option<R> {
    if concurrent {
        let mut g = SHARED
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(g.get_or_insert_with(Spares::default)))
    } else {
        LOCAL
            .try_with(|c| {
                let mut s = c.take().unwrap_or_default();
                let r = f(&mut s);
                c.set(Some(s));
                r
            })
            .ok()
    }
}

#[cfg(loom)]
fn with_spares<R>(_concurrent: bool, _f: impl FnOnce(&mut Spares) -> R) -> Option<R> {
    None
}

fn slot(s: &mut Spares, kind: Kind) -> &mut Vec<*const Links> {
    match kind {
        Kind::Garbage => &mut s.links,
        Kind::Edges => &mut s.edges,
        Kind::Stack => &mut s.stack,
        Kind::Objects => &mut s.objects,
    }
}

/// The spare `pick` selects, emptied out of the spares (an empty vector if there is none).
fn take_from<T>(concurrent: bool, pick: impl FnOnce(&mut Spares) -> &mut Vec<T>) -> Vec<T> {
    with_spares(concurrent, |s| core::mem::take(pick(s))).unwrap_or_default()
}

/// Clear `v` (dropping its elements here, outside any lock) and keep its allocation as the
/// spare `pick` selects if it is larger than the one kept.
fn give_to<T>(concurrent: bool, pick: impl FnOnce(&mut Spares) -> &mut Vec<T>, mut v: Vec<T>) {
    v.clear();
    if v.capacity() == 0 || v.capacity() > KEEP_MAX {
        return;
    }
    with_spares(concurrent, |s| {
        let kept = pick(s);
        if kept.capacity() < v.capacity() {
            *kept = v;
        }
    });
}

/// An empty vector of `kind`, with the capacity an earlier collection left.
pub(crate) fn take(concurrent: bool, kind: Kind) -> Vec<*const Links> {
    take_from(concurrent, |s| slot(s, kind))
}

/// Keep `v`'s allocation for a later collection.
pub(crate) fn give(concurrent: bool, kind: Kind, v: Vec<*const Links>) {
    give_to(concurrent, |s| slot(s, kind), v);
}

/// An empty vector for the concurrent scan's count snapshots.
pub(crate) fn take_words() -> Vec<u64> {
    take_from(true, |s| &mut s.words)
}

/// Keep the snapshots' allocation.
pub(crate) fn give_words(v: Vec<u64>) {
    give_to(true, |s| &mut s.words, v);
}

/// An empty vector for a concurrent tracer's held guards.
pub(crate) fn take_held() -> Vec<Held> {
    take_from(true, |s| &mut s.held)
}

/// Release the guards in `v` and keep its allocation.
pub(crate) fn give_held(v: Vec<Held>) {
    give_to(true, |s| &mut s.held, v);
}
