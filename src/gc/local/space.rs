//! The per-thread object space of the single-thread flavor: the three generation lists, the
//! permanent (frozen) generation, thresholds, counts, statistics, the pending-destruction
//! queue that keeps refcount deaths iterative, and the garbage automatic collections found,
//! waiting for a safe point.
//!
//! It lives in a `const`-initialised `thread_local!` of a type without drop glue, so it is
//! reachable for the whole life of the thread, including while other thread-locals' destructors
//! drop their handles: a late drop still unlinks its object from a valid list. When the thread
//! exits, full collections run (even if automatic collection is disabled), so that a thread's
//! garbage cycles do not outlive it, whatever the order its thread-locals are destroyed in
//! (`gc::thread_exit`); objects still held elsewhere stay valid.
//!
//! # Automatic collections and safe points
//!
//! An automatic collection runs at the start of creating a tracked object, on the creating
//! thread. It runs only the *scan* there (no user code: `Trace` impls only), and leaves the
//! garbage it found committed (unreachable, pinned, weak handles cleared) in `waiting`. The
//! *teardown* (finalizers, `Drop`s, freeing) runs at the thread's next **safe point**:
//! `pyheap::unsync::gc::safe_point()`, any explicit collection, or thread exit. So `Gc::new`
//! never runs a garbage object's `Drop` while its caller holds a lock that `Drop` takes, or
//! borrows a `RefCell` it borrows (CPython 3.12 moved its trigger to safe points for the same
//! reason, gh-97922). The one exception, for programs that never reach a safe point: once
//! more objects wait than the *teardown limit* (`set_teardown_limit`, default
//! [`DEFAULT_TEARDOWN_LIMIT`]), the automatic collection tears them down itself, as before;
//! `set_teardown_limit(None)` turns that off.

use core::cell::Cell;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use std::collections::VecDeque;

use crate::gc::collect::{self, Garbage};
use crate::gc::debug::{CollectionInfo, Phase};
use crate::gc::destroy::destroy;
use crate::gc::flavor::{CollectionToken, Flavor};
use crate::gc::generations::GenState;
pub(crate) use crate::gc::generations::NUM_GENERATIONS;
use crate::gc::header::{
    counts_of, Counts, Links, LocalCounts, FLAG_DEAD, FLAG_UNIQUE, FLAG_WEAKS_CLEARED, STRONG_COUNT,
};
use crate::gc::list;
use crate::gc::panics::{self, FirstPanic};
use crate::gc::trace::Tracer;

/// The state of one object space. Every pointer in it refers to objects of this thread.
pub(crate) struct Space {
    /// The generations (the collector's part, shared in shape with the thread-safe flavor).
    pub(crate) state: GenState,
    pub(crate) enabled: Cell<bool>,
    /// A collection is running: nested requests (from drops or finalizers) return 0.
    pub(crate) collecting: Cell<bool>,
    /// Some frame is already destroying objects; new deaths go onto `pending`.
    dropping: Cell<bool>,
    /// Pending-destruction queue, linked through the dead objects' own `next` field.
    pending: Cell<*const Links>,
    /// Garbage sets automatic collections found, oldest first, waiting for a safe point
    /// (each committed: unlinked, pinned, weak handles cleared, dead). `ManuallyDrop` keeps
    /// the space free of drop glue; the thread's exit collection empties it and frees its
    /// buffer.
    waiting: Cell<ManuallyDrop<VecDeque<Garbage>>>,
    /// Objects in `waiting`.
    waiting_objects: Cell<usize>,
    /// Past this many waiting objects, an automatic collection tears them down at once
    /// (`usize::MAX`: never).
    pub(crate) teardown_limit: Cell<usize>,
}

/// How many garbage objects may wait for a safe point before an automatic collection tears
/// them down itself (`pyheap::unsync::gc::set_teardown_limit`).
pub const DEFAULT_TEARDOWN_LIMIT: usize = 10_000;

impl Deref for Space {
    type Target = GenState;
    #[inline]
    fn deref(&self) -> &GenState {
        &self.state
    }
}

impl Space {
    const fn new() -> Self {
        Self {
            state: GenState::new(),
            enabled: Cell::new(true),
            collecting: Cell::new(false),
            dropping: Cell::new(false),
            pending: Cell::new(core::ptr::null()),
            waiting: Cell::new(ManuallyDrop::new(VecDeque::new())),
            waiting_objects: Cell::new(0),
            teardown_limit: Cell::new(DEFAULT_TEARDOWN_LIMIT),
        }
    }

    /// Self-link the sentinels on first use (their address is only known in place) and
    /// register the thread-exit collection. One flag test on the fast path.
    #[inline]
    pub(crate) fn init(&self) {
        if !self.state.is_initialized() {
            self.init_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn init_slow(&self) {
        // SAFETY: the space lives in a thread-local that never moves or dies while the
        // thread runs (it has no drop glue).
        unsafe { self.state.init() };
        // Register the thread-exit collections now, once, rather than on every tracked
        // allocation: a thread that uses the space collects its garbage when it exits.
        super::thread_exit::arm();
    }

    /// Account for a tracked allocation about to happen and run an automatic collection if
    /// generation 0 is over its threshold (CPython's `_PyObject_GC_Alloc` rule).
    ///
    /// This is called at the very start of `Gc::new`/`new_cyclic`, before the new value is
    /// placed in the heap: the collector never sees a half-built object, and pyheap holds no
    /// borrow of its own state across the collection, so the drops and finalizers it runs may
    /// freely create, drop and collect objects. See `gc::collect`'s module docs for what this
    /// means for user code.
    #[inline]
    pub(crate) fn before_tracked_alloc<C: Counts>(&self) {
        debug_assert!(self.state.is_initialized());
        let g0 = &self.gens[0];
        let c = g0.count.get() + 1;
        g0.count.set(c);
        if c > g0.threshold.get() {
            self.maybe_collect();
        }
    }

    /// Generation 0 is over its threshold: collect unless disabled or already collecting.
    /// Out of line, so the allocation fast path stays small.
    #[cold]
    #[inline(never)]
    fn maybe_collect(&self) {
        if self.gens[0].threshold.get() != 0 && self.enabled.get() && !self.collecting.get() {
            self.automatic_collection();
        }
    }

    /// Scan the generation due (no user code runs) and leave its garbage waiting for a safe
    /// point, unless more than the teardown limit waits: then tear it down here (the module
    /// docs). Panics of that teardown are reported on stderr, not raised out of `Gc::new`:
    /// they belong to unrelated objects (CPython's "Exception ignored in" for automatic
    /// collections).
    fn automatic_collection(&self) {
        let Some(gen) = self.state.generation_due() else {
            return;
        };
        let Some(token) = Local::enter_collection() else {
            return;
        };
        let garbage = collect::scan_generation::<Local>(gen);
        drop(token);
        self.defer(garbage);
        if self.waiting_objects.get() > self.teardown_limit.get() {
            let mut panics = FirstPanic::new();
            self.safe_point(&mut panics);
            panics.report("a Drop or finalizer of garbage torn down by an automatic collection");
        }
    }

    /// Queue a scan's garbage for the next safe point (or record an empty collection now).
    fn defer(&self, g: Garbage) {
        if g.set.is_empty() && !super::callbacks::has_callbacks() {
            return;
        }
        self.waiting_objects
            .set(self.waiting_objects.get() + g.set.len());
        let mut w = self.waiting.take();
        w.push_back(g);
        self.waiting.set(w);
    }

    /// Objects waiting for a safe point.
    pub(crate) fn waiting_objects(&self) -> usize {
        self.waiting_objects.get()
    }

    /// A safe point: tear down the garbage automatic collections left waiting, oldest set
    /// first; returns the objects freed. Panics of their user code are kept in `panics`.
    /// Called from a `Drop` or finalizer a collection on this thread runs, it does nothing.
    pub(crate) fn safe_point(&self, panics: &mut FirstPanic) -> usize {
        let Some(_token) = Local::enter_collection() else {
            return 0;
        };
        let mut freed = 0;
        loop {
            let mut w = self.waiting.take();
            let next = w.pop_front();
            self.waiting.set(w);
            let Some(g) = next else {
                break;
            };
            self.waiting_objects
                .set(self.waiting_objects.get() - g.set.len());
            // SAFETY: the set came from `scan_generation` (through `defer`) and leaves the
            // queue here, once.
            freed += unsafe { collect::finish_notified::<Local>(g, panics) };
        }
        freed
    }

    /// The thread is exiting: every waiting set, then a full collection, then the queue's
    /// buffer; returns the objects freed. Panics are reported (a thread-local destructor must
    /// not unwind).
    pub(crate) fn exit_collection(&self) -> usize {
        let mut panics = FirstPanic::new();
        // The thread is going: its finalizers with `atexit` run first (as Python's at
        // interpreter exit), nothing more is saved (`DEBUG_SAVEALL`), and what was saved goes
        // too (its references are the list's).
        super::weakref::run_at_thread_exit(&mut panics);
        self.state.debug.set(0);
        let saved = ManuallyDrop::into_inner(self.state.garbage.take());
        for p in saved {
            // SAFETY: the list owned one strong reference on each.
            panics.run(|| unsafe { Local::release_erased(p) });
        }
        let freed = self.safe_point(&mut panics)
            + collect::collect_generation::<Local>(NUM_GENERATIONS - 1, &mut panics);
        if self.waiting_objects.get() == 0 {
            drop(ManuallyDrop::into_inner(self.waiting.take()));
        }
        panics.report("a Drop or finalizer of garbage collected at thread exit");
        freed
    }

    /// Link a new, fully built tracked object into generation 0.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this thread that is in no list
    /// (so the space is initialised: the object was counted by `before_tracked_alloc`).
    #[inline]
    pub(crate) unsafe fn track(&self, links: *const Links) {
        debug_assert!(self.state.is_initialized());
        // SAFETY: generation heads are initialised; `links` is unlinked per the caller.
        unsafe { list::push_back(self.gen_head(0), links) };
    }

    /// Take a live tracked object out of its generation (it leaves the space: `try_unwrap`).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this thread.
    #[inline]
    pub(crate) unsafe fn untrack(&self, links: *const Links) {
        // SAFETY: lists are intact outside the collector's passes.
        unsafe { list::unlink(links) };
        let g0 = &self.gens[0];
        g0.count.set(g0.count.get().saturating_sub(1));
    }

    /// The object's strong count reached zero by refcounting: untrack it and destroy it, or
    /// queue it if some frame up the stack is already destroying objects (this is what keeps
    /// dropping a million-node chain from recursing a million frames deep).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this thread whose strong count just
    /// reached zero, with `FLAG_DEAD` clear; counts are of type `C`.
    pub(crate) unsafe fn object_died<C: Counts>(&self, links: *const Links) {
        // SAFETY: per the caller; `destroy` is the generic destruction of such an object.
        unsafe { self.object_died_with::<C>(links, |l| destroy::<C>(l)) }
    }

    /// [`Space::object_died`] with the destruction supplied by the caller: `Gc::drop` passes
    /// one that knows the value's type (no indirect calls, a constant layout). `destroy` is
    /// called at most once, on `links`, only if no other frame is destroying objects; objects
    /// that die meanwhile are queued and destroyed generically afterwards.
    ///
    /// # Safety
    /// As for `object_died`; and `destroy(links)` must do what [`destroy`] does for this
    /// object (finalize once, drop the value, release the token).
    #[inline(always)]
    pub(crate) unsafe fn object_died_with<C: Counts>(
        &self,
        links: *const Links,
        destroy: impl FnOnce(*const Links),
    ) {
        // SAFETY: the object is tracked and linked (or a self-loop); lists are intact because no
        // collection pass is running while user code drops handles.
        unsafe { self.untrack(links) };
        // SAFETY: per the caller the header is alive.
        unsafe { C::set_flag(links, FLAG_DEAD) };
        if self.dropping.get() {
            // SAFETY: the object is unlinked, so `next` is free to chain the queue.
            unsafe { (*links).next.set(self.pending.get()) };
            self.pending.set(links);
            return;
        }
        let _g = DropGuard::<C>::enter(self);
        if std::thread::panicking() {
            // A death during another panic's unwinding (`gc::panics`): no second panic may
            // escape. The guard drains the queue the same way when it goes.
            panics::while_unwinding(|| destroy(links));
            return;
        }
        destroy(links);
        if !self.pending.get().is_null() {
            let mut panics = FirstPanic::new();
            self.drain::<C>(&mut panics);
            panics.resume();
        }
    }

    /// Run `f` as the outermost destroyer: deaths inside it are queued, then drained here,
    /// with their panics kept in `panics` (the first one) so that every queued object is
    /// destroyed.
    pub(crate) fn destroying<C: Counts, R>(
        &self,
        panics: &mut FirstPanic,
        f: impl FnOnce(&mut FirstPanic) -> R,
    ) -> R {
        if self.dropping.get() {
            return f(panics);
        }
        let _g = DropGuard::<C>::enter(self);
        let r = f(panics);
        self.drain::<C>(panics);
        r
    }

    /// Destroy every queued object (and those their drops queue), catching their panics.
    #[cold]
    #[inline(never)]
    fn drain<C: Counts>(&self, panics: &mut FirstPanic) {
        loop {
            let p = self.pending.get();
            if p.is_null() {
                break;
            }
            // SAFETY: queued objects are dead, unlinked, with their value not yet dropped; the
            // queue owns them (their strong count is zero, so nothing else will destroy them).
            // A panic leaves the object destroyed all the same (`destroy`) and the queue intact.
            unsafe {
                self.pending.set((*p).next.get());
                (*p).next.set(p);
                panics.run(|| destroy::<C>(p));
            }
        }
    }
}

/// Sets `dropping` for the outermost destroyer and clears it when dropped. If a `Drop`
/// unwinds through it (the refcount path, which propagates the panic as `Rc` does), the
/// objects queued meanwhile are destroyed first, still as the outermost destroyer (no
/// recursion), their own panics dropped: a second panic in flight would abort.
struct DropGuard<'a, C: Counts>(&'a Space, core::marker::PhantomData<C>);

impl<'a, C: Counts> DropGuard<'a, C> {
    fn enter(space: &'a Space) -> Self {
        space.dropping.set(true);
        DropGuard(space, core::marker::PhantomData)
    }
}

impl<C: Counts> Drop for DropGuard<'_, C> {
    fn drop(&mut self) {
        if !self.0.pending.get().is_null() {
            // Only when unwinding: the normal paths drain before the guard goes.
            // Dropping the `FirstPanic` discards what it caught.
            self.0.drain::<C>(&mut FirstPanic::new());
        }
        self.0.dropping.set(false);
    }
}

thread_local! {
    /// This thread's object space. No drop glue: it stays valid through thread-local teardown.
    static SPACE: Space = const { Space::new() };
}

/// Run `f` on this thread's object space. Always succeeds: the space has no destructor.
#[inline]
pub(crate) fn with_space<R>(f: impl FnOnce(&Space) -> R) -> R {
    // Only the address comes out of `LocalKey::with` (a tiny closure that always inlines), so
    // `f` is inlined into the caller or not on its own merits.
    let s: *const Space = SPACE.with(|s| s as *const Space);
    // SAFETY: `SPACE` is `const`-initialised and has no drop glue, so it stays valid, never
    // moved, for the whole life of this thread (through thread-local teardown too); the
    // reference does not outlive this call, and `Space` is `!Sync`, so it stays on this thread.
    let s = unsafe { &*s };
    s.init();
    f(s)
}

/// The single-thread flavor, as the collector sees it.
pub(crate) enum Local {}

// SAFETY: `with_state` gives the calling thread's own space, which no other thread touches;
// collections are serialised on the thread by `collecting`; the rest forwards to `Space`,
// whose methods keep the stated contracts.
unsafe impl Flavor for Local {
    type Counts = LocalCounts;
    const CONCURRENT: bool = false;

    #[inline]
    fn with_state<R>(f: impl FnOnce(&GenState) -> R) -> R {
        with_space(|s| f(&s.state))
    }

    #[inline]
    fn with_scan_state<R>(_gen: usize, f: impl FnOnce(&GenState) -> R) -> R {
        with_space(|s| f(&s.state))
    }

    unsafe fn relink(links: *const Links, gen: usize) {
        // SAFETY: per the caller; the thread's lists are intact outside a pass; the flags
        // follow the generation (`gc::local::old_touched`).
        with_space(|s| unsafe {
            super::old_touched::flag_for_generation(links, gen);
            list::push_back(s.gen_head(gen), links)
        })
    }

    fn enter_collection() -> Option<CollectionToken<Self>> {
        with_space(|s| {
            if s.collecting.get() {
                None
            } else {
                s.collecting.set(true);
                Some(CollectionToken::new())
            }
        })
    }

    fn leave_collection() {
        let _ = SPACE.try_with(|s| s.collecting.set(false));
    }

    fn destroying<R>(panics: &mut FirstPanic, f: impl FnOnce(&mut FirstPanic) -> R) -> R {
        with_space(|s| s.destroying::<LocalCounts, R>(panics, f))
    }

    unsafe fn object_died(links: *const Links) {
        // SAFETY: forwarded contract.
        with_space(|s| unsafe { s.object_died::<LocalCounts>(links) })
    }

    unsafe fn resurrected(set: &[*const Links]) -> Option<Vec<bool>> {
        // SAFETY: forwarded contract; no user code runs in the check.
        with_space(|s| unsafe { collect::resurrected_part::<LocalCounts>(&s.state, set) })
    }

    fn for_each_tracked(gen: Option<usize>, f: &mut dyn FnMut(Option<*const Links>)) {
        let f = &mut *f;
        let mut each = |p| f(Some(p));
        with_space(|s| {
            let gens = match gen {
                None => 0..NUM_GENERATIONS,
                Some(g) => g.min(NUM_GENERATIONS)..(g + 1).min(NUM_GENERATIONS),
            };
            for g in gens {
                // SAFETY: outside a pass the lists are intact; `f` runs no user code (only
                // `Trace` impls and count changes), so nothing relinks meanwhile.
                unsafe { list::for_each_node(s.gen_head(g), &mut each) };
                if g == NUM_GENERATIONS - 1 {
                    // The old objects that lost a reference are part of the oldest generation.
                    // SAFETY: as above.
                    unsafe { list::for_each_node(&s.touched, &mut each) };
                }
            }
            if gen.is_none() {
                // SAFETY: as above.
                unsafe { list::for_each_node(&s.permanent, &mut each) };
            }
        });
        f(None)
    }

    fn with_walk_locks(f: &mut dyn FnMut()) {
        f()
    }

    unsafe fn acquire_in_walk(p: *const Links) -> bool {
        // SAFETY: per the caller `p` is a live tracked object of this thread.
        unsafe {
            let c = counts_of::<LocalCounts>(p);
            let gone = FLAG_DEAD | FLAG_WEAKS_CLEARED | FLAG_UNIQUE;
            if c.strong() == 0 || (*p).flags() & gone != 0 {
                return false;
            }
            c.inc_strong();
        }
        true
    }

    unsafe fn clone_erased_locked(p: *const Links) {
        // SAFETY: forwarded (no lock in this flavor).
        unsafe { Self::clone_erased(p) }
    }

    fn notify(phase: Phase, info: CollectionInfo, panics: &mut FirstPanic) {
        super::callbacks::notify(phase, info, panics)
    }

    fn has_callbacks() -> bool {
        super::callbacks::has_callbacks()
    }

    unsafe fn clone_erased(p: *const Links) {
        // SAFETY: per the caller the object is alive.
        unsafe { counts_of::<LocalCounts>(p).inc_strong() }
    }

    unsafe fn release_erased(p: *const Links) {
        // As `Gc::drop` for a tracked value: the last handle, or a watched object losing one.
        // SAFETY: per the caller we own a strong reference to the live object `p`.
        unsafe {
            let word = counts_of::<LocalCounts>(p).release();
            if !LocalCounts::is_slow_drop(word) {
                return;
            }
            if word & STRONG_COUNT != 0 {
                with_space(|s| super::old_touched::lost_reference(s, p));
            } else if (*p).flags() & FLAG_DEAD != 0 {
                crate::gc::destroy::release_token::<LocalCounts>(p);
            } else {
                with_space(|s| s.object_died::<LocalCounts>(p));
            }
        }
    }

    unsafe fn gather_old(st: &GenState, young: *const Links, tracer: &mut Tracer) {
        // SAFETY: forwarded contract.
        unsafe { super::old_touched::gather(st, young, tracer) }
    }

    unsafe fn enter_oldest(p: *const Links) {
        // SAFETY: forwarded contract.
        unsafe { super::old_touched::enter_oldest(p) }
    }

    unsafe fn leave_oldest(p: *const Links) {
        // SAFETY: forwarded contract.
        unsafe { super::old_touched::leave_oldest(p) }
    }
}
