//! [`Finalize`] and the teardown of a garbage set, in PEP 442's order (CPython's
//! `handle_weakrefs`, `finalize_garbage`, `check_garbage`, `delete_garbage`), generic over the
//! flavor's [`Counts`].
//!
//! Once the passes have found the unreachable set, user code runs for the first time:
//!
//! 0. Every member is unlinked from the lists and *pinned*: the collector takes one strong
//!    reference on it, so no member can die by refcounting while finalizers and drops run,
//!    whatever they do to the graph.
//! 1. `handle_weakrefs`: every member gets `FLAG_WEAKS_CLEARED`, so `Weak::upgrade` returns
//!    `None` before any user code runs (no `Weak` can bring garbage back).
//! 2. `finalize_garbage`: each member with a finalizer that has not run yet runs it, once
//!    (`FLAG_FINALIZED`), while the whole set is intact.
//! 3. `check_garbage` / `handle_resurrected_objects`: if a finalizer ran, the set is checked
//!    again with the collector's own passes (`Flavor::resurrected`): a member referenced from
//!    outside the set (beyond the pins) means a finalizer stored a handle somewhere, so it and
//!    everything it reaches are resurrected: put back into the older generation with working
//!    handles; their weak handles stay cleared and their finalizers will not run again. The
//!    rest of the set is still unreachable and goes on to step 4.
//! 4. `delete_garbage`: every member not resurrected gets `FLAG_DEAD` (from now on
//!    `try_deref` gives `None`, `Deref` panics), then every value is dropped. Handles inside
//!    the values drop normally; deaths they cause outside the set are queued and destroyed
//!    iteratively.
//! 5. Each member's pin is released right after its value is dropped (in the same walk); a
//!    member whose strong count is then zero releases its value's weak token, and its memory
//!    goes when the last `Weak` does. A handle to a member that a `Drop` stashed away, or
//!    that a value not yet dropped holds, keeps the (dead) header alive until it is dropped.
//!
//! A finalizer or `Drop` that panics does not stop the teardown: the panic is caught, every
//! other member is still finalized (at most once) and dropped (exactly once), and the caller
//! gets the first panic to resume once the collection is over (`gc::panics`). A member whose
//! finalizer panicked is treated as finalized; one whose `drop` panicked as dropped (std's
//! rule for a value whose `drop` unwinds: its remaining fields were dropped on the way).

use super::destroy::release_token;
use super::flavor::Flavor;
use super::header::{counts_of, Counts, Links, FLAG_DEAD, FLAG_FINALIZED};
use super::panics::FirstPanic;

/// A finalizer: runs once, before the object is destroyed, with the object (and, for a
/// garbage cycle, the whole cycle) still intact. Python's `__del__` (PEP 442 semantics).
///
/// Attach it with `Gc::new_finalized`. For a garbage cycle, finalizers run after the
/// cycle's weak handles are cleared and before any value is dropped; a finalizer may
/// *resurrect* the cycle by storing a clone of a member's handle somewhere reachable, in
/// which case nothing is freed. When an object dies by refcounting, its finalizer runs
/// just before its `Drop`.
///
/// ```
/// use pyheap::unsync::Gc;
/// use pyheap::{Finalize, Trace};
/// use std::cell::Cell;
///
/// thread_local!(static LOG: Cell<u32> = const { Cell::new(0) });
///
/// #[derive(Trace)]
/// struct Res(Option<Gc<Res>>);
/// impl Finalize for Res {
///     fn finalize(&self) {
///         LOG.with(|l| l.set(l.get() + 1));
///     }
/// }
///
/// drop(Gc::new_finalized(Res(None)));
/// assert_eq!(LOG.with(|l| l.get()), 1);
/// ```
pub trait Finalize {
    /// Called once before the object is destroyed.
    fn finalize(&self);
}

/// Tear down the garbage set a collection committed (steps 2 to 5 above; steps 0 and 1 are
/// `collect::split_and_commit`, done under the flavor's lock, which also marks every member
/// `FLAG_DEAD`: if no member has a finalizer due (`finalizers` false) the set is dead already,
/// one pass less; otherwise the mark is taken off again before any finalizer runs). Returns
/// the number of objects freed. Runs user code (finalizers, `Drop`), so the caller holds no
/// pyheap lock.
///
/// # Safety
/// Every member of `set` is a live tracked object of flavor `F`, unlinked, pinned once, with
/// its weak handles cleared and `FLAG_DEAD` set, and no handle outside the set can reach it;
/// `finalizers` says whether some member has a finalizer that has not run; `old` is the
/// generation a resurrected set goes back to. Panics of user code are kept in `panics`.
pub(crate) unsafe fn teardown<F: Flavor>(
    set: &[*const Links],
    finalizers: bool,
    old: usize,
    panics: &mut FirstPanic,
) -> usize {
    type C<F> = <F as Flavor>::Counts;
    if set.is_empty() {
        return 0;
    }
    fire_notices::<F>(set, panics);
    if !finalizers {
        // SAFETY: per our caller; the commit marked every member dead already.
        return unsafe { destroy::<F>(set, false, panics) };
    }

    // Finalizers see an intact set: take the commit's `FLAG_DEAD` off again.
    for &p in set {
        // SAFETY: members are pinned, so alive; no user code ran since the commit.
        unsafe { C::<F>::clear_flag(p, FLAG_DEAD) };
    }
    // 2. Finalizers, once each, on an intact set.
    let mut ran = false;
    for &p in set {
        // SAFETY: members are pinned, so alive, and not dead.
        unsafe {
            if let Some(fin) = (*p).vtable().finalize {
                if C::<F>::flags(p) & FLAG_FINALIZED == 0 {
                    C::<F>::set_flag(p, FLAG_FINALIZED);
                    ran = true;
                    // A panic leaves the member finalized (its flag is set) and intact; its
                    // handles and refcount deaths it caused are as consistent as after any
                    // finalizer, so the teardown goes on.
                    F::destroying(panics, |panics| panics.run(|| fin(p)));
                }
            }
        }
    }

    // 3. Resurrection check: which members are referenced from outside the set now (or
    // reachable from one that is)? They stay, in the older generation, with working handles;
    // the rest is still unreachable and freed (CPython's `handle_resurrected_objects`).
    // SAFETY: members are pinned, unlinked and not dead.
    let kept = if ran {
        unsafe { F::resurrected(set) }
    } else {
        None
    };
    if let Some(kept) = kept {
        let mut stay = Vec::new();
        let mut dead = Vec::new();
        for (&p, k) in set.iter().zip(kept) {
            if k {
                stay.push(p);
            } else {
                dead.push(p);
            }
        }
        for &p in &stay {
            // SAFETY: members are self-loops, alive (pinned).
            unsafe { F::relink(p, old) };
        }
        // SAFETY: the members not kept are unreachable from anywhere (see
        // `Flavor::resurrected`), and none of them has run its `Drop`.
        let freed = unsafe { destroy::<F>(&dead, true, panics) };
        F::destroying(panics, |_| {
            for &p in &stay {
                // SAFETY: each pin is released once; a member reaching zero is tracked and
                // alive, so it dies the ordinary way.
                unsafe {
                    if counts_of::<C<F>>(p).dec_strong() == 0 {
                        F::object_died(p);
                    }
                }
            }
        });
        return freed;
    }
    // SAFETY: per our caller, and no finalizer resurrected anything.
    unsafe { destroy::<F>(set, true, panics) }
}

/// Step 1's death notices (`gc::watch`): the set's weak handles were cleared by the commit.
fn fire_notices<F: Flavor>(set: &[*const Links], panics: &mut FirstPanic) {
    for &p in set {
        // SAFETY: members are pinned, so alive: their counts are where the header says.
        let object = unsafe { counts_of::<<F as Flavor>::Counts>(p) } as *const _ as usize;
        crate::gc::watch::fire_catching(F::CONCURRENT, object, panics);
    }
}

/// `DEBUG_SAVEALL` (`gc::debug`): the set's finalizers run (once each; its weak handles
/// were cleared by the commit), then, instead of being dropped, every member becomes a live
/// object again in generation `old`, its pin handed to the space's garbage list (`gc.garbage`).
/// Returns how many were saved.
///
/// # Safety
/// As [`teardown`].
pub(crate) unsafe fn save_all<F: Flavor>(
    set: &[*const Links],
    old: usize,
    panics: &mut FirstPanic,
) -> usize {
    type C<F> = <F as Flavor>::Counts;
    fire_notices::<F>(set, panics);
    for &p in set {
        // SAFETY: members are pinned, so alive; no user code ran since the commit.
        unsafe { C::<F>::clear_flag(p, FLAG_DEAD) };
    }
    for &p in set {
        // SAFETY: as in `teardown`: pinned, intact, not dead.
        unsafe {
            if let Some(fin) = (*p).vtable().finalize {
                if C::<F>::flags(p) & FLAG_FINALIZED == 0 {
                    C::<F>::set_flag(p, FLAG_FINALIZED);
                    F::destroying(panics, |panics| panics.run(|| fin(p)));
                }
            }
        }
    }
    for &p in set {
        // SAFETY: members are self-loops (unlinked by the commit), alive (pinned).
        unsafe { F::relink(p, old) };
    }
    // The pins pass to the garbage list, which releases them in `gc::clear_garbage`.
    F::with_state(|st| {
        let mut g = st.garbage.take();
        g.extend_from_slice(set);
        st.garbage.set(g);
    });
    set.len()
}

/// Steps 4 and 5 for `set`: mark every member dead (unless `mark` is false: the commit did),
/// drop every value, release the pins. Returns the number of objects freed. Panics of
/// `Drop`s are kept in `panics`; every member is dropped and unpinned all the same.
///
/// # Safety
/// As [`teardown`], and no handle outside `set` can reach a member (finalizers, if any ran,
/// did not resurrect it).
unsafe fn destroy<F: Flavor>(set: &[*const Links], mark: bool, panics: &mut FirstPanic) -> usize {
    type C<F> = <F as Flavor>::Counts;
    // 4. The set is dead.
    if mark {
        for &p in set {
            // SAFETY: pinned members are alive.
            unsafe { C::<F>::set_flag(p, FLAG_DEAD) };
        }
    }
    // 5. Drop each value, then release its pin at once (one walk over the set). Releasing
    // a pin early is sound: a member is only ever reached through handles, each counted in
    // its strong count, so if the pin was the last strong reference no handle to the member
    // is left anywhere (not in the values still to drop, not stashed by a `Drop`) and its
    // memory can go; otherwise the last handle's drop finds `FLAG_DEAD` and releases the
    // token then. The members still to be dropped keep their own pins meanwhile.
    F::destroying(panics, |panics| {
        for &p in set {
            // Each value is initialised, marked dead, and dropped exactly once here (a `drop`
            // that unwinds has dropped what it could: the value counts as dropped); its pin
            // keeps the header alive through the drop. The pin is ours to release; if it was
            // the last strong reference, the value (dropped) releases its token.
            // SAFETY: as just said.
            unsafe {
                panics.run(|| ((*p).vtable().drop_value)(p));
                if counts_of::<C<F>>(p).dec_strong() == 0 {
                    release_token::<C<F>>(p);
                }
            }
        }
    });
    set.len()
}
