//! The collector's passes and the generational policy (CPython's `gc_collect_main` and
//! `collect_generations`), generic over the flavor's [`Counts`].
//!
//! # The algorithm
//!
//! Reference counting frees everything except cycles. To find the cycles of a generation,
//! the collector works out, for every object in it, how many of its strong references come
//! from *outside* the generation:
//!
//! 1. [`update_refs`]: `gc_refs = strong_count` for every object being collected (stored in
//!    the `prev` link, flagged `PREV_COLLECTING`).
//! 2. [`subtract_refs`]: trace every object; each edge to an object being collected is an
//!    internal reference: `gc_refs -= 1`. What remains counts references from elsewhere (the
//!    stack, older generations, untracked containers): objects with `gc_refs > 0` are roots.
//! 3. [`move_unreachable`]: mark everything reachable from the roots (an explicit stack, no
//!    recursion, so a million-node ring costs heap, not stack), then split the list into
//!    reachable objects (kept, `prev` pointers restored) and unreachable ones.
//! 4. Survivors move to the next generation; the unreachable set is handed to
//!    `gc::finalize::handle_garbage` for teardown in PEP 442's order.
//!
//! # When it runs (the trigger point)
//!
//! Automatically at the start of creating a tracked object (`Gc::new`, `Gc::new_cyclic`,
//! `Gc::new_finalized`) once generation 0's count exceeds its threshold, on the creating
//! thread, before the new object exists; and when asked (`pyheap::collect()`). CPython 3.12
//! moved its trigger from allocation to the interpreter's safe points (gh-97922) because
//! C code in the middle of an allocation could see arbitrary `__del__` effects on objects
//! it held raw pointers into. Here that hazard cannot arise: pyheap holds no borrow of its
//! own state across the collection, and user code can only reach objects through handles and
//! borrows the compiler checks, so the worst a `Drop` or finalizer of garbage can meet is a
//! `RefCell` the caller is borrowing (a panic from `RefCell`, never undefined behaviour);
//! a collection only ever frees objects no handle can reach. Code that must not run
//! foreign drops at a given point can wrap it in `gc::disable()`/`gc::enable()`.
//!
//! # Generations
//!
//! As CPython 3.8–3.13: a collection of generation `n` also collects all younger ones and
//! promotes survivors into `n + 1`; generation 0 is collected when its count (allocations
//! minus deaths) exceeds `threshold0`, generation `n > 0` when the number of collections of
//! `n - 1` since its own last collection exceeds `threshold_n`, and the oldest additionally
//! only when the objects promoted into it since the last full collection exceed 25% of those
//! that survived it (the long-lived ratio that keeps full collections amortised linear).

use super::header::{counts_of, Counts, Links, PREV_COLLECTING, PREV_REACHABLE, REFS_SHIFT};
use super::list;
use super::space::{Space, NUM_GENERATIONS};
use super::trace::{Mode, Tracer};

/// Resets the space's `collecting` flag even if a finalizer or `Drop` panics.
struct CollectingGuard<'a>(&'a Space);

impl Drop for CollectingGuard<'_> {
    fn drop(&mut self) {
        self.0.collecting.set(false);
    }
}

/// Aborts the process if a `Trace` impl panics in the middle of a pass: the lists then hold
/// `gc_refs` instead of pointers, and unwinding into code that uses them would be unsound.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("pyheap: a Trace impl panicked during a collection; aborting");
        std::process::abort();
    }
}

/// CPython's `collect_generations`: collect the oldest generation over its threshold.
pub(crate) fn collect_generations<C: Counts>(space: &Space) -> usize {
    for i in (0..NUM_GENERATIONS).rev() {
        let g = &space.gens[i];
        if g.count.get() > g.threshold.get() {
            if i == NUM_GENERATIONS - 1
                && space.long_lived_pending.get() < space.long_lived_total.get() / 4
            {
                continue;
            }
            return collect_generation::<C>(space, i);
        }
    }
    0
}

/// Collect generation `gen` and all younger ones; return the number of objects freed.
/// Returns 0 at once if a collection is already running on this thread.
pub(crate) fn collect_generation<C: Counts>(space: &Space, gen: usize) -> usize {
    assert!(
        gen < NUM_GENERATIONS,
        "pyheap::gc: invalid generation {gen} (must be 0, 1 or 2)"
    );
    space.init();
    if space.collecting.get() {
        return 0;
    }
    space.collecting.set(true);
    let _guard = CollectingGuard(space);

    if gen + 1 < NUM_GENERATIONS {
        let next = &space.gens[gen + 1].count;
        next.set(next.get() + 1);
    }
    for g in &space.gens[..=gen] {
        g.count.set(0);
    }
    let young = space.gen_head(gen);
    for i in 0..gen {
        // SAFETY: generation lists are intact between collections.
        unsafe { list::merge(space.gen_head(i), young) };
    }
    let old = if gen + 1 < NUM_GENERATIONS {
        space.gen_head(gen + 1)
    } else {
        young
    };

    let unreachable = Links::sentinel();
    let unreachable: *const Links = &unreachable;
    // SAFETY: `unreachable` lives on this frame until the end of the function and is not moved.
    unsafe { list::init(unreachable) };

    // SAFETY: no user code runs from here to `handle_garbage`: the passes only read counts
    // and call `Trace` impls, which may not create or drop handles.
    let survivors = unsafe {
        let no_unwind = AbortOnUnwind;
        space.in_pass.set(true);
        loop {
            update_refs::<C>(young);
            let retrack = subtract_refs(young);
            if retrack.is_empty() {
                break;
            }
            // Objects out of `get_mut`'s borrow that the generation points to join it, and
            // the counting starts over, so a cycle through them is found in this very
            // collection. Each round links at least one object, so this ends.
            // `push_back` only follows the head's `prev` (a pointer: the passes never touch
            // the sentinel) and the `next` chain, both intact mid-pass.
            for p in retrack {
                list::push_back(young, p);
            }
        }
        let survivors = move_unreachable(young, unreachable);
        space.in_pass.set(false);
        core::mem::forget(no_unwind);
        survivors
    };

    // Survivors: counted by move_unreachable's split (no separate walk of the list).
    if gen == NUM_GENERATIONS - 2 {
        space
            .long_lived_pending
            .set(space.long_lived_pending.get() + survivors);
    }
    if gen == NUM_GENERATIONS - 1 {
        space.long_lived_pending.set(0);
        space.long_lived_total.set(survivors);
    } else {
        // SAFETY: both lists are intact.
        unsafe { list::merge(young, old) };
    }

    // SAFETY: `unreachable` holds exactly the unreachable objects, with intact links.
    let freed = unsafe { super::finalize::handle_garbage::<C>(space, unreachable, old) };

    let cell = &space.gens[gen].stats;
    let mut st = cell.get();
    st.collections += 1;
    st.collected += freed;
    cell.set(st);
    freed
}

/// Iterate the `next` chain of a list whose `prev` fields may hold `gc_refs`.
///
/// # Safety
/// `head` is a list whose `next` chain is intact; `f` must not relink nodes.
unsafe fn for_each(head: *const Links, mut f: impl FnMut(*const Links)) {
    // SAFETY: per the caller the chain is intact.
    unsafe {
        let mut p = (*head).next.get();
        while p != head {
            let next = (*p).next.get();
            f(p);
            p = next;
        }
    }
}

/// Pass 1: `gc_refs = strong_count`, flag every object `PREV_COLLECTING`.
///
/// # Safety
/// `young` is an intact list of live tracked objects with counts of type `C`.
unsafe fn update_refs<C: Counts>(young: *const Links) {
    // SAFETY: per the caller.
    unsafe {
        for_each(young, |p| {
            let strong = counts_of::<C>(p).strong();
            debug_assert!(strong > 0, "a tracked object with no strong handle");
            (*p).set_refs((strong << REFS_SHIFT) | PREV_COLLECTING);
        })
    };
}

/// Pass 2: subtract the references that come from inside the generation.
///
/// # Safety
/// After `update_refs` on the same list.
unsafe fn subtract_refs(young: *const Links) -> Vec<*const Links> {
    let mut tracer = Tracer::new(Mode::Subtract);
    // SAFETY: every node is a live tracked object (its value is initialised).
    unsafe { for_each(young, |p| ((*p).vtable().trace)(p, &mut tracer)) };
    tracer.retrack
}

/// Link the objects the resurrection check found to be out of `get_mut`'s borrow back into
/// generation 0 (see `Tracer::retrack`).
///
/// # Safety
/// No pass is running; each entry is a live tracked object of this thread in no list (a
/// self-loop) whose `FLAG_UNIQUE` the tracer cleared, listed once.
unsafe fn retrack_all(space: &Space, retrack: Vec<*const Links>) {
    for p in retrack {
        // SAFETY: per the caller; lists are intact between passes.
        unsafe { space.track(p) };
    }
}

/// Pass 3: mark what the roots (`gc_refs > 0`) reach, then split `young` into the reachable
/// objects (left in `young`, `prev` restored) and the rest (moved to `unreachable`). Returns
/// the number of reachable objects (the survivors), counted during the split so the caller
/// need not walk the list again.
///
/// CPython does the marking inside the list walk, moving objects back and forth; an explicit
/// stack is simpler to follow and equally free of recursion.
///
/// # Safety
/// After `subtract_refs` on the same list; `unreachable` is an empty initialised list.
unsafe fn move_unreachable(young: *const Links, unreachable: *const Links) -> usize {
    let mut reachable = 0;
    let mut tracer = Tracer::new(Mode::Mark);
    // SAFETY: nodes are live; the `next` chain is untouched by the passes.
    unsafe {
        for_each(young, |p| {
            let prev = (*p).refs();
            if prev >> REFS_SHIFT > 0 {
                (*p).set_refs(prev | PREV_REACHABLE);
                tracer.stack.push(p);
            }
        });
        while let Some(p) = tracer.stack.pop() {
            ((*p).vtable().trace)(p, &mut tracer);
        }
        // Split, rebuilding both lists (push_back rewrites `prev`, clearing the bits).
        let mut p = (*young).next.get();
        list::init(young);
        while p != young {
            let next = (*p).next.get();
            if (*p).refs() & PREV_REACHABLE != 0 {
                list::push_back(young, p);
                reachable += 1;
            } else {
                list::push_back(unreachable, p);
            }
            p = next;
        }
    }
    reachable
}

/// `check_garbage`: after finalizers ran, is any member of `set` referenced from outside the
/// set? Each member carries one pin (a strong reference held by the collector), discounted.
///
/// # Safety
/// Every member is live, pinned once, unlinked (a self-loop), with counts of type `C`; no
/// user code runs during the call.
pub(crate) unsafe fn any_external_refs<C: Counts>(space: &Space, set: &[*const Links]) -> bool {
    // SAFETY: per the caller; the members' `prev` is restored to a self-loop before returning.
    unsafe {
        let no_unwind = AbortOnUnwind;
        space.in_pass.set(true);
        for &p in set {
            let strong = counts_of::<C>(p).strong() - 1;
            (*p).set_refs((strong << REFS_SHIFT) | PREV_COLLECTING);
        }
        let mut tracer = Tracer::new(Mode::Subtract);
        for &p in set {
            ((*p).vtable().trace)(p, &mut tracer);
        }
        let mut external = false;
        for &p in set {
            external |= (*p).refs() >> REFS_SHIFT > 0;
            (*p).set_prev(p);
        }
        space.in_pass.set(false);
        core::mem::forget(no_unwind);
        retrack_all(space, tracer.retrack);
        external
    }
}
