//! The cycle collector and its controls: Python's `gc` module.
//!
//! Objects whose type may hold a `Gc` (`Trace::MAY_CONTAIN_GC`) are *tracked*: they live in
//! one of three generations of their thread's object space. Reference counting frees all
//! other garbage the moment it appears; [`collect()`](crate::collect) and the automatic
//! collections find the cycles. In this release every function here acts on the **calling
//! thread's** object space (the objects of `pyheap::unsync`).
//!
//! ```
//! use pyheap::unsync::Gc;
//! use pyheap::Trace;
//! use std::cell::RefCell;
//!
//! #[derive(Trace, Default)]
//! struct Node(RefCell<Vec<Gc<Node>>>);
//!
//! let a = Gc::new(Node::default());
//! let b = Gc::new(Node::default());
//! a.0.borrow_mut().push(b.clone());
//! b.0.borrow_mut().push(a.clone());
//! drop((a, b));                        // the pair survives refcounting...
//! assert_eq!(pyheap::collect(), 2);    // ...and the collector frees it
//! assert_eq!(pyheap::gc::threshold(), (700, 10, 10));
//! ```
//!
//! # When collections run
//!
//! Automatically, on the thread that creates a tracked object, at the very start of
//! `Gc::new`/`new_cyclic`/`new_finalized` once generation 0's count (tracked objects created
//! minus freed) exceeds `threshold().0`; generation 1 and 2 follow CPython's rules (count of
//! younger collections over their threshold; the oldest only when the objects promoted into
//! it since the last full collection exceed 25% of those that survived it). CPython 3.12 moved
//! its trigger from allocation to the interpreter's safe points because C code could see
//! `__del__` effects in the middle of an allocation. Here the collection runs before the new
//! object exists and while pyheap holds no borrow of its own state, and user code can only
//! reach objects through handles the compiler checks, so a `Drop` or finalizer of the garbage
//! it frees can at worst meet a `RefCell` the caller is borrowing (a `RefCell` panic, never
//! undefined behaviour). Wrap code that must not run foreign drops in [`disable`]/[`enable`].
//! A last full collection runs when the thread exits.
//!
//! # Teardown of a garbage cycle (PEP 442's order)
//!
//! 1. `Weak` handles into the set stop upgrading.
//! 2. Finalizers ([`Finalize`](crate::Finalize), attached by `Gc::new_finalized`) run once
//!    each, with the whole set intact.
//! 3. If a finalizer stored a handle to a member somewhere reachable, the whole set is
//!    resurrected: nothing is freed, its finalizers never run again, its weak handles stay
//!    cleared.
//! 4. Otherwise every value is dropped; from then on `Gc::try_deref` on a member gives `None`
//!    and `Deref` panics (in release builds too).
//! 5. The memory goes once no `Gc` or `Weak` handle refers to it.
//!
//! Files: `header` (layout, counts, flags), `list` (generation lists), `space` (the
//! per-thread object space, refcount deaths), `collect` (the passes and generations),
//! `finalize` (teardown of a garbage set), `handle` (`unsync::Gc`/`Weak`), `trace` and
//! `trace_impls` (`Trace`), `stats`.
//!
//! One collector for both flavors: the passes (`collect`) and the teardown (`finalize`) are
//! generic over `header::Counts`, the flavor's count storage; the single-thread flavor plugs
//! in `LocalCounts` (two `Cell<u32>`). The thread-safe flavor is meant to plug in its atomic,
//! versioned counts the same way, plus its own object space behind the generation locks; the
//! object space (`space::Space`) is still a concrete single-thread type and is the part that
//! has to become a second type parameter then.

pub(crate) mod collect;
pub(crate) mod finalize;
pub(crate) mod handle;
pub(crate) mod header;
pub(crate) mod list;
pub(crate) mod space;
mod stats;
pub(crate) mod trace;
mod trace_impls;

pub use stats::GenerationStats;

use header::LocalCounts;
use space::{with_space, NUM_GENERATIONS};

/// Collect generation `generation` and all younger ones (Python's `gc.collect(generation)`);
/// returns the number of objects freed. A call made while a collection is running on this
/// thread (from a `Drop` or finalizer it runs) does nothing and returns 0, as in CPython.
///
/// # Panics
/// If `generation > 2`.
///
/// ```
/// assert_eq!(pyheap::gc::collect_generation(0), 0);
/// ```
pub fn collect_generation(generation: usize) -> usize {
    assert!(
        generation < NUM_GENERATIONS,
        "pyheap::gc::collect_generation: invalid generation {generation} (must be 0, 1 or 2)"
    );
    with_space(|s| collect::collect_generation::<LocalCounts>(s, generation))
}

/// Turn automatic collection on (`gc.enable()`).
///
/// ```
/// pyheap::gc::disable();
/// assert!(!pyheap::gc::is_enabled());
/// pyheap::gc::enable();
/// assert!(pyheap::gc::is_enabled());
/// ```
pub fn enable() {
    with_space(|s| s.enabled.set(true))
}

/// Turn automatic collection off (`gc.disable()`); explicit [`collect()`](crate::collect)
/// still works.
///
/// ```
/// pyheap::gc::disable();
/// assert!(!pyheap::gc::is_enabled());
/// # pyheap::gc::enable();
/// ```
pub fn disable() {
    with_space(|s| s.enabled.set(false))
}

/// Whether automatic collection is on (`gc.isenabled()`).
///
/// ```
/// assert!(pyheap::gc::is_enabled());
/// ```
pub fn is_enabled() -> bool {
    with_space(|s| s.enabled.get())
}

/// Set the collection thresholds (`gc.set_threshold`). `threshold0 == 0` turns automatic
/// collection off.
///
/// ```
/// pyheap::gc::set_threshold(1000, 15, 15);
/// assert_eq!(pyheap::gc::threshold(), (1000, 15, 15));
/// # pyheap::gc::set_threshold(700, 10, 10);
/// ```
pub fn set_threshold(threshold0: usize, threshold1: usize, threshold2: usize) {
    with_space(|s| {
        s.gens[0].threshold.set(threshold0);
        s.gens[1].threshold.set(threshold1);
        s.gens[2].threshold.set(threshold2);
    })
}

/// The collection thresholds (`gc.get_threshold()`), by default `(700, 10, 10)`.
///
/// ```
/// assert_eq!(pyheap::gc::threshold(), (700, 10, 10));
/// ```
pub fn threshold() -> (usize, usize, usize) {
    with_space(|s| {
        (
            s.gens[0].threshold.get(),
            s.gens[1].threshold.get(),
            s.gens[2].threshold.get(),
        )
    })
}

/// The current collection counts (`gc.get_count()`): tracked objects created minus freed
/// since generation 0 was last collected, then the number of collections of each younger
/// generation since the older one was last collected.
///
/// ```
/// pyheap::collect();
/// let before = pyheap::gc::count().0;
/// let g = pyheap::unsync::Gc::new(Vec::<pyheap::unsync::Gc<u8>>::new());
/// assert_eq!(pyheap::gc::count().0, before + 1);
/// drop(g);
/// assert_eq!(pyheap::gc::count().0, before);
/// ```
pub fn count() -> (usize, usize, usize) {
    with_space(|s| {
        (
            s.gens[0].count.get(),
            s.gens[1].count.get(),
            s.gens[2].count.get(),
        )
    })
}

/// Per-generation statistics (`gc.get_stats()`).
///
/// ```
/// pyheap::gc::collect_generation(1);
/// assert!(pyheap::gc::stats()[1].collections >= 1);
/// ```
pub fn stats() -> [GenerationStats; 3] {
    with_space(|s| {
        [
            s.gens[0].stats.get(),
            s.gens[1].stats.get(),
            s.gens[2].stats.get(),
        ]
    })
}

/// Move every tracked object into the permanent generation, which collections ignore
/// (`gc.freeze()`): for objects that live for the whole program.
///
/// ```
/// let g = pyheap::unsync::Gc::new(Vec::<pyheap::unsync::Gc<u8>>::new());
/// pyheap::gc::freeze();
/// assert!(pyheap::gc::freeze_count() >= 1);
/// pyheap::gc::unfreeze();
/// assert_eq!(pyheap::gc::freeze_count(), 0);
/// ```
pub fn freeze() {
    with_space(|s| {
        for i in 0..NUM_GENERATIONS {
            // SAFETY: lists are intact outside a collection's passes, which run no user code.
            unsafe { list::merge(s.gen_head(i), &s.permanent) };
        }
        s.gens[0].count.set(0);
    })
}

/// Move the permanent generation back into the oldest one (`gc.unfreeze()`).
///
/// ```
/// pyheap::gc::unfreeze();
/// ```
pub fn unfreeze() {
    // SAFETY: lists are intact outside a collection's passes.
    with_space(|s| unsafe { list::merge(&s.permanent, s.gen_head(NUM_GENERATIONS - 1)) })
}

/// Number of objects in the permanent generation (`gc.get_freeze_count()`).
///
/// ```
/// assert_eq!(pyheap::gc::freeze_count(), 0);
/// ```
pub fn freeze_count() -> usize {
    // SAFETY: lists are intact outside a collection's passes.
    with_space(|s| unsafe { list::len(&s.permanent) })
}

/// Full collection of the calling thread's object space (`gc.collect()`); returns the number
/// of objects freed. See [`collect_generation`].
pub(crate) fn collect_all() -> usize {
    collect_generation(NUM_GENERATIONS - 1)
}
