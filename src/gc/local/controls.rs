//! Python's `gc` controls for the calling thread's single-thread object space (the objects of
//! `pyheap::unsync`), published as `pyheap::unsync::gc`. Each thread has its own space, with
//! its own thresholds, counts, statistics and switch.

use super::space::{with_space, Local, NUM_GENERATIONS};
use crate::gc::collect;
use crate::gc::panics::FirstPanic;
use crate::gc::stats::GenerationStats;

/// Collect generation `generation` and all younger ones (Python's `gc.collect(generation)`);
/// returns the number of objects freed. A call made while a collection is running on this
/// thread (from a `Drop` or finalizer it runs) does nothing and returns 0, as in CPython.
///
/// Unlike CPython, a collection of generation 1 (automatic or asked for) also examines the
/// objects of the oldest generation that lost a reference since the last one, and the old
/// objects they reach, up to a budget proportional to their number: a garbage cycle of old
/// objects is freed then instead of waiting for a full collection. Live objects are never
/// freed by this (a collection is correct on any set of objects), and what it frees counts
/// in generation 1's statistics. When the oldest generation itself is collected is
/// CPython's rule, unchanged.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use pyheap::Trace;
/// use std::cell::RefCell;
///
/// #[derive(Trace)]
/// struct Node(RefCell<Option<Gc<Node>>>);
///
/// # gc::disable();
/// let n = Gc::new(Node(RefCell::new(None)));
/// gc::collect_generation(1); // survivors of generation 1 go into the oldest generation
/// *n.0.borrow_mut() = Some(n.clone());
/// drop(n); // the old object lost a reference: the cycle is garbage
/// assert_eq!(gc::collect_generation(0), 0, "young collections look at young objects only");
/// assert_eq!(gc::collect_generation(1), 1);
/// ```
///
/// An explicit collection is a safe point: it also tears down the garbage automatic
/// collections left waiting (see [`safe_point`]).
///
/// # Panics
/// If `generation > 2`; and, after every garbage object was torn down, with the first panic
/// of a garbage object's `Drop` or finalizer (each object is finalized at most once and
/// dropped exactly once whatever panics; later panics are dropped).
///
/// ```
/// assert_eq!(pyheap::unsync::gc::collect_generation(0), 0);
/// ```
pub fn collect_generation(generation: usize) -> usize {
    let mut panics = FirstPanic::new();
    let freed = collect_generation_into(generation, &mut panics);
    panics.resume();
    freed
}

/// [`collect_generation`] with its panics left in `panics`.
pub(crate) fn collect_generation_into(generation: usize, panics: &mut FirstPanic) -> usize {
    assert!(
        generation < NUM_GENERATIONS,
        "pyheap::unsync::gc::collect_generation: invalid generation {generation} (must be 0, 1 or 2)"
    );
    // The waiting garbage first: its teardown may release the last outside handles of
    // cycles (in older generations) that the collection then finds.
    with_space(|s| s.safe_point(panics)) + collect::collect_generation::<Local>(generation, panics)
}

/// A safe point (the single-thread flavor's answer to CPython's gh-97922): tear down, here,
/// the garbage this thread's automatic collections found; returns the number of objects
/// freed.
///
/// Automatic collections run when `Gc::new` (or `new_cyclic`, `new_finalized`) crosses the
/// threshold, on the allocating thread, at a point the program does not choose: the caller
/// may hold a `Mutex` a garbage object's `Drop` takes (a deadlock) or borrow a `RefCell` it
/// borrows (a panic). So they only *scan* there, which runs no user code; the garbage they
/// find (unreachable already, its `Weak` handles cleared) waits for a safe point, where its
/// finalizers and `Drop`s run: this function, any explicit collection ([`collect`],
/// [`collect_generation`], [`pyheap::collect`](crate::collect)), or the thread's exit. Call
/// it where your program holds nothing a `Drop` could need — once per frame, per request,
/// per loop iteration. A program that never reaches one is not left to grow without bound:
/// past the [teardown limit](set_teardown_limit) of waiting objects, the automatic
/// collection tears them down itself.
///
/// Called from a `Drop` or finalizer that a collection on this thread runs, it does nothing.
///
/// # Panics
/// After every waiting object was torn down, with the first panic of their `Drop`s or
/// finalizers.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use std::cell::RefCell;
///
/// #[derive(pyheap::Trace)]
/// struct Node(RefCell<Option<Gc<Node>>>);
///
/// gc::set_threshold(10, 10, 10);
/// for _ in 0..100 {
///     let n = Gc::new(Node(RefCell::new(None)));
///     *n.0.borrow_mut() = Some(n.clone()); // a self-cycle, garbage once `n` goes
/// }
/// // Automatic collections found most of them; their `Drop`s have not run yet.
/// assert!(gc::waiting() > 0);
/// let freed = gc::safe_point();
/// assert!(freed > 0);
/// assert_eq!(gc::waiting(), 0);
/// # gc::set_threshold(700, 10, 10);
/// ```
pub fn safe_point() -> usize {
    let mut panics = FirstPanic::new();
    let freed = with_space(|s| s.safe_point(&mut panics));
    panics.resume();
    freed
}

/// How many garbage objects automatic collections found that wait for a safe point (see
/// [`safe_point`]).
///
/// ```
/// pyheap::unsync::gc::safe_point();
/// assert_eq!(pyheap::unsync::gc::waiting(), 0);
/// ```
pub fn waiting() -> usize {
    with_space(|s| s.waiting_objects())
}

/// Set how many garbage objects may wait for a safe point before an automatic collection
/// tears them down itself, in `Gc::new` (default
/// [`DEFAULT_TEARDOWN_LIMIT`](crate::unsync::gc::DEFAULT_TEARDOWN_LIMIT), 10,000). `None`:
/// never; garbage then waits for [`safe_point`], an explicit collection or the thread's exit,
/// and no `Drop` of garbage ever runs inside `Gc::new`. `Some(0)`: at once, in the
/// collection that found it (pyheap before 0.2, and most Rust `Gc` crates). Panics of a
/// teardown run by an automatic collection are reported on stderr, not raised in `Gc::new`.
///
/// ```
/// use pyheap::unsync::gc;
/// gc::set_teardown_limit(None);
/// assert_eq!(gc::teardown_limit(), None);
/// gc::set_teardown_limit(Some(gc::DEFAULT_TEARDOWN_LIMIT));
/// ```
pub fn set_teardown_limit(limit: Option<usize>) {
    with_space(|s| s.teardown_limit.set(limit.unwrap_or(usize::MAX)))
}

/// The teardown limit (see [`set_teardown_limit`]).
///
/// ```
/// assert_eq!(pyheap::unsync::gc::teardown_limit(), Some(10_000));
/// ```
pub fn teardown_limit() -> Option<usize> {
    with_space(|s| match s.teardown_limit.get() {
        usize::MAX => None,
        n => Some(n),
    })
}

/// Turn automatic collection on (`gc.enable()`).
///
/// ```
/// pyheap::unsync::gc::disable();
/// assert!(!pyheap::unsync::gc::is_enabled());
/// pyheap::unsync::gc::enable();
/// assert!(pyheap::unsync::gc::is_enabled());
/// ```
pub fn enable() {
    with_space(|s| s.enabled.set(true))
}

/// Turn automatic collection off (`gc.disable()`); explicit [`collect()`](crate::collect)
/// still works.
///
/// ```
/// pyheap::unsync::gc::disable();
/// assert!(!pyheap::unsync::gc::is_enabled());
/// # pyheap::unsync::gc::enable();
/// ```
pub fn disable() {
    with_space(|s| s.enabled.set(false))
}

/// Whether automatic collection is on (`gc.isenabled()`).
///
/// ```
/// assert!(pyheap::unsync::gc::is_enabled());
/// ```
pub fn is_enabled() -> bool {
    with_space(|s| s.enabled.get())
}

/// Set the collection thresholds (`gc.set_threshold`). `threshold0 == 0` turns automatic
/// collection off.
///
/// ```
/// pyheap::unsync::gc::set_threshold(1000, 15, 15);
/// assert_eq!(pyheap::unsync::gc::threshold(), (1000, 15, 15));
/// # pyheap::unsync::gc::set_threshold(700, 10, 10);
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
/// assert_eq!(pyheap::unsync::gc::threshold(), (700, 10, 10));
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
/// let before = pyheap::unsync::gc::count().0;
/// let g = pyheap::unsync::Gc::new(Vec::<pyheap::unsync::Gc<u8>>::new());
/// assert_eq!(pyheap::unsync::gc::count().0, before + 1);
/// drop(g);
/// assert_eq!(pyheap::unsync::gc::count().0, before);
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
/// pyheap::unsync::gc::collect_generation(1);
/// assert!(pyheap::unsync::gc::stats()[1].collections >= 1);
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
/// pyheap::unsync::gc::freeze();
/// assert!(pyheap::unsync::gc::freeze_count() >= 1);
/// pyheap::unsync::gc::unfreeze();
/// assert_eq!(pyheap::unsync::gc::freeze_count(), 0);
/// ```
pub fn freeze() {
    // SAFETY: lists are intact outside a collection's passes, which run no user code.
    with_space(|s| unsafe { super::old_touched::freeze(s) })
}

/// Move the permanent generation back into the oldest one (`gc.unfreeze()`).
///
/// ```
/// pyheap::unsync::gc::unfreeze();
/// ```
pub fn unfreeze() {
    // SAFETY: lists are intact outside a collection's passes.
    with_space(|s| unsafe { super::old_touched::unfreeze(s) })
}

/// Number of objects in the permanent generation (`gc.get_freeze_count()`).
///
/// ```
/// assert_eq!(pyheap::unsync::gc::freeze_count(), 0);
/// ```
pub fn freeze_count() -> usize {
    // SAFETY: lists are intact outside a collection's passes.
    with_space(|s| unsafe { s.freeze_count() })
}

/// Full collection of the calling thread's object space (`gc.collect()` for
/// `pyheap::unsync` objects only); returns the number of objects freed. A safe point (see
/// [`safe_point`]); panics as [`collect_generation`].
///
/// ```
/// use pyheap::unsync::Gc;
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct N(RefCell<Option<Gc<N>>>);
/// let n = Gc::new(N(RefCell::new(None)));
/// *n.0.borrow_mut() = Some(n.clone());
/// drop(n);
/// assert_eq!(pyheap::unsync::gc::collect(), 1);
/// ```
pub fn collect() -> usize {
    collect_generation(NUM_GENERATIONS - 1)
}
