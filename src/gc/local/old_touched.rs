//! Old objects that lost a reference (single-thread flavor): how a collection of generation 1
//! finds the garbage cycles of the oldest generation without waiting for a full collection.
//!
//! # Why
//!
//! Under CPython's policy an object that survives two young collections is promoted into the
//! oldest generation, which is only collected when generation 1 has been collected
//! `threshold2` times *and* the objects promoted since the last full collection exceed 25% of
//! those that survived it. With the default thresholds (700, 10, 10) that is at most one
//! collection in a hundred. A program whose cycles live a little while before they die (a
//! cache entry, a request's object graph, a node replaced in a long-lived structure) has them
//! promoted first, and then holds every one of them until the next full collection: tens of
//! thousands of garbage objects in a steady state, which is peak memory. (The `churn`
//! benchmark measured 12.6 MiB of peak RSS against rust-cc's 5.9 for exactly this reason.)
//!
//! # How
//!
//! A cycle of old objects becomes garbage when the last reference from outside it goes away,
//! and that is a `Gc::drop` that leaves one member's strong count above zero (the other
//! members still point to it). So:
//!
//! 1. **On the drop path** ([`lost_reference`]): an object in the oldest generation's own
//!    list carries [`STRONG_WATCH`], the top bit of its strong count word. When `Gc::drop`
//!    leaves such an object's count above zero, the object moves from the oldest
//!    generation's list to the *touched* list, and the bit is cleared. The test costs
//!    nothing on the drop path: the drop writes that word anyway, and one unsigned
//!    comparison of the new word tells both "no handle left" and "watched"
//!    (`LocalCounts::is_slow_drop`). The move is O(1), and happens the first time only, so
//!    an old object that is cloned and dropped in a loop costs nothing more after that.
//! 2. **In a collection of generation 1** ([`gather`]), whose survivors go into the oldest
//!    generation anyway: the touched list is appended to the objects being collected, and,
//!    breadth first, every watched object they point to (taken out of the oldest
//!    generation's list, no longer watched), up to a budget of
//!    `GATHER_PER_TOUCHED * touched + GATHER_MIN` objects. Then the scan runs as usual on the
//!    whole set, and every survivor goes into the oldest generation flagged [`FLAG_OLD`] and
//!    watched ([`enter_oldest`], from `collect::move_unreachable`).
//! 3. A full collection takes the touched list along with everything else; a collection of
//!    generation 0 leaves it alone.
//!
//! # Why it is sound
//!
//! Trial deletion is correct for *any* set of tracked objects: an object of the set that is
//! referenced from outside it keeps a positive count and is a root, so only what no
//! reference from outside the set can reach is freed. The generational collection already
//! relies on this for its young set (references from older objects count as from outside).
//! Adding old objects to the set, and cutting the breadth-first gathering anywhere, can
//! therefore only change *how much* garbage a collection finds, never free a live object. A
//! garbage structure bigger than the budget reaches stays for the full collection, as it
//! would in CPython.
//!
//! Two bits keep the lists consistent (the invariant is stated in `gc::header`): `FLAG_OLD`
//! (in the vtable word) is set exactly on the objects of the oldest generation (its list,
//! the touched list, or taken from them into a running scan), `STRONG_WATCH` (in the strong
//! count) exactly on those linked in the oldest generation's own list. The drop path and the
//! gathering move only watched objects, which are in that list. Everything that links an
//! object elsewhere sets or clears the bits to match: a young scan's survivors never carry
//! them, the commit of a garbage set clears them (so a finalizer or `Drop` dropping a
//! handle to a member never relinks it), `Gc::get_mut` clears them when it takes an object
//! out, resurrection relinks with the bits of the generation it relinks into, and
//! `gc.freeze()`/`gc.unfreeze()` walk what they move ([`freeze`], [`unfreeze`]).
//!
//! # Accounting
//!
//! Objects gathered from the oldest generation and found alive are not new promotions, so
//! CPython's `long_lived_pending` counts only the survivors that were not old already; the
//! rule for when the oldest generation is collected is unchanged. What a collection of
//! generation 1 frees from the touched list is counted in generation 1's statistics.

use crate::gc::collect::for_each;
use crate::gc::generations::{GenState, NUM_GENERATIONS};
#[cfg(doc)]
use crate::gc::header::STRONG_WATCH;
use crate::gc::header::{counts_of, Links, LocalCounts, FLAG_OLD};
use crate::gc::list;
use crate::gc::trace::{Mode, Tracer};

/// Old objects a generation-1 collection may gather, per object that entered the touched
/// list since the last one (the ring mates of a dead cluster, and what they point to).
pub(crate) const GATHER_PER_TOUCHED: usize = 4;
/// Old objects a generation-1 collection may always gather (a touched root of a large live
/// structure costs at most this much tracing per generation-1 collection).
pub(crate) const GATHER_MIN: usize = 1024;

/// The counts of a single-thread object.
///
/// # Safety
/// `links` is a live tracked object of the single-thread flavor.
#[inline(always)]
unsafe fn counts(links: *const Links) -> &'static LocalCounts {
    // SAFETY: per the caller; the reference is only used while the object is alive.
    unsafe { counts_of::<LocalCounts>(links) }
}

/// `links` is linked into the oldest generation's own list (or is about to be): old and
/// watched.
///
/// # Safety
/// `links` is a live tracked object of the single-thread flavor.
#[inline(always)]
pub(crate) unsafe fn enter_oldest(links: *const Links) {
    // SAFETY: per the caller.
    unsafe {
        (*links).set_flag(FLAG_OLD);
        counts(links).set_watch(true);
    }
}

/// `links` leaves the oldest generation altogether (garbage, `get_mut`, frozen, or linked
/// into a younger generation): neither old nor watched.
///
/// # Safety
/// `links` is a live tracked object of the single-thread flavor.
#[inline(always)]
pub(crate) unsafe fn leave_oldest(links: *const Links) {
    // SAFETY: per the caller.
    unsafe {
        (*links).clear_flag(FLAG_OLD);
        counts(links).set_watch(false);
    }
}

/// An old object lost a reference and still has some: move it to the touched list.
///
/// # Safety
/// `links` is a live tracked object of the thread whose generations are `st`, watched (so
/// it is linked in the oldest generation's list).
#[inline]
pub(crate) unsafe fn lost_reference(st: &GenState, links: *const Links) {
    // A `Trace` impl dropping a handle (its contract forbids it) must not relink anything
    // mid-pass: the object then simply stays where it is.
    if st.in_pass.get() {
        return;
    }
    // SAFETY: per the caller the object is in the oldest generation's list, and the lists
    // are intact (no pass is running); the touched list's head is initialised (the object
    // was linked by this space).
    unsafe {
        list::unlink(links);
        list::push_back(&st.touched, links);
        counts(links).set_watch(false);
    }
    st.touched_count.set(st.touched_count.get() + 1);
}

/// Start of a collection of generation 1: append the touched list to `young` (the list being
/// collected) and gather the untouched old objects it reaches, breadth first, up to the
/// budget.
///
/// # Safety
/// `young` is the intact list of the generation being collected, exclusively used, no pass
/// has started on it (every `prev` is a real pointer), and `st.in_pass` is set (only `Trace`
/// impls run until the scan ends).
pub(crate) unsafe fn gather(st: &GenState, young: *const Links, tracer: &mut Tracer) {
    let touched: *const Links = &st.touched;
    // SAFETY: per the caller; lists are intact.
    unsafe {
        if list::is_empty(touched) {
            st.touched_count.set(0);
            return;
        }
        let budget = st
            .touched_count
            .get()
            .saturating_mul(GATHER_PER_TOUCHED)
            .saturating_add(GATHER_MIN);
        st.touched_count.set(0);
        let first = (*touched).next.get();
        list::merge(touched, young);
        tracer.set_mode(Mode::Gather {
            young,
            visit: gather_edge,
        });
        tracer.gather_budget = budget;
        // The walk starts at the first touched object and follows `next` to the end of
        // `young`: gathered objects are appended behind the cursor, so they are traced in
        // turn (breadth first). It stops once the budget is spent.
        let mut p = first;
        while p != young && tracer.gather_budget != 0 {
            ((*p).vtable().trace)(p, tracer);
            p = (*p).next.get();
        }
    }
}

/// One edge met while gathering: a watched object (in the oldest generation's list) joins
/// the list being collected.
///
/// # Safety
/// `target` is a live tracked object of this thread (the handle reported keeps it alive); no
/// pass has started (every `prev` is a real pointer); `young` is the list being collected.
#[inline]
pub(crate) unsafe fn gather_edge(tracer: &mut Tracer, target: *const Links, young: *const Links) {
    if tracer.gather_budget == 0 {
        return;
    }
    // SAFETY: per the caller the header is alive; watched means it is in the oldest
    // generation's list, whose links are intact.
    unsafe {
        let c = counts(target);
        if c.watched() {
            list::unlink(target);
            list::push_back(young, target);
            c.set_watch(false);
            tracer.gather_budget -= 1;
        }
    }
}

/// `gc.freeze()` for the single-thread space: the touched list back into the oldest
/// generation, its objects no longer old nor watched (frozen objects are in no generation),
/// then everything into the permanent generation.
///
/// # Safety
/// `st` is initialised, its lists intact (no pass running).
pub(crate) unsafe fn freeze(st: &GenState) {
    let oldest = st.gen_head(NUM_GENERATIONS - 1);
    // SAFETY: per the caller.
    unsafe {
        list::merge(&st.touched, oldest);
        for_each(oldest, |p| leave_oldest(p));
        st.freeze();
    }
    st.touched_count.set(0);
}

/// `gc.unfreeze()` for the single-thread space: the permanent generation back into the
/// oldest one, old and watched.
///
/// # Safety
/// As [`freeze`].
pub(crate) unsafe fn unfreeze(st: &GenState) {
    // SAFETY: per the caller.
    unsafe {
        for_each(&st.permanent, |p| enter_oldest(p));
        st.unfreeze();
    }
}

/// Set or clear the bits of an object being linked into generation `gen` (resurrection).
///
/// # Safety
/// `links` is a live tracked object of the single-thread flavor.
pub(crate) unsafe fn flag_for_generation(links: *const Links, gen: usize) {
    // SAFETY: per the caller.
    unsafe {
        if gen == NUM_GENERATIONS - 1 {
            enter_oldest(links);
        } else {
            leave_oldest(links);
        }
    }
}
