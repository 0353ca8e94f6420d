//! The [`Trace`] trait and the [`Tracer`] the collector hands to it.

use super::header::{
    Counts, Links, FLAG_UNIQUE, PREV_COLLECTING, PREV_REACHABLE, PREV_TENTATIVE, REFS_ONE,
    REFS_SHIFT,
};
use super::held::Held;
use super::scratch;

/// A value the cycle collector can look into: it reports the `Gc` handles it owns.
///
/// Derive it with `#[derive(Trace)]` (always correct); fields marked `#[trace(skip)]` are not
/// looked into, and `#[trace(crate = "path")]` on the type names pyheap when it is used under
/// another name (a renamed dependency, a re-export).
///
/// # Provided impls
///
/// - Leaves (`MAY_CONTAIN_GC = false`): the primitives, `str`, `String`, every `NonZero*`,
///   the atomics, `Duration`, `Instant`, `SystemTime`, paths, OS and C strings, network
///   addresses, `ThreadId`, `TypeId`, `Layout`, `cmp::Ordering`, `PhantomData`, `&T`, raw and
///   function pointers, std's `rc::Weak`/`sync::Weak` (which own no value).
/// - Containers, reporting what they own: `Box`, `Vec`, `VecDeque`, `LinkedList`,
///   `BinaryHeap`, `HashMap`/`HashSet`/`BTreeMap`/`BTreeSet`, arrays, slices, tuples,
///   `Option`, `Result`, `Cow` (its owned form), `Reverse`, `Wrapping`, `Saturating`, the
///   ranges and `Bound`, `ManuallyDrop` (see below), `Pin<P>` (what `P` owns: `Pin<Box<T>>`,
///   `Pin<Gc<T>>`).
/// - Interiors: `RefCell` (a borrowed one reports nothing: its referents are kept),
///   `Mutex`/`RwLock` (a held lock reports nothing; a poisoned one is traced; the shared
///   flavor keeps the guard until its scan has decided), `OnceCell`/`OnceLock`, and
///   `LazyCell`/`LazyLock` (the value once initialised; tracing never runs nor waits for the
///   initialiser).
/// - Only for a `T` that holds no `Gc` (a compile error otherwise, at `cargo build`):
///   `Cell<T>` (it cannot be looked into through `&self`: use `RefCell`), `Rc<T>`/`Arc<T>`
///   (a handle behind a shared owner has no single owner to report it: share through a `Gc`),
///   and `LazyCell<T>`/`LazyLock<T>` on Rust before 1.94 (no `get` to look without
///   initialising).
/// - With cargo features: `hashbrown` (`HashMap`, `HashSet`, `HashTable`), `indexmap`
///   (`IndexMap`, `IndexSet`), `smallvec` (`SmallVec`), `parking_lot` (`Mutex`, `FairMutex`,
///   `RwLock`: any `lock_api` lock, traced as std's).
///
/// A `ManuallyDrop` is traced like a plain field: after `ManuallyDrop::take` or
/// `ManuallyDrop::drop`, whose contract is that the `ManuallyDrop` is not used again, the value
/// that holds it must not be traced again either (call them in that value's own `Drop`, as is
/// usual; elsewhere, keep the content in an `Option` and `take` it).
///
/// ```
/// use pyheap::unsync::Gc;
/// use pyheap::Trace;
/// use std::cell::RefCell;
///
/// #[derive(Trace)]
/// struct Node {
///     name: String,
///     next: RefCell<Option<Gc<Node>>>,
/// }
///
/// let a = Gc::new(Node { name: "a".into(), next: RefCell::new(None) });
/// *a.next.borrow_mut() = Some(a.clone()); // a self-cycle
/// drop(a);
/// assert_eq!(pyheap::collect(), 1);
/// assert!(!<String as Trace>::MAY_CONTAIN_GC);
/// assert!(<Node as Trace>::MAY_CONTAIN_GC);
/// ```
///
/// # Safety
///
/// `trace` must report, through the `Trace` impls of the handles it owns, only `Gc` handles
/// that this value owns (that are dropped when it is dropped), each at most once per call, and
/// must not create or drop handles.
///
/// **Every call within one collection must report the same handles.** A collection may call
/// `trace` more than once on a value: the single-thread collector traces each object once to
/// count its internal references and again to mark what is reachable (as CPython does), and
/// the check after finalizers runs (both flavors) traces the garbage set again. What a value
/// owns cannot change in between (no user code runs while a collection traces), so an impl
/// that reports what its fields hold meets this by construction, as the derive does; only an
/// impl that keeps state of its own (a call counter in a `Cell`, a random choice) can break
/// it. Reporting fewer handles than owned, the same ones on every call, is safe: the objects
/// behind the unreported ones are kept alive (a leak). Reporting a handle the value does not
/// own, or a handle in one call and not in another, can make the collector destroy objects
/// that are still held: pyheap never reads freed memory because of it (such an object is
/// torn down as dead garbage: `try_deref` gives `None`, `Deref` panics, the header lives on
/// until its last handle goes), but the program has lost a value it holds, and a `Drop` of
/// the wrongly collected set may observe what it should not. `trace` must not call into
/// pyheap other than through the `Trace` impls of what it owns (no `Gc::new`, no dropping or
/// cloning handles, no `gc::freeze`): it runs while the collector's lists are mid-pass. A
/// `trace` that panics aborts the process for the same reason. `MAY_CONTAIN_GC` may only be
/// `false` if no value of the type can ever own a `Gc` (again, a wrong `false` only leaks).
pub unsafe trait Trace {
    /// Report every `Gc` handle this value owns, each exactly once, to `tracer`.
    fn trace(&self, tracer: &mut Tracer);

    /// False for types that can never own a `Gc`: a `Gc<T>` of such a `T` is never tracked by
    /// the collector (CPython untracks atomic objects the same way) and has a smaller header.
    const MAY_CONTAIN_GC: bool = true;
}

/// What a collection pass does with each edge it is told about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// `count_internal`: an edge to an object being collected is an internal reference.
    Count,
    /// `mark`: an edge from a reachable object makes its target reachable.
    Mark,
    /// `subtract_internal` (single-thread scan): an edge to an object being collected takes
    /// one from the references it has from outside (CPython's `visit_decref`).
    Subtract,
    /// `move_unreachable` (single-thread scan): an edge from a reachable object makes its
    /// target reachable, moving it back from the tentatively unreachable list to the tail of
    /// the generation, which is `young` (CPython's `visit_reachable`).
    MoveReachable { young: *const Links },
    /// Before a single-thread collection of generation 1 (`gc::local::old_touched::gather`):
    /// an edge to an object outside the generations being collected is handed to `visit`
    /// (which takes old objects not yet touched from the oldest generation into `young`, the
    /// list being collected, while `gather_budget` lasts). A function of the flavor's own, so
    /// that this layer does not name it.
    Gather {
        young: *const Links,
        visit: GatherEdge,
    },
    /// Introspection (`gc::get_referrers`), outside any pass: does the traced value hold a
    /// handle to `wanted`? Sets [`Tracer::found`].
    Find { wanted: *const Links },
    /// Introspection (`gc::get_referents`), outside any pass: every target is pushed on
    /// [`Tracer::stack`].
    Referents,
}

/// `Mode::Gather`'s visitor: `(tracer, target, young)`. Called with a target of the tracer's
/// flavor, alive, outside the generations being collected.
pub(crate) type GatherEdge = unsafe fn(&mut Tracer, *const Links, *const Links);

/// The visitor a collection passes to [`Trace::trace`]. Only the collector creates one; a
/// `Trace` impl hands it to the `Trace` impls of its fields.
///
/// ```
/// use pyheap::{Trace, Tracer};
/// struct Pair(Vec<u8>, Option<pyheap::unsync::Gc<u8>>);
/// // SAFETY: reports the fields' handles through their own impls, nothing else.
/// unsafe impl Trace for Pair {
///     fn trace(&self, tracer: &mut Tracer) {
///         self.0.trace(tracer);
///         self.1.trace(tracer);
///     }
/// }
/// ```
pub struct Tracer {
    mode: Mode,
    /// The collection is of the thread-safe flavor's space: flags live in the count word, and
    /// interior locks are held until the scan ends (see [`Tracer::trace_locked`]).
    concurrent: bool,
    /// `Mark`: objects found reachable whose edges are still to be followed.
    pub(crate) stack: Vec<*const Links>,
    /// `Count`: objects that `Gc::get_mut` took out of the generations (`FLAG_UNIQUE`)
    /// and that a traced value reported a handle to: that handle is being read through a
    /// shared reference, so the `&mut` `get_mut` made from it is over. The collector links
    /// them back into generation 0 once the pass is done.
    pub(crate) retrack: Vec<*const Links>,
    /// The flavor's flag accessors (`Counts::flags`, `Counts::clear_flag`), for the objects
    /// `get_mut` took out (`maybe_retrack`): this layer does not name the flavors' counts.
    flags: unsafe fn(*const Links) -> usize,
    clear_flag: unsafe fn(*const Links, usize),
    /// Concurrent flavor: the guards of the interior locks this scan took, released when the
    /// scan ends (or its counting starts over).
    held: Vec<Held>,
    /// Concurrent flavor, `Count`: the targets of the edges to objects being collected, in
    /// trace order (each object's run starts where `collect::count_internal` noted in its `prev`
    /// and ends with a null entry). Marking
    /// walks this buffer instead of tracing again: one trace per object per scan, so every
    /// pass sees the same edges by construction.
    pub(crate) edges: Vec<*const Links>,
    /// Concurrent flavor: the objects being scanned, in list order (`collect::init_refs`),
    /// which the later passes walk instead of the list: the next objects' addresses are
    /// known ahead, so their headers can be prefetched.
    pub(crate) objects: Vec<*const Links>,
    /// Set for a scan restricted to one garbage set (`collect::validated_external_refs`):
    /// edges to any other object are ignored without reading its header.
    members: Option<std::collections::HashSet<usize>>,
    /// `Gather`: how many more old objects may be taken into the collection.
    pub(crate) gather_budget: usize,
    /// `Find`: the wanted object was reported.
    pub(crate) found: bool,
}

impl Drop for Tracer {
    /// The guards held are released; the allocations of the stack, the edge buffer and the
    /// guards' vector are kept for the next collection.
    fn drop(&mut self) {
        let c = self.concurrent;
        scratch::give(c, scratch::Kind::Stack, core::mem::take(&mut self.stack));
        if c {
            scratch::give(true, scratch::Kind::Edges, core::mem::take(&mut self.edges));
            scratch::give(
                true,
                scratch::Kind::Objects,
                core::mem::take(&mut self.objects),
            );
            // Releases the guards here, then keeps the allocation.
            scratch::give_held(core::mem::take(&mut self.held));
        }
    }
}

impl core::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// A tracer for a scan of objects with counts `C`, of the thread-safe flavor's space if
    /// `concurrent`.
    pub(crate) fn new<C: Counts>(mode: Mode, concurrent: bool) -> Self {
        Self {
            mode,
            concurrent,
            flags: C::flags,
            clear_flag: C::clear_flag,
            stack: scratch::take(concurrent, scratch::Kind::Stack),
            retrack: Vec::new(),
            held: if concurrent {
                scratch::take_held()
            } else {
                Vec::new()
            },
            edges: if concurrent {
                scratch::take(true, scratch::Kind::Edges)
            } else {
                Vec::new()
            },
            objects: if concurrent {
                scratch::take(true, scratch::Kind::Objects)
            } else {
                Vec::new()
            },
            members: None,
            gather_budget: 0,
            found: false,
        }
    }

    /// Only follow edges to these objects (by the address of their links).
    pub(crate) fn restrict_to(&mut self, members: std::collections::HashSet<usize>) {
        self.members = Some(members);
    }

    /// Whether this is a concurrent flavor's scan.
    #[inline]
    pub(crate) fn is_concurrent(&self) -> bool {
        self.concurrent
    }

    /// Release every interior lock held and forget the recorded edges (a concurrent scan
    /// starting its counting over).
    pub(crate) fn release_guards(&mut self) {
        self.held.clear();
        self.edges.clear();
    }

    pub(crate) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Trace the value behind an interior lock (`Mutex`, `RwLock`) without ever blocking.
    ///
    /// `try_acquire` must try to take the lock without blocking (giving the guard, also for a
    /// poisoned lock) and `value` must give the guarded value from the guard. A lock that is
    /// busy reports nothing: the objects behind it are then roots for this collection (kept).
    ///
    /// In a single-thread collection the guard is released at once. In a concurrent one it is
    /// kept until the scan ends, so no thread moves a handle into or out of the value while
    /// the collector relies on what it saw (`docs/concurrency.md` §4.2 and §4.5); a concurrent
    /// scan traces each object once (marking walks the recorded edges), so the lock is never
    /// tried twice.
    pub(crate) fn trace_locked<'a, L, G, T>(
        &mut self,
        lock: &'a L,
        try_acquire: impl FnOnce(&'a L) -> Option<G>,
        value: impl FnOnce(&G) -> &T,
    ) where
        L: ?Sized,
        G: 'a,
        T: Trace + ?Sized,
    {
        let Some(guard) = try_acquire(lock) else {
            return;
        };
        value(&guard).trace(self);
        if self.concurrent {
            // The guard borrows a value inside an object the scan keeps alive (an object
            // being scanned is destroyed only under its shard's lock, which the scan holds),
            // and the tracer, with every guard it holds, is dropped (or `release_guards` is
            // called) before the scan releases the shard locks.
            // SAFETY: as just said, the `Held` is dropped while the lock is alive.
            self.held.push(unsafe { Held::new(guard) });
        }
    }

    /// One strong edge to the tracked object whose links are `target`, an object of the
    /// thread-safe flavor's space if `concurrent`, else of a single-thread space.
    ///
    /// Which edges a collection follows (the rule, for every pass):
    /// - **another flavor's object: never**, and its header is not read. A single-thread
    ///   value may own `pyheap::Gc` handles (the reverse cannot compile: shared values are
    ///   `Send + Sync`), so no cycle passes through both flavors and each collector treats
    ///   the other's objects as outside its space: to a single-thread scan a shared object is
    ///   what a `String` is. Reading its header would race with the shared space's scan,
    ///   which owns the `prev` word, and misread its atomic count word as plain counts.
    /// - **an object of the same flavor outside the generations being collected** (older
    ///   generations, frozen objects, objects `get_mut` took out, an exited thread's objects
    ///   in the shared space): ignored as in CPython's `visit_decref`: their `prev` is a
    ///   plain pointer, whose low bits are zero, and the scan that owns their list is this one
    ///   or none (the shared scan holds every shard lock). `get_mut`'s objects are noted for
    ///   relinking (`maybe_retrack`), and `Gather` takes old ones in.
    /// - **an object being torn down** (a garbage set whose finalizers or `Drop`s are running,
    ///   which may call `collect()`): its members were unlinked with plain `prev` pointers and
    ///   are pinned, so they are outside every scan: ignored, like the previous case.
    /// - **another thread's single-thread space**: unreachable, since single-thread handles
    ///   are `!Send` and shared values `Send + Sync`.
    ///
    /// # Safety
    /// `target` is the links of a tracked object of the flavor `concurrent` names, kept
    /// alive by the handle being reported.
    #[inline]
    pub(crate) unsafe fn edge(&mut self, target: *const Links, concurrent: bool) {
        if concurrent != self.concurrent {
            // The other flavor's object: outside this collector's space (see above).
            return;
        }
        if let Some(m) = &self.members {
            if !m.contains(&crate::gc::header::addr(target)) {
                return;
            }
        }
        // SAFETY: per the caller the target's header is alive.
        let t = unsafe { &*target };
        let prev = t.refs();
        if prev & PREV_COLLECTING == 0 {
            match self.mode {
                // SAFETY: as above.
                Mode::Count | Mode::Subtract => unsafe { self.maybe_retrack(target) },
                // Before the passes no `prev` holds collection bits: every edge comes here.
                // SAFETY: as above; `gather` runs before the passes, on the list `young`.
                Mode::Gather { young, visit } => unsafe { visit(self, target, young) },
                // Introspection runs outside every pass, so every edge comes here.
                Mode::Find { wanted } => self.found |= target == wanted,
                Mode::Referents => self.stack.push(target),
                _ => {}
            }
            return;
        }
        match self.mode {
            Mode::Count => {
                t.set_refs(prev + REFS_ONE);
                if self.concurrent {
                    self.edges.push(target);
                }
            }
            Mode::Mark => {
                if prev & PREV_REACHABLE == 0 {
                    t.set_refs(prev | PREV_REACHABLE);
                    self.stack.push(target);
                }
            }
            Mode::Subtract => {
                if prev >> REFS_SHIFT == 0 {
                    // Every reported edge is a live handle, counted in the strong count the
                    // pass started from; going below zero means a `Trace` impl reports edges
                    // it does not own.
                    over_reported();
                }
                t.set_refs(prev - REFS_ONE);
            }
            Mode::Gather { .. } | Mode::Find { .. } | Mode::Referents => {}
            Mode::MoveReachable { young } => {
                if prev & PREV_TENTATIVE == PREV_TENTATIVE {
                    // `t` is in `move_unreachable`'s tentatively unreachable list, whose
                    // links (real pointers, tagged in `prev`) are intact, and `young` is the
                    // generation's head, whose `prev` is its tail (`collect::move_unreachable`).
                    // SAFETY: as just said: unlink `t` there, append it to `young`.
                    unsafe {
                        let before = t.prev_untagged();
                        let after = t.next.get();
                        (*before).next.set(after);
                        (*after).set_prev_tagged(before);
                        crate::gc::list::push_back(young, target);
                    }
                    t.set_refs(REFS_ONE | PREV_COLLECTING);
                } else if prev >> REFS_SHIFT == 0 {
                    // Still ahead of the walk: it will be found reachable there.
                    t.set_refs(prev + REFS_ONE);
                }
            }
        }
    }

    /// An edge to an object outside the generation: if `get_mut` had taken it out, its borrow
    /// is over (see `retrack`); the flag changes here, the lists after the pass.
    ///
    /// # Safety
    /// As [`Tracer::edge`].
    #[inline]
    unsafe fn maybe_retrack(&mut self, target: *const Links) {
        // SAFETY: per the caller the header is alive; its counts are the flavor's, whose
        // accessors `new` stored (the single-thread flavor's flags are in the links).
        unsafe {
            if self.concurrent {
                if (self.flags)(target) & FLAG_UNIQUE != 0 {
                    (self.clear_flag)(target, FLAG_UNIQUE);
                    self.retrack.push(target);
                }
            } else if (*target).flags() & FLAG_UNIQUE != 0 {
                (*target).clear_flag(FLAG_UNIQUE);
                self.retrack.push(target);
            }
        }
    }
}

/// A `Trace` impl reported more edges to an object than it has handles: continuing would free
/// objects still in use (it broke its safety contract), and unwinding through a half-done
/// collection is unsound, so abort.
#[cold]
pub(crate) fn over_reported() -> ! {
    eprintln!("pyheap: a Trace impl reported more edges than the value owns; aborting");
    std::process::abort()
}
