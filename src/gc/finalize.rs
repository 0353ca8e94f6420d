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
//! 3. `check_garbage`: if a finalizer ran, the set is checked again with the collector's own
//!    passes: any reference from outside the set (beyond the pins) means a finalizer stored a
//!    handle somewhere: the set is resurrected. It is put back into the older generation
//!    with working handles; its weak handles stay cleared and its finalizers will not run
//!    again. Nothing is freed.
//! 4. `delete_garbage`: otherwise every member gets `FLAG_DEAD` (from now on `try_deref` gives
//!    `None`, `Deref` panics), then every value is dropped. Handles inside the values drop
//!    normally; deaths they cause outside the set are queued and destroyed iteratively.
//! 5. The pins are released; a member whose strong count is then zero releases its value's
//!    weak token, and its memory goes when the last `Weak` does. A handle to a member that
//!    a `Drop` stashed away keeps the (dead) header alive until it is dropped.

use super::header::{counts_of, Counts, Links, FLAG_DEAD, FLAG_FINALIZED, FLAG_WEAKS_CLEARED};
use super::list;
use super::space::{release_token, Space};

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

/// Tear down the unreachable set found by a collection. Returns the number of objects freed.
///
/// # Safety
/// `unreachable` is an intact list of live tracked objects of `space`'s thread, with counts
/// of type `C`, that no handle outside the list can reach; `old` is an intact generation list.
pub(crate) unsafe fn handle_garbage<C: Counts>(
    space: &Space,
    unreachable: *const Links,
    old: *const Links,
) -> usize {
    // 0. + 1. Detach, pin, clear weak handles.
    // No user code runs before step 2, and steps 2-3 only matter if some member has a
    // finalizer still to run: if none has, the set is dead already, so `FLAG_DEAD` is set in
    // this same walk (one pass over the set less); otherwise it is taken off again below.
    let mut set: Vec<*const Links> = Vec::new();
    let mut finalizers = false;
    // SAFETY: per the caller the list is intact and its nodes live.
    unsafe {
        let mut p = (*unreachable).next.get();
        while p != unreachable {
            let next = (*p).next.get();
            list::unlink(p);
            counts_of::<C>(p).inc_strong();
            let l = &*p;
            finalizers |= l.vtable().finalize.is_some() && l.flags() & FLAG_FINALIZED == 0;
            l.set_flag(FLAG_WEAKS_CLEARED | FLAG_DEAD);
            set.push(p);
            p = next;
        }
    }
    if set.is_empty() {
        return 0;
    }
    if finalizers {
        for &p in &set {
            // SAFETY: members are pinned, so alive; no user code has run since `FLAG_DEAD`
            // was set above, so nobody has seen it.
            unsafe { (*p).clear_flag(FLAG_DEAD) };
        }
    }

    // 2. Finalizers, once each, on an intact set.
    let mut ran = false;
    if finalizers {
        for &p in &set {
            // SAFETY: members are pinned, so alive, and not yet dead.
            unsafe {
                let l = &*p;
                if let Some(fin) = l.vtable().finalize {
                    if l.flags() & FLAG_FINALIZED == 0 {
                        l.set_flag(FLAG_FINALIZED);
                        ran = true;
                        fin(p);
                    }
                }
            }
        }
    }

    // 3. Resurrection check.
    // SAFETY: members are pinned, unlinked, and no user code runs during the check.
    if ran && unsafe { super::collect::any_external_refs::<C>(space, &set) } {
        for &p in &set {
            // SAFETY: members are self-loops; `old` is intact (user code keeps lists intact).
            unsafe { list::push_back(old, p) };
        }
        space.destroying::<C, _>(|| {
            for &p in &set {
                // SAFETY: each pin is released once; a member reaching zero is tracked and
                // alive, so it dies the ordinary way.
                unsafe {
                    if counts_of::<C>(p).dec_strong() == 0 {
                        space.object_died::<C>(p);
                    }
                }
            }
        });
        return 0;
    }

    // 4. The set is dead (`FLAG_DEAD` is still set from step 1 if no finalizer was due).
    if finalizers {
        for &p in &set {
            // SAFETY: pinned members are alive.
            unsafe { (*p).set_flag(FLAG_DEAD) };
        }
    }
    space.destroying::<C, _>(|| {
        for &p in &set {
            // SAFETY: each value is initialised, marked dead, and dropped exactly once here;
            // the pin keeps the header alive whatever the drops do.
            unsafe { ((*p).vtable().drop_value)(p) };
        }
    });
    // 5. Release the pins.
    for &p in &set {
        // SAFETY: the pin is ours; if it was the last strong reference the value (already
        // dropped) releases its token. Otherwise a handle stashed by a `Drop` releases it.
        unsafe {
            if counts_of::<C>(p).dec_strong() == 0 {
                release_token::<C>(p);
            }
        }
    }
    set.len()
}
