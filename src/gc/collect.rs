//! The collector's passes and the generational policy (CPython's `gc_collect_main` and
//! `collect_generations`), written once for both flavors: generic over a [`Flavor`], which
//! supplies the count storage and the locking.
//!
//! # The algorithm
//!
//! Reference counting frees everything except cycles. To find the cycles of a generation,
//! the collector works out, for every object in it, how many of its strong references come
//! from *outside* the generation (trial deletion). The single-thread flavor does it as
//! CPython's `gc_collect_main` (nothing else runs meanwhile, see [`serial_scan`]):
//!
//! 1. [`update_refs`]: every object's `refs` starts at its strong count (stored in the `prev`
//!    link, flagged `PREV_COLLECTING`, as CPython reuses `_gc_prev` for `gc_refs`).
//! 2. [`subtract_internal`]: trace every object; each edge to an object being collected is an
//!    internal reference: `refs -= 1`. What is left counts the references from elsewhere (the
//!    stack, older generations, untracked containers).
//! 3. [`move_unreachable`]: one walk that keeps the objects with `refs > 0` and everything
//!    they reach, and moves the rest to a list of unreachable objects (tentatively, as CPython
//!    does, moving an object back when something reachable later in the walk points to it).
//!    No recursion: a million-node ring costs no stack.
//! 4. [`commit_unreachable`]: the unreachable objects are unlinked, pinned (one strong
//!    reference held by the collector), their weak handles cleared and marked dead, in one
//!    step per object.
//!
//! The thread-safe flavor's scan runs while other threads clone, drop, upgrade and move
//! handles, so it reads the counts *after* tracing and validates what it found
//! (`docs/concurrency.md` §2.5):
//!
//! 1. [`init_refs`]: every object being collected gets `internal = 0`.
//! 2. [`count_internal`]: trace every object once; each edge to an object being collected is
//!    an internal reference, `internal += 1`, and is recorded in the tracer's edge buffer.
//! 3. [`find_roots`]: read each object's strong count; objects with more strong references
//!    than internal ones are roots.
//! 4. [`mark`]: everything reachable from the roots, over the recorded edges (an explicit
//!    stack, no recursion).
//! 5. [`condemn`]: every unmarked object is condemned with a compare-and-swap from the exact
//!    count word read in step 3; an object whose word changed (a handle was cloned, dropped or
//!    upgraded meanwhile) becomes a root, marking resumes, and condemnations of objects now
//!    reachable are taken back, until every unreachable object is condemned
//!    (`docs/concurrency.md` §2.5-§2.6 and §4.1 for why all-or-nothing).
//! 6. [`split_and_commit`]: reachable objects stay (and are promoted), unreachable ones are
//!    unlinked and committed as in step 4 above.
//!
//! Then the caller's lock is released and `gc::finalize::teardown` runs the finalizers and
//! drops in PEP 442's order. No user code runs before that point: only `Trace` impls, whose
//! contract forbids touching handles.
//!
//! # When it runs (the trigger point)
//!
//! Single-thread flavor: the *scan* runs automatically at the start of creating a tracked
//! object (`Gc::new`, `Gc::new_cyclic`, `Gc::new_finalized`) once generation 0's count
//! exceeds its threshold, on the creating thread, before the new object exists; the garbage it
//! finds waits for a *safe point* (`pyheap::unsync::gc::safe_point()`, an explicit collection,
//! thread exit), where its finalizers and `Drop`s run (`gc::local::space`). CPython 3.12 moved its
//! trigger from allocation to the interpreter's safe points (gh-97922) because arbitrary
//! `__del__` code ran in the middle of an allocation; in Rust the same happens to a caller of
//! `Gc::new` that holds a `Mutex` a garbage `Drop` takes (a deadlock) or borrows a `RefCell`
//! it borrows (a panic). A scan runs no user code, so it is harmless anywhere. (Past the
//! teardown limit of waiting objects, for programs that reach no safe point, the automatic
//! collection tears down itself: `set_teardown_limit`.) The thread-safe flavor scans on the
//! allocating thread and tears down on a background thread (see `gc::shared::space`).
//!
//! # Generations
//!
//! As CPython 3.8–3.13: a collection of generation `n` also collects all younger ones and
//! promotes survivors into `n + 1`; generation 0 is collected when its count (allocations
//! minus deaths) exceeds `threshold0`, generation `n > 0` when the number of collections of
//! `n - 1` since its own last collection exceeds `threshold_n`, and the oldest additionally
//! only when the objects promoted into it since the last full collection exceed 25% of those
//! that survived it (the long-lived ratio that keeps full collections amortised linear).
//!
//! One addition, single-thread flavor only: a collection of generation 1 also takes in the
//! old objects that lost a reference since the last one and the old objects they reach, up
//! to a budget (`gc::local::old_touched`, which explains why this is sound for any set taken in),
//! so that cycles which die after their promotion do not wait for a full collection.

use super::debug::{CollectionInfo, Phase, DEBUG_COLLECTABLE, DEBUG_SAVEALL, DEBUG_STATS};
use super::flavor::Flavor;
use super::generations::{GenState, NUM_GENERATIONS};
use super::header::{
    addr, counts_of, Counts, Links, FLAG_FINALIZED, FLAG_OLD, PREV_COLLECTING, PREV_REACHABLE,
    REFS_SHIFT,
};
use super::list;
use super::panics::FirstPanic;
use super::scratch;
use super::trace::{over_reported, Mode, Tracer};

/// Aborts the process if a `Trace` impl panics in the middle of a pass: the lists then hold
/// collection bits instead of pointers, and unwinding into code that uses them would be
/// unsound.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("pyheap: a Trace impl panicked during a collection; aborting");
        std::process::abort();
    }
}

/// Collect generation `gen` and all younger ones; return the number of objects freed.
/// Returns 0 at once if a collection is already running on this thread. The teardown runs
/// to its end whatever its user code does; the first panic it met is left in `panics` for
/// the caller to resume once it holds nothing that unwinding must not cross.
pub(crate) fn collect_generation<F: Flavor>(gen: usize, panics: &mut FirstPanic) -> usize {
    assert!(
        gen < NUM_GENERATIONS,
        "pyheap::gc: invalid generation {gen} (must be 0, 1 or 2)"
    );
    let Some(_token) = F::enter_collection() else {
        return 0;
    };
    let garbage = scan_generation::<F>(gen);
    // SAFETY: `garbage` comes from `scan_generation` and is torn down once, here.
    unsafe { finish_notified::<F>(garbage, panics) }
}

/// [`finish`] between the collection callbacks' `Start` and `Stop` (which a collection calls
/// around its teardown, on the thread that runs it, with the thread marked as collecting: a
/// callback calling `collect()` gets 0).
///
/// # Safety
/// As [`finish`].
pub(crate) unsafe fn finish_notified<F: Flavor>(
    garbage: Garbage,
    panics: &mut FirstPanic,
) -> usize {
    let generation = garbage.gen;
    let info = |collected| CollectionInfo {
        generation,
        collected,
        uncollectable: 0,
    };
    let notify = F::has_callbacks();
    if notify {
        F::notify(Phase::Start, info(0), panics);
    }
    // SAFETY: per the caller.
    let freed = unsafe { finish::<F>(garbage, panics) };
    if notify {
        F::notify(Phase::Stop, info(freed), panics);
    }
    freed
}

/// What a scan found: a committed garbage set (pinned, unlinked, dead, unreachable), waiting
/// for its teardown ([`finish`]).
pub(crate) struct Garbage {
    pub(crate) set: Vec<*const Links>,
    pub(crate) finalizers: bool,
    pub(crate) gen: usize,
}

/// The part of a collection of generation `gen` that runs no user code: the scan, under the
/// flavor's locks. The caller must hand the result to [`finish`] exactly once.
pub(crate) fn scan_generation<F: Flavor>(gen: usize) -> Garbage {
    // SAFETY: `with_scan_state` gives exclusive use of the generations; `scan` runs no user
    // code.
    let (set, finalizers) = F::with_scan_state(gen, |st| {
        let debug = st.debug.get();
        let started = (debug & DEBUG_STATS != 0).then(|| {
            eprintln!("gc: collecting generation {gen}...");
            std::time::Instant::now()
        });
        // SAFETY: as said above.
        let r = unsafe { scan::<F>(st, gen) };
        if let Some(t) = started {
            eprintln!(
                "gc: done, {} unreachable, 0 uncollectable, {:.4}s elapsed",
                r.0.len(),
                t.elapsed().as_secs_f64()
            );
        }
        if debug & DEBUG_COLLECTABLE != 0 {
            // SAFETY: the garbage is committed (pinned): alive.
            unsafe { super::debug::print_collectable(&r.0) };
        }
        r
    });
    Garbage {
        set,
        finalizers,
        gen,
    }
}

/// The teardown of what a scan found (finalizers, `Drop`s, freeing: user code, so no pyheap
/// lock may be held), then the statistics. Returns the number of objects freed; panics of the
/// user code are kept in `panics` (the teardown finishes all the same).
///
/// # Safety
/// `garbage` came from [`scan_generation::<F>`] and is finished once.
pub(crate) unsafe fn finish<F: Flavor>(garbage: Garbage, panics: &mut FirstPanic) -> usize {
    let old = (garbage.gen + 1).min(NUM_GENERATIONS - 1);
    let save = !garbage.set.is_empty() && F::with_state(|st| st.debug.get() & DEBUG_SAVEALL != 0);
    // SAFETY: per the caller the set is what `scan` committed: pinned, unlinked, dead,
    // unreachable.
    let freed = unsafe {
        if save {
            super::finalize::save_all::<F>(&garbage.set, old, panics)
        } else {
            super::finalize::teardown::<F>(&garbage.set, garbage.finalizers, old, panics)
        }
    };
    scratch::give(F::CONCURRENT, scratch::Kind::Garbage, garbage.set);
    F::with_state(|st| st.record_collected(garbage.gen, freed));
    freed
}

/// The part of a collection that runs under the flavor's lock: passes, validation, commit,
/// promotion. Returns the garbage set, committed, and whether a member has a finalizer due
/// (see [`split_and_commit`]).
///
/// # Safety
/// `st` is the flavor's generation state, used exclusively by this call.
#[cfg_attr(loom, allow(clippy::never_loop))] // the validation retry is not built under loom
unsafe fn scan<F: Flavor>(st: &GenState, gen: usize) -> (Vec<*const Links>, bool) {
    // SAFETY: per the caller `st` stays put while in use.
    unsafe { st.init() };
    if gen + 1 < NUM_GENERATIONS {
        let next = &st.gens[gen + 1].count;
        next.set(next.get() + 1);
    }
    for g in &st.gens[..=gen] {
        g.count.set(0);
    }
    // Counted when it runs; what it frees is added when its teardown ends (which, for
    // automatic collections, may be later: on the collector thread, or at a safe point).
    st.record_collection(gen);
    let young = st.gen_head(gen);
    for i in 0..gen {
        // SAFETY: generation lists are intact between collections.
        unsafe { list::merge(st.gen_head(i), young) };
    }
    let old = if gen + 1 < NUM_GENERATIONS {
        st.gen_head(gen + 1)
    } else {
        young
    };
    // Single-thread flavor: the old objects that lost a reference (`gc::local::old_touched`) are
    // part of the oldest generation, so a full collection takes them along.
    if !F::CONCURRENT && gen == NUM_GENERATIONS - 1 {
        // SAFETY: both lists are intact.
        unsafe { list::merge(&st.touched, young) };
        st.touched_count.set(0);
    }
    // Whether the survivors go into the oldest generation (and must be flagged old).
    let to_oldest = gen + 1 >= NUM_GENERATIONS - 1;

    let no_unwind = AbortOnUnwind;
    st.in_pass.set(true);
    let mut tracer = Tracer::new::<F::Counts>(Mode::Count, F::CONCURRENT);
    if !F::CONCURRENT && gen == NUM_GENERATIONS - 2 {
        // A collection of generation 1 also examines the old objects that lost a reference
        // since the last one, and what they reach up to a budget (`gc::local::old_touched`).
        // SAFETY: `young` is intact and exclusively ours, no pass has started, `in_pass` is
        // set.
        unsafe { F::gather_old(st, young, &mut tracer) };
    }
    // SAFETY: the passes' contracts hold in sequence on the intact list `young`; only
    // `Trace` impls run, which may not create, drop or move handles.
    let (survivors, were_old, garbage, finalizers) = unsafe {
        if F::CONCURRENT {
            loop {
                init_refs(young, &mut tracer);
                count_internal(&mut tracer);
                if tracer.retrack.is_empty() {
                    break;
                }
                // Objects out of `get_mut`'s borrow that the generation points to join it, and
                // the counting starts over, so a cycle through them is found in this very
                // collection. Each round links at least one object, so this ends. `push_back`
                // only follows the head's `prev` (a pointer: the passes never touch the
                // sentinel) and the `next` chain, both intact mid-pass.
                for p in core::mem::take(&mut tracer.retrack) {
                    list::push_back(young, p);
                }
                // A fresh snapshot: the counting that follows alone decides (releasing the locks
                // in between is sound, nothing of the first round is used).
                tracer.release_guards();
            }
            tracer.set_mode(Mode::Mark);
            // Equal count words prove that no handle was created or dropped in between: the
            // version cannot wrap around while this scan holds the space lock, however long
            // it takes (`gc::shared::counts`, I8). No clock is involved.
            let snaps = find_roots::<F::Counts>(&mut tracer, true, 0);
            mark(&mut tracer);
            condemn::<F::Counts>(&snaps, &mut tracer);
            scratch::give_words(snaps);
            let (survivors, garbage, finalizers) = split_and_commit::<F::Counts>(young, &tracer);
            (survivors, 0, garbage, finalizers)
        } else {
            serial_scan::<F>(young, &mut tracer, to_oldest)
        }
    };
    // The interior locks the tracer held (concurrent flavor) are released before any user
    // code can run; the values they guard are no longer read.
    drop(tracer);
    st.in_pass.set(false);
    core::mem::forget(no_unwind);

    if gen == NUM_GENERATIONS - 2 {
        // Survivors gathered from the oldest generation were not promoted now.
        st.long_lived_pending
            .set(st.long_lived_pending.get() + (survivors - were_old));
    }
    if gen == NUM_GENERATIONS - 1 {
        st.long_lived_pending.set(0);
        st.long_lived_total.set(survivors);
    } else {
        // SAFETY: both lists are intact.
        unsafe { list::merge(young, old) };
    }
    (garbage, finalizers)
}

/// The single-thread flavor's scan of the list `young` (nothing else runs meanwhile, so the
/// counts can be read first, as CPython does): [`update_refs`], [`subtract_internal`],
/// [`move_unreachable`] (one walk that separates the reachable objects from the garbage),
/// [`commit_unreachable`]. Returns the number of survivors, how many of them were old
/// already (`to_oldest` only), the garbage, and whether a member has a finalizer due.
///
/// # Safety
/// `young` is an intact list of live tracked objects with counts of type `C`, used
/// exclusively by this call; only `Trace` impls run. `to_oldest`: the survivors go into the
/// oldest generation (they are flagged old, see `gc::local::old_touched`).
unsafe fn serial_scan<F: Flavor>(
    young: *const Links,
    tracer: &mut Tracer,
    to_oldest: bool,
) -> (usize, usize, Vec<*const Links>, bool) {
    // SAFETY: the passes' contracts hold in sequence on the intact list `young`.
    unsafe {
        loop {
            update_refs::<F::Counts>(young);
            tracer.set_mode(Mode::Subtract);
            subtract_internal(young, tracer);
            if tracer.retrack.is_empty() {
                break;
            }
            // As in the concurrent path of `scan`: objects out of `get_mut`'s borrow join the
            // generation and the counting starts over.
            for p in core::mem::take(&mut tracer.retrack) {
                list::push_back(young, p);
            }
        }
        // The tentatively unreachable list's head lives on this frame for the walk, and is
        // empty again (every member taken out by `commit_unreachable`) when it goes.
        let unreachable = Links::sentinel();
        let u: *const Links = &unreachable;
        (*u).next.set(u);
        (*u).set_prev_tagged(u);
        tracer.set_mode(Mode::MoveReachable { young });
        let (survivors, were_old) = if to_oldest {
            move_unreachable::<F, true>(young, u, tracer)
        } else {
            move_unreachable::<F, false>(young, u, tracer)
        };
        let (garbage, finalizers) = commit_unreachable::<F>(u);
        (survivors, were_old, garbage, finalizers)
    }
}

/// Serial pass 1 (CPython's `update_refs`): every object's collection bits start from its
/// strong count, flagged `PREV_COLLECTING`.
///
/// # Safety
/// `young` is an intact list of live tracked objects with counts of type `C`.
unsafe fn update_refs<C: Counts>(young: *const Links) {
    // SAFETY: per the caller.
    unsafe {
        for_each(young, |p| {
            // A strong count of zero cannot occur here (a single-thread object that dies by
            // refcounting leaves its list before its destruction is queued); were it to, the
            // object would count as referenced from outside and be kept.
            let strong = counts_of::<C>(p).strong().max(1);
            (*p).set_refs(strong << REFS_SHIFT | PREV_COLLECTING);
        })
    };
}

/// Serial pass 2 (CPython's `subtract_refs`): trace every object; each edge to an object being
/// collected takes one from its count (`Mode::Subtract`), which then counts the references
/// from outside the generation. Edges out of `get_mut` borrows are noted in
/// `tracer.retrack`.
///
/// # Safety
/// After `update_refs` on the same list; the tracer is in `Mode::Subtract`.
unsafe fn subtract_internal(young: *const Links, tracer: &mut Tracer) {
    // SAFETY: every node is a live tracked object (its value is initialised, and no `&mut`
    // to it exists: objects under `get_mut` are in no list).
    unsafe { for_each(young, |p| ((*p).vtable().trace)(p, tracer)) };
}

/// Serial pass 3 (CPython's `move_unreachable`): one walk of `young` that leaves in it exactly
/// the objects reachable from those with references from outside, and moves the others to
/// the list `unreachable`. Returns the number of reachable objects and, if `TO_OLDEST` (the
/// survivors go into the oldest generation: each is flagged old, untouched), how many of them
/// were flagged old already (gathered by `gc::local::old_touched`).
///
/// The walk keeps CPython's invariant: every object to the left of the cursor is reachable,
/// has been traced (in `Mode::MoveReachable`), and has its `prev` restored to a real pointer
/// with no collection bits (so edges to it are ignored from then on). An object the cursor
/// meets with a positive count is reachable: it is traced, which gives every object it
/// points to a count of at least one, moving those in `unreachable` back to the tail of
/// `young` (ahead of the cursor, so it meets them again). An object met with a count of zero
/// is moved to `unreachable` for now: only an object to its right could still point to it,
/// and tracing that one brings it back. `unreachable` is linked through real `prev`
/// pointers tagged [`PREV_TENTATIVE`] so that edges can tell its members apart and unlink
/// them. `young`'s own `prev` (the tail) stays a real pointer to the last object at or
/// right of the cursor throughout: the objects moved out of `young` are never its tail
/// while the walk goes on (the walk ends when the tail leaves).
///
/// # Safety
/// After `subtract_internal` on the same list, with no `retrack` pending; `unreachable` is an
/// empty list head initialised with [`Links::set_prev_tagged`] (pointing at itself); the
/// tracer is in `Mode::MoveReachable { young }`.
unsafe fn move_unreachable<F: Flavor, const TO_OLDEST: bool>(
    young: *const Links,
    unreachable: *const Links,
    tracer: &mut Tracer,
) -> (usize, usize) {
    let mut reachable = 0;
    let mut were_old = 0;
    // SAFETY: every node of either list is a live tracked object; the links are rewritten
    // only as described above, so both chains stay intact.
    unsafe {
        let mut last = young; // the last object found reachable (or the head)
        let mut p = (*young).next.get();
        while p != young {
            if (*p).refs() >> REFS_SHIFT != 0 {
                prefetch((*p).next.get());
                // Tracing may append to `young`, changing `p.next` if `p` is the tail: read
                // the successor only afterwards.
                ((*p).vtable().trace)(p, tracer);
                (*p).set_prev(last);
                if TO_OLDEST {
                    were_old += ((*p).flags() & FLAG_OLD != 0) as usize;
                    F::enter_oldest(p);
                }
                last = p;
                reachable += 1;
            } else {
                prefetch((*p).next.get());
                (*last).next.set((*p).next.get());
                let tail = (*unreachable).prev_untagged();
                (*tail).next.set(p);
                (*p).set_prev_tagged(tail);
                (*p).next.set(unreachable);
                (*unreachable).set_prev_tagged(p);
            }
            p = (*last).next.get();
        }
        (*young).set_prev(last);
    }
    (reachable, were_old)
}

/// Serial pass 4: every member of `unreachable` is unlinked (a self-loop) and committed as
/// [`split_and_commit`] does. Returns the garbage and whether some member has a finalizer
/// still to run; leaves `unreachable` empty.
///
/// # Safety
/// After `move_unreachable`, with its `unreachable` list.
unsafe fn commit_unreachable<F: Flavor>(unreachable: *const Links) -> (Vec<*const Links>, bool) {
    let mut garbage = scratch::take(false, scratch::Kind::Garbage);
    let mut finalizers = false;
    // SAFETY: members are live tracked objects with counts of type `C`; the `next` chain is
    // intact and only each member's own links are rewritten.
    unsafe {
        let mut p = (*unreachable).next.get();
        while p != unreachable {
            let next = (*p).next.get();
            // Out of every list now: a `Drop` or finalizer dropping a handle to it must not
            // move it to the touched list (`gc::local::old_touched`).
            F::leave_oldest(p);
            finalizers |= commit_member::<F::Counts>(p, &mut garbage);
            p = next;
        }
        list::init(unreachable);
    }
    (garbage, finalizers)
}

/// Commit one unreachable object (both scans' last step): a self-loop, pinned, weak handles
/// cleared, dead ([`Counts::commit_garbage`]), appended to `garbage`. Returns whether it has a
/// finalizer still to run.
///
/// # Safety
/// `p` is a live tracked object with counts of type `C`, found unreachable by the current
/// scan; the caller no longer follows its links (they are rewritten).
unsafe fn commit_member<C: Counts>(p: *const Links, garbage: &mut Vec<*const Links>) -> bool {
    // SAFETY: per the caller.
    unsafe {
        (*p).next.set(p);
        (*p).set_prev(p);
        let due = (*p).vtable().finalize.is_some() && C::flags(p) & FLAG_FINALIZED == 0;
        C::commit_garbage(p);
        garbage.push(p);
        due
    }
}

/// Iterate the `next` chain of a list whose `prev` fields may hold collection bits.
///
/// # Safety
/// `head` is a list whose `next` chain is intact; `f` must not relink nodes.
pub(crate) unsafe fn for_each(head: *const Links, mut f: impl FnMut(*const Links)) {
    // SAFETY: per the caller the chain is intact.
    unsafe {
        let mut p = (*head).next.get();
        while p != head {
            let next = (*p).next.get();
            prefetch(next);
            f(p);
            p = next;
        }
    }
}

/// Ask the CPU to start loading the object at `p` (its header and the start of its value)
/// while the current one is processed: the walks chase `next` pointers through generations
/// that do not fit in L1. Only a hint: no memory is accessed, any address is allowed.
#[inline(always)]
fn prefetch(p: *const Links) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: `_mm_prefetch` is a hint that never faults and never reads memory
    // architecturally; SSE is enabled (the cfg).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>().wrapping_add(64));
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = p;
}

/// Pass 1 (concurrent flavor): list the objects of `young` in the tracer's `objects` array
/// (the later passes walk it instead of the list), and give every one `internal = 0` and the
/// flag `PREV_COLLECTING`.
///
/// # Safety
/// `young` is an intact list of live tracked objects.
unsafe fn init_refs(young: *const Links, tracer: &mut Tracer) {
    let objects = &mut tracer.objects;
    objects.clear();
    // SAFETY: per the caller.
    unsafe {
        for_each(young, |p| {
            (*p).set_refs(PREV_COLLECTING);
            objects.push(p);
        })
    };
}

/// How far ahead the array walks of a concurrent scan prefetch (objects).
const PREFETCH_AHEAD: usize = 8;

/// Walk `objects` with prefetching: `f(i, p)` for each, in order, while the header of the
/// object `PREFETCH_AHEAD` further on is being loaded (the array gives its address without
/// a dependent load, which the list walk cannot: that is the point of the array).
#[inline(always)]
fn for_each_object(objects: &[*const Links], mut f: impl FnMut(usize, *const Links)) {
    for (i, &p) in objects.iter().enumerate() {
        if let Some(&ahead) = objects.get(i + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        f(i, p);
    }
}

/// In a concurrent scan, `prev` holds `start << START_SHIFT | internal << REFS_SHIFT | bits`:
/// `start` is where the object's run of edges begins in `Tracer::edges` (each run ends with a
/// null entry).
const START_SHIFT: u32 = 32;
/// The `internal` field of a concurrent scan's `prev` (30 bits; strong counts stay below 2^28).
const INTERNAL_MASK: usize = (1 << (START_SHIFT - REFS_SHIFT)) - 1;

/// The internal-reference count stored in `bits`.
#[inline]
fn internal_of(bits: usize, concurrent: bool) -> usize {
    if concurrent {
        (bits >> REFS_SHIFT) & INTERNAL_MASK
    } else {
        bits >> REFS_SHIFT
    }
}

/// Pass 2 (concurrent flavor): count the references that come from inside the generation,
/// and record them in the tracer's edge buffer: one run per object, ended by a null entry,
/// whose start is stored in the object's `prev`. (Marking then finds a run from the object
/// alone; an array of starts indexed by object cost a cache miss per marked object in a
/// 200k-node graph.)
///
/// # Safety
/// After `init_refs`, with the same tracer.
unsafe fn count_internal(tracer: &mut Tracer) {
    let objects = core::mem::take(&mut tracer.objects);
    // SAFETY: every object is a live tracked object (its value is initialised, and no `&mut`
    // to it exists: objects under `get_mut` are in no list).
    for_each_object(&objects, |_, p| unsafe {
        let start = tracer.edges.len();
        (*p).set_refs((*p).refs() | (start << START_SHIFT));
        ((*p).vtable().trace)(p, tracer);
        tracer.edges.push(core::ptr::null());
    });
    tracer.objects = objects;
}

/// Pass 3: read the counts (less `pins` each); objects with references from outside are roots
/// (marked reachable and pushed on the tracer's stack). So is an object whose count is already
/// zero (concurrent flavor: its last handle was just dropped and its destroyer waits for the
/// lock; its `Drop` is still to run). Returns the snapshots in list order if `record` (for
/// [`condemn`]).
///
/// # Safety
/// After `count_internal` with the same tracer, with counts of type `C`.
unsafe fn find_roots<C: Counts>(tracer: &mut Tracer, record: bool, pins: usize) -> Vec<u64> {
    let mut snaps = if record {
        scratch::take_words()
    } else {
        Vec::new()
    };
    let stack = &mut tracer.stack;
    // SAFETY: the objects are live tracked objects with counts of type `C`.
    unsafe {
        for_each_object(&tracer.objects, |_, p| {
            let snap = counts_of::<C>(p).scan_snapshot();
            if record {
                snaps.push(snap);
            }
            // `pins`: references the collector itself holds on every object (a garbage set's
            // pins, in `validated_external_refs`), neither internal nor from outside.
            let raw = C::strong_of(snap);
            let strong = raw.saturating_sub(pins);
            let bits = (*p).refs();
            let internal = internal_of(bits, record);
            if internal > strong {
                // Every reported edge is a live handle, counted in `strong`; more internal
                // references than handles means a `Trace` impl reports edges it does not own.
                over_reported();
            }
            if internal < strong || raw == 0 {
                (*p).set_refs(bits | PREV_REACHABLE);
                stack.push(p);
            }
        });
    }
    snaps
}

/// Pass 4: follow edges from the objects on the tracer's stack (already marked reachable):
/// by tracing them again (single-thread flavor: nothing changed since `count_internal`), or,
/// in a concurrent scan, by walking the edges `count_internal` recorded.
///
/// # Safety
/// During a collection, after `find_roots` with the same tracer; the tracer is in
/// `Mode::Mark`.
unsafe fn mark(tracer: &mut Tracer) {
    while let Some(p) = tracer.stack.pop() {
        if !tracer.is_concurrent() {
            // SAFETY: stacked objects are live members of the generation being collected.
            unsafe { ((*p).vtable().trace)(p, tracer) };
            continue;
        }
        // SAFETY: as above; `count_internal` stored the start of its run, which ends with a
        // null entry.
        let mut i = unsafe { (*p).refs() } >> START_SHIFT;
        loop {
            let t = tracer.edges[i];
            i += 1;
            if t.is_null() {
                break;
            }
            // SAFETY: recorded targets are members of the generation, alive for the scan.
            unsafe {
                let bits = (*t).refs();
                if bits & PREV_REACHABLE == 0 {
                    (*t).set_refs(bits | PREV_REACHABLE);
                    tracer.stack.push(t);
                }
            }
        }
    }
}

/// Pass 5 (concurrent flavor): condemn every unmarked object with a compare-and-swap from
/// its snapshot; a failure makes the object a root and marking resumes; repeat until every
/// unmarked object is condemned and no marked one is. Each failing round marks at least one
/// more object, so this ends.
///
/// # Safety
/// After `mark`, with `snaps` from `find_roots` with the same tracer.
unsafe fn condemn<C: Counts>(snaps: &[u64], tracer: &mut Tracer) {
    loop {
        let mut failed = false;
        let stack = &mut tracer.stack;
        // SAFETY: the objects are live tracked objects with counts of type `C`, in `snaps`'
        // order.
        unsafe {
            for_each_object(&tracer.objects, |i, p| {
                let c = counts_of::<C>(p);
                let bits = (*p).refs();
                if bits & PREV_REACHABLE != 0 {
                    if c.is_condemned() {
                        c.uncondemn();
                    }
                } else if !c.is_condemned() && !c.try_condemn(snaps[i]) {
                    (*p).set_refs(bits | PREV_REACHABLE);
                    stack.push(p);
                    failed = true;
                }
            });
        }
        if !failed {
            break;
        }
        // SAFETY: as for `mark`.
        unsafe { mark(tracer) };
    }
}

/// Take back every condemnation and every mark (the resurrection check is done with them).
///
/// # Safety
/// After `condemn` with the same tracer, during the same scan.
unsafe fn retract<C: Counts>(tracer: &Tracer) {
    // SAFETY: the objects are live tracked objects with counts of type `C`.
    unsafe {
        for_each_object(&tracer.objects, |_, p| {
            let c = counts_of::<C>(p);
            if c.is_condemned() {
                c.uncondemn();
            }
            (*p).set_refs((*p).refs() & !PREV_REACHABLE);
        });
    }
}

/// Pass 6: split `young` into the reachable objects (left in `young`, `prev` restored) and
/// the garbage, which is unlinked (a self-loop each) and committed: pinned with one strong
/// reference, weak handles cleared, marked dead ([`Counts::commit_garbage`]). Returns the
/// number of survivors, the garbage, and whether some member has a finalizer still to run.
///
/// # Safety
/// After `condemn` on the list `young`, with the same tracer (whose `objects` are that
/// list's, in order).
unsafe fn split_and_commit<C: Counts>(
    young: *const Links,
    tracer: &Tracer,
) -> (usize, Vec<*const Links>, bool) {
    let mut reachable = 0;
    let mut garbage = scratch::take(true, scratch::Kind::Garbage);
    let mut finalizers = false;
    // SAFETY: the objects are live and were exactly the list's; it is rebuilt from them
    // (push_back rewrites `prev`, clearing the collection bits).
    unsafe {
        list::init(young);
        for_each_object(&tracer.objects, |_, p| {
            if (*p).refs() & PREV_REACHABLE != 0 {
                list::push_back(young, p);
                reachable += 1;
            } else {
                finalizers |= commit_member::<C>(p, &mut garbage);
            }
        });
    }
    (reachable, garbage, finalizers)
}

/// `check_garbage` of the single-thread flavor: after finalizers ran, which members of `set`
/// are referenced from outside the set, or reachable from one that is? Returns `None` if
/// none, else one flag per member (see [`Flavor::resurrected`]). Each member carries one pin,
/// discounted. Objects whose `get_mut` borrow the tracing proves over are linked back into
/// generation 0.
///
/// # Safety
/// Every member is live, pinned once, unlinked (a self-loop), with counts of type `C`; no
/// user code runs during the call; `st` is used exclusively.
pub(crate) unsafe fn resurrected_part<C: Counts>(
    st: &GenState,
    set: &[*const Links],
) -> Option<Vec<bool>> {
    // SAFETY: per the caller; the members' `prev` is restored to a self-loop before returning.
    unsafe {
        let no_unwind = AbortOnUnwind;
        st.in_pass.set(true);
        for &p in set {
            (*p).set_refs(PREV_COLLECTING);
        }
        let mut tracer = Tracer::new::<C>(Mode::Count, false);
        for &p in set {
            ((*p).vtable().trace)(p, &mut tracer);
        }
        // Members with more handles than internal edges (beyond the pin) are roots; everything
        // they reach in the set stays with them.
        tracer.set_mode(Mode::Mark);
        for &p in set {
            let bits = (*p).refs();
            if counts_of::<C>(p).strong() - 1 > bits >> REFS_SHIFT {
                (*p).set_refs(bits | PREV_REACHABLE);
                tracer.stack.push(p);
            }
        }
        while let Some(p) = tracer.stack.pop() {
            ((*p).vtable().trace)(p, &mut tracer);
        }
        let kept: Vec<bool> = set
            .iter()
            .map(|&p| {
                let k = (*p).refs() & PREV_REACHABLE != 0;
                (*p).set_prev(p);
                k
            })
            .collect();
        st.in_pass.set(false);
        core::mem::forget(no_unwind);
        for p in core::mem::take(&mut tracer.retrack) {
            list::push_back(st.gen_head(0), p);
        }
        kept.contains(&true).then_some(kept)
    }
}

/// `check_garbage` of the thread-safe flavor: after finalizers ran on a committed garbage set,
/// which members are referenced from outside the set (beyond the collector's pins), or
/// reachable from one that is? Returns `None` if none, else one flag per member (see
/// [`Flavor::resurrected`]). A finalizer may
/// have handed a handle to another thread, which may clone, drop or move it while this runs,
/// so a single reading of the counts proves nothing: the set is scanned as a generation of its
/// own with a concurrent scan's validated passes (`init_refs` .. `condemn`: the counts are read
/// after tracing, with the interior locks held, and confirmed by compare-and-swap, exactly as
/// for a generation; `docs/concurrency.md` §2.6), each count discounted by the pin. The tracer
/// is restricted to the members, so no other object's header is read. Anything the scan cannot
/// prove (a busy lock, a changed count) counts as a reference from outside, so what it reaches
/// is kept, which is always safe; past the validation's time bound the whole set is kept. The
/// unflagged members were condemned by compare-and-swap from the counts read: nothing outside
/// the set referenced them then, and nothing can since (no handle to them is left outside the
/// set, and the flagged members, which stay, cannot reach them). The members are left
/// as they came: self-loops, not condemned.
///
/// # Safety
/// Every member is live, pinned once, unlinked (a self-loop), with its weak handles cleared
/// and not dead, with counts of type `C`; the caller holds the lock every scan holds (so no
/// other pass reads or writes collection bits meanwhile); no user code runs during the call.
pub(crate) unsafe fn validated_external_refs<C: Counts>(set: &[*const Links]) -> Option<Vec<bool>> {
    let members: std::collections::HashSet<usize> = set.iter().map(|&p| addr(p)).collect();
    let head = Links::sentinel();
    let h: *const Links = &head;
    // SAFETY: per the caller the members are ours to link (nobody else links or reads an
    // unlinked, pinned object's links) and only `Trace` impls run; every member is a
    // self-loop again before `head` goes away.
    unsafe {
        let no_unwind = AbortOnUnwind;
        list::init(h);
        for &p in set {
            list::push_back(h, p);
        }
        let mut tracer = Tracer::new::<C>(Mode::Count, true);
        tracer.restrict_to(members);
        init_refs(h, &mut tracer);
        count_internal(&mut tracer);
        tracer.set_mode(Mode::Mark);
        let snaps = find_roots::<C>(&mut tracer, true, 1);
        mark(&mut tracer);
        condemn::<C>(&snaps, &mut tracer);
        scratch::give_words(snaps);
        // `set`'s order, not the list's (the same here: pushed in `set`'s order).
        let kept: Vec<bool> = set
            .iter()
            .map(|&p| (*p).refs() & PREV_REACHABLE != 0)
            .collect();
        retract::<C>(&tracer);
        let mut p = (*h).next.get();
        while p != h {
            let next = (*p).next.get();
            (*p).next.set(p);
            (*p).set_prev(p);
            p = next;
        }
        list::init(h);
        // The guards are released only now: the decision was taken with them held.
        drop(tracer);
        core::mem::forget(no_unwind);
        kept.contains(&true).then_some(kept)
    }
}
