//! The cycle collector and its controls: Python's `gc` module.
//!
//! Objects whose type may hold a `Gc` (`Trace::MAY_CONTAIN_GC`) are *tracked*: they live in
//! one of three generations of an object space. Reference counting frees all other garbage
//! the moment it appears; [`collect()`](crate::collect) and the automatic collections find
//! the cycles. There are two kinds of object space:
//!
//! * the **shared space** of [`pyheap::Gc`](crate::Gc), one per process, collected while
//!   other threads keep using their handles. The functions of this module act on it (they
//!   have Python's process-wide meaning), except [`collect_generation`] (and
//!   [`pyheap::collect()`](crate::collect)), which also collect the calling thread's space;
//! * the **per-thread space** of [`pyheap::unsync::Gc`](crate::unsync::Gc), with its own
//!   controls in [`pyheap::unsync::gc`](crate::unsync::gc).
//!
//! ```
//! use pyheap::{Gc, Trace};
//! use std::sync::Mutex;
//!
//! #[derive(Trace, Default)]
//! struct Node(Mutex<Vec<Gc<Node>>>);
//!
//! let a = Gc::new(Node::default());
//! let b = Gc::new(Node::default());
//! a.0.lock().unwrap().push(b.clone());
//! b.0.lock().unwrap().push(a.clone());
//! let wa = Gc::downgrade(&a);
//! drop((a, b));                        // the pair survives refcounting...
//! pyheap::collect();                   // ...and the collector frees it
//! assert!(wa.upgrade().is_none());
//! assert_eq!(pyheap::gc::threshold(), (700, 10, 10));
//! ```
//!
//! # When collections run
//!
//! Shared space: creating a tracked object counts toward generation 0; once the count
//! (tracked objects created minus freed) exceeds `threshold().0`, the creating thread runs
//! the *scan* of the due generation itself (CPython's cadence: the young generation stays at
//! its configured size) and hands the garbage found to pyheap's collector thread (`pyheap-gc`,
//! started on first need), which runs its finalizers and `Drop`s. A scan runs no user code
//! (only `Trace` impls, which never block), so it is safe whatever locks the allocating
//! thread holds; the user code of the teardown runs on a thread that holds none of the
//! caller's locks, so a lock the allocating thread holds cannot deadlock against a garbage
//! object's `Drop` (CPython 3.12 moved its trigger to safe points for the same reason,
//! gh-97922; a background thread is Rust's only safe point). Several threads crossing the
//! threshold together cause one scan. Generations 1 and 2
//! follow CPython's rules (count of younger collections over their threshold; the oldest only
//! when the objects promoted into it since the last full collection exceed 25% of those that
//! survived it).
//!
//! Per-thread spaces scan on their own thread at tracked allocation, by the same rules, and
//! leave the teardown of what they find (finalizers, `Drop`s) to the thread's next safe point
//! ([`pyheap::unsync::gc::safe_point`](crate::unsync::gc::safe_point), an explicit
//! collection, or thread exit), so that `Gc::new` never runs a garbage object's `Drop` while
//! its caller holds a lock that `Drop` takes. One addition to CPython's rules: a collection
//! of generation 1 also examines the old objects that lost a reference since the last one
//! (see [`pyheap::unsync::gc::collect_generation`](crate::unsync::gc::collect_generation)).
//!
//! # Panics in teardown
//!
//! A finalizer or `Drop` that panics does not stop a teardown: every member of the garbage
//! set is still finalized (at most once), dropped (exactly once) and freed; then the first
//! panic is resumed in the thread that called `collect()` (later ones are dropped, none
//! aborts the process), or, for a teardown on the `pyheap-gc` thread or one run by an
//! automatic collection, printed on stderr (CPython's "Exception ignored in"). A `Drop` that
//! panics when the last handle goes behaves as with `Rc` and `Arc`: the panic propagates, the
//! object's memory is freed on the way.
//!
//! # What waits for a scan
//!
//! A scan of the shared space holds the space's locks while it runs (milliseconds for a
//! large generation): creating a tracked object, its last drop and `get_mut` wait for it;
//! clone, drop (not the last), deref, downgrade and upgrade never do. A scan that made threads
//! wait makes the next scan, on any thread (`collect()` included), wait before it starts for
//! as long as it held the locks (at most 100 ms), so that back-to-back collections cannot
//! starve the other threads.
//!
//! # `fork()`
//!
//! The shared space can be used in a child process forked while other threads were using
//! it: `fork()` handlers take the space's locks in the forking thread (waiting at most for a
//! running scan) and release them in parent and child; the child forgets the threads that
//! did not come along (a teardown the collector thread was running is abandoned, its objects
//! leaked; a `collect()` another thread was in no longer blocks the child's), and starts its
//! own collector thread when its first automatic collection finds garbage. (POSIX allows only
//! async-signal-safe calls in the child of a multi-threaded process until it calls `exec`;
//! this holds with glibc and std, as `tests/sync_fork.rs` checks.)
//!
//! # Teardown of a garbage cycle (PEP 442's order)
//!
//! 1. `Weak` handles into the set stop upgrading.
//! 2. Finalizers ([`Finalize`](crate::Finalize), attached by `Gc::new_finalized`) run once
//!    each, with the whole set intact.
//! 3. If a finalizer stored a handle to a member somewhere reachable, that member and every
//!    member it reaches are resurrected (CPython's `handle_resurrected_objects`): they stay,
//!    their finalizers never run again, their weak handles stay cleared. The rest of the set
//!    is still unreachable and goes on to step 4 in the same collection.
//! 4. Every value still in the set is dropped; from then on `Gc::try_deref` on a member gives
//!    `None` and `Deref` panics (in release builds too).
//! 5. The memory goes once no `Gc` or `Weak` handle refers to it.
//!
//! Files, in layers (each uses only the ones above it):
//! - the core both flavors share: `header` (layout, counts, flags, the vtable's head),
//!   `list` (generation lists), `panics`, `held` and `scratch` (the tracer's kept buffers),
//!   `trace` and `trace_impls` (`Trace`, `Tracer`), `vtable` (per-type vtables), `slice`
//!   (`Gc<[T]>`, `Gc<str>`), `value` (`GcValue`: which types a handle can point to, and how
//!   it knows whether its object is tracked; `gc_dyn!`), `generations` (the generational
//!   state of one space), `stats`, `flavor` (the `Flavor` trait both flavors implement),
//!   `collect` (the passes), `destroy` (one object's destruction), `finalize` (teardown of a garbage set),
//!   `handle_impls` (the handle traits both flavors implement alike), `unsize` (trait
//!   objects: `unsize!` and `downcast`, for both flavors), `raw` (raw pointers:
//!   `into_raw`, `from_raw` and friends, for both flavors), `uninit` (`new_uninit`,
//!   `assume_init`; `Trace` for `MaybeUninit`), `std_api` (the rest of std's `Rc`/`Arc` API
//!   both flavors share: `unwrap_or_clone`, `pin`, conversions, `Error`, marker traits),
//!   `watch` (death notices), `weak_maps` (the weak maps' engine, `weak_maps/core`, and the
//!   macros that write `WeakValueMap`, `WeakKeyMap` and `WeakSet` for each flavor);
//! - `local/`, the single-thread flavor (`pyheap::unsync`): `handle`, `space`, `controls`
//!   (`pyheap::unsync::gc`), `old_touched`, `thread_exit`, `weakref` and `weak_maps`
//!   (`pyheap::unsync::weakref`);
//! - `shared/`, the thread-safe flavor (`pyheap::Gc`): `handle`, `counts`, `space`,
//!   `collector`, `fairness`, `fork`, `weakref` and `weak_maps` (`pyheap::weakref`).
//!
//! One collector for both flavors: the passes (`collect`) and the teardown (`finalize`) are
//! written once, generic over `flavor::Flavor`, which supplies the count storage
//! (`header::Counts`: two `Cell<u32>`, or an atomic versioned word), the locking (the
//! thread's own space, or the shared space's lock) and the refcount-death queue.

pub(crate) mod any;
pub(crate) mod collect;
pub(crate) mod debug;
pub(crate) mod destroy;
pub(crate) mod finalize;
pub(crate) mod flavor;
pub(crate) mod generations;
pub(crate) mod handle_impls;
pub(crate) mod header;
pub(crate) mod held;
pub(crate) mod introspect;
pub(crate) mod list;
pub(crate) mod local;
#[cfg(loom)]
pub mod model;
pub(crate) mod panics;
pub(crate) mod raw;
pub(crate) mod scratch;
pub(crate) mod shared;
pub(crate) mod slice;
mod stats;
pub(crate) mod std_api;
pub(crate) mod trace;
mod trace_impls;
pub(crate) mod uninit;
pub(crate) mod unsize;
pub(crate) mod value;
pub(crate) mod vtable;
pub(crate) mod watch;
pub(crate) mod weak_maps;

pub use debug::{
    CallbackId, CollectionInfo, Phase, DEBUG_COLLECTABLE, DEBUG_LEAK, DEBUG_SAVEALL, DEBUG_STATS,
    DEBUG_UNCOLLECTABLE,
};
pub use introspect::{Census, CensusEntry};
pub use shared::callbacks;
pub use shared::introspection::{
    census, clear_garbage, garbage, get_debug, get_objects, get_objects_in, get_referents,
    get_referrers, is_finalized, set_debug, GcAny, GcObject,
};
pub use stats::GenerationStats;

use generations::NUM_GENERATIONS;
use shared::space::{space, Shared};

use crate::sync::Ordering;

/// Collect generation `generation` and all younger ones of the shared space, then of the
/// calling thread's space (Python's `gc.collect(generation)`); returns the number of objects
/// freed in both. Runs on the calling thread, and waits for no teardown running on another
/// thread (see [`pyheap::collect`](crate::collect)). A call made from a `Drop` or finalizer
/// that a collection on this thread is running does nothing for that space and counts 0, as
/// in CPython.
///
/// # Panics
/// If `generation > 2`; and, after every garbage object was torn down, with the first panic
/// of a garbage object's `Drop` or finalizer (see [`pyheap::collect`](crate::collect)).
///
/// ```
/// let freed = pyheap::gc::collect_generation(0);
/// # let _ = freed;
/// ```
pub fn collect_generation(generation: usize) -> usize {
    assert!(
        generation < NUM_GENERATIONS,
        "pyheap::gc::collect_generation: invalid generation {generation} (must be 0, 1 or 2)"
    );
    let mut panics = panics::FirstPanic::new();
    // Queued garbage first: its teardown may release the last outside handles of cycles
    // (in older generations) that the scan then finds.
    let freed = space().finish_pending(&mut panics)
        + collect::collect_generation::<Shared>(generation, &mut panics)
        + local::controls::collect_generation_into(generation, &mut panics);
    panics.resume();
    freed
}

/// Wait until no collection of the shared space is tearing down garbage: tear down here the
/// garbage automatic collections queued, then wait for the collections other threads are
/// running (pyheap's collector thread, other threads' `collect()`), teardown included.
/// Returns the number of objects freed on this thread.
///
/// [`collect()`](crate::collect) never waits for another thread's teardown, because a
/// garbage object's `Drop` there may be waiting for the caller. This function does: call it
/// only where no `Drop` of garbage can be waiting for this thread — in a test that counts
/// drops after `collect()` with automatic collection on, at the end of a program that checks
/// everything was freed. Called from a `Drop` or finalizer a teardown on this thread runs, it
/// returns 0 at once. Python has no counterpart (its collections run on the calling thread).
///
/// # Panics
/// After the queued garbage was torn down, with the first panic of its `Drop`s or
/// finalizers.
///
/// ```
/// use pyheap::{Gc, Trace};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Mutex;
///
/// static DROPS: AtomicUsize = AtomicUsize::new(0);
/// #[derive(Trace)]
/// struct Node(Mutex<Option<Gc<Node>>>);
/// impl Drop for Node {
///     fn drop(&mut self) { DROPS.fetch_add(1, Ordering::SeqCst); }
/// }
///
/// pyheap::gc::set_threshold(10, 10, 10); // automatic collections, torn down elsewhere
/// for _ in 0..100 {
///     let n = Gc::new(Node(Mutex::new(None)));
///     *n.0.lock().unwrap() = Some(n.clone()); // garbage once `n` goes
/// }
/// pyheap::collect();
/// pyheap::gc::wait_for_teardowns(); // what the collector thread was dropping is gone too
/// assert_eq!(DROPS.load(Ordering::SeqCst), 100);
/// # pyheap::gc::set_threshold(700, 10, 10);
/// ```
pub fn wait_for_teardowns() -> usize {
    let mut panics = panics::FirstPanic::new();
    let freed = space().wait_for_teardowns(&mut panics);
    panics.resume();
    freed
}

/// Turn automatic collection of the shared space on (`gc.enable()`).
///
/// ```
/// pyheap::gc::disable();
/// assert!(!pyheap::gc::is_enabled());
/// pyheap::gc::enable();
/// assert!(pyheap::gc::is_enabled());
/// ```
pub fn enable() {
    space().enabled.store(true, Ordering::Relaxed)
}

/// Turn automatic collection of the shared space off (`gc.disable()`); explicit
/// [`collect()`](crate::collect) still works.
///
/// ```
/// pyheap::gc::disable();
/// assert!(!pyheap::gc::is_enabled());
/// # pyheap::gc::enable();
/// ```
pub fn disable() {
    space().enabled.store(false, Ordering::Relaxed)
}

/// Whether automatic collection of the shared space is on (`gc.isenabled()`).
///
/// ```
/// # pyheap::gc::enable();
/// assert!(pyheap::gc::is_enabled());
/// ```
pub fn is_enabled() -> bool {
    space().enabled.load(Ordering::Relaxed)
}

/// Set the shared space's collection thresholds (`gc.set_threshold`). `threshold0 == 0`
/// turns automatic collection off.
///
/// ```
/// pyheap::gc::set_threshold(1000, 15, 15);
/// assert_eq!(pyheap::gc::threshold(), (1000, 15, 15));
/// # pyheap::gc::set_threshold(700, 10, 10);
/// ```
pub fn set_threshold(threshold0: usize, threshold1: usize, threshold2: usize) {
    space().set_thresholds(threshold0, threshold1, threshold2)
}

/// The shared space's collection thresholds (`gc.get_threshold()`), by default
/// `(700, 10, 10)`.
///
/// ```
/// assert_eq!(pyheap::gc::threshold(), (700, 10, 10));
/// ```
pub fn threshold() -> (usize, usize, usize) {
    space().with_state(|st| st.thresholds())
}

/// The shared space's collection counts (`gc.get_count()`): tracked objects created minus
/// freed since generation 0 was last collected, then the number of collections of each
/// younger generation since the older one was last collected. Other threads change them at
/// any moment.
///
/// ```
/// let (young, _, _) = pyheap::gc::count();
/// # let _ = young;
/// ```
pub fn count() -> (usize, usize, usize) {
    space().with_state(|st| st.counts())
}

/// Per-generation statistics of the shared space (`gc.get_stats()`), including the
/// collections the background collector ran.
///
/// ```
/// pyheap::gc::collect_generation(1);
/// assert!(pyheap::gc::stats()[1].collections >= 1);
/// ```
pub fn stats() -> [GenerationStats; 3] {
    space().with_state(|st| st.stats())
}

/// Move every tracked object of the shared space into the permanent generation, which
/// collections ignore (`gc.freeze()`): for objects that live for the whole program.
///
/// ```
/// let g = pyheap::Gc::new(std::sync::Mutex::new(Vec::<pyheap::Gc<u8>>::new()));
/// pyheap::gc::freeze();
/// assert!(pyheap::gc::freeze_count() >= 1);
/// pyheap::gc::unfreeze();
/// ```
pub fn freeze() {
    space().freeze()
}

/// Move the shared space's permanent generation back into the oldest one (`gc.unfreeze()`).
///
/// ```
/// pyheap::gc::unfreeze();
/// ```
pub fn unfreeze() {
    space().unfreeze()
}

/// Number of objects in the shared space's permanent generation (`gc.get_freeze_count()`).
///
/// ```
/// let n = pyheap::gc::freeze_count();
/// # let _ = n;
/// ```
pub fn freeze_count() -> usize {
    space().freeze_count()
}

/// Full collection of the shared space and the calling thread's space (`gc.collect()`).
pub(crate) fn collect_all() -> usize {
    collect_generation(NUM_GENERATIONS - 1)
}
