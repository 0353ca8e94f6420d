//! What a flavor plugs into the collector ([`Flavor`]): its counts, its locking, its object
//! space, its callbacks; and the token that marks a thread as collecting. The passes
//! (`collect.rs`) and the teardown (`finalize.rs`) are written once, generic over it; the
//! flavors implement it in `local/space.rs` and `shared/space.rs`.

use super::debug::{CollectionInfo, Phase};
use super::generations::GenState;
use super::header::{Counts, Links};
use super::panics::FirstPanic;
use super::trace::Tracer;

/// What a flavor plugs into the collector: its counts, its locking, its object space.
///
/// # Safety
/// `with_scan_state` must give exclusive use of a `GenState` whose lists hold every tracked
/// object of the generations asked for (no other thread or frame may relink them
/// meanwhile), and the other functions must keep the contracts stated on them.
pub(crate) unsafe trait Flavor: 'static {
    /// How objects of this flavor count their handles.
    type Counts: Counts;
    /// Whether mutators may run during a scan (other threads cloning, dropping, upgrading
    /// and moving handles): then the unreachable set is validated with [`Counts::try_condemn`]
    /// and interior locks met by `Trace` are held until the end of the scan.
    const CONCURRENT: bool;
    /// Run `f` with the flavor's generation state: thresholds, counts, statistics (the
    /// thread's space, or the shared space under its lock). Never called with user code
    /// inside `f`.
    fn with_state<R>(f: impl FnOnce(&GenState) -> R) -> R;
    /// Run `f` (a scan of generation `gen`) with exclusive use of a `GenState` whose lists
    /// hold every tracked object of generations `0..=gen`, and of the list survivors are
    /// promoted to. For the single-thread flavor this is [`Flavor::with_state`]; the shared
    /// flavor gathers its per-thread lists into it first and gives the survivors back after.
    fn with_scan_state<R>(gen: usize, f: impl FnOnce(&GenState) -> R) -> R;
    /// Link a resurrected object (in no list) back into generation `gen`.
    ///
    /// # Safety
    /// `links` is a live tracked object of this flavor in no list (a self-loop).
    unsafe fn relink(links: *const Links, gen: usize);
    /// Enter a collection on this thread: `None` if one is already running on it (a `Drop`
    /// or finalizer calling `collect()`), else a token that ends it when dropped.
    fn enter_collection() -> Option<CollectionToken<Self>>
    where
        Self: Sized;
    /// Leave the collection entered by [`Flavor::enter_collection`].
    fn leave_collection();
    /// Run `f` as the outermost destroyer of this thread: refcount deaths inside it are
    /// queued and destroyed iteratively after it returns, their panics kept in `panics`
    /// (which `f` gets too).
    fn destroying<R>(panics: &mut FirstPanic, f: impl FnOnce(&mut FirstPanic) -> R) -> R;
    /// A tracked object's strong count reached zero by refcounting: untrack and destroy it.
    ///
    /// # Safety
    /// `links` is a live tracked object of this flavor whose strong count just reached zero
    /// and whose value is not dead.
    unsafe fn object_died(links: *const Links);
    /// After finalizers ran on `set`: which members are now referenced from outside the set
    /// (beyond the collector's pins), or reachable from one that is? `None`: none, the whole
    /// set is garbage. `Some(kept)`: one flag per member; the flagged members are resurrected
    /// and stay, the others are still unreachable (CPython's `handle_resurrected_objects`).
    /// A flavor may flag more than that (never less).
    ///
    /// # Safety
    /// Every member is pinned, unlinked and not dead.
    unsafe fn resurrected(set: &[*const Links]) -> Option<Vec<bool>>;

    /// Introspection (`gc::introspect`): run `f` on every tracked object of generation `gen`
    /// (of all three and the permanent one if `None`), holding what keeps the lists
    /// still and every scan out (the thread-safe flavor: the space lock and every shard lock,
    /// as a scan; the single-thread flavor: nothing, its collections run on this thread and
    /// `f` runs no user code). `f` gets `Some(object)` for each object, then `None`, still
    /// under the locks: a tracer of this flavor used over the walk (keeping its interior
    /// locks' guards) must be dropped then at the latest.
    fn for_each_tracked(gen: Option<usize>, f: &mut dyn FnMut(Option<*const Links>));
    /// Run `f` with the locks [`Flavor::for_each_tracked`] holds, walking nothing.
    fn with_walk_locks(f: &mut dyn FnMut());
    /// Inside [`Flavor::for_each_tracked`] or [`Flavor::with_walk_locks`]: take one strong
    /// reference to `p` unless it is dying (strong zero), dead, or its weak handles were
    /// cleared; true if taken. The reference is released by [`Flavor::release_erased`].
    ///
    /// # Safety
    /// `p` is a live tracked object of this flavor, met in the walk (or reached through a
    /// traced value's handle in it).
    unsafe fn acquire_in_walk(p: *const Links) -> bool;
    /// Take one more strong reference to `p` with the flavor's state lock held (`with_state`:
    /// the thread-safe flavor's space lock), for `gc::garbage()`.
    ///
    /// # Safety
    /// `p` is a live tracked object of this flavor on which a strong reference is held.
    unsafe fn clone_erased_locked(p: *const Links);
    /// Call the collection callbacks registered for this space (`gc::debug`) with `phase` and
    /// `info`, with no pyheap lock held; their panics are kept in `panics`.
    fn notify(phase: Phase, info: CollectionInfo, panics: &mut FirstPanic);
    /// Whether any collection callback is registered.
    fn has_callbacks() -> bool;
    /// Take one more strong reference to `p` (a type-erased handle's clone).
    ///
    /// # Safety
    /// The caller holds a strong reference to the live tracked object `p`.
    unsafe fn clone_erased(p: *const Links);
    /// Release one strong reference to `p` (a type-erased handle's drop), as the flavor's
    /// `Gc::drop` does for a tracked value.
    ///
    /// # Safety
    /// The caller owns a strong reference to the tracked object `p`, given up here.
    unsafe fn release_erased(p: *const Links);

    /// The single-thread flavor's bookkeeping of old objects (`gc::local::old_touched`),
    /// called by the serial scan; the thread-safe flavor has none (the defaults do nothing).
    ///
    /// Before the passes of a collection of generation 1: take the old objects that lost a
    /// reference, and the old objects they reach, into `young`.
    ///
    /// # Safety
    /// `young` is the intact list being collected, exclusively ours; no pass has started and
    /// `st.in_pass` is set.
    unsafe fn gather_old(_st: &GenState, _young: *const Links, _tracer: &mut Tracer) {}
    /// A survivor goes into the oldest generation.
    ///
    /// # Safety
    /// `p` is a live tracked object of this flavor, about to be linked into the oldest
    /// generation.
    unsafe fn enter_oldest(_p: *const Links) {}
    /// A garbage object leaves every generation.
    ///
    /// # Safety
    /// `p` is a live tracked object of this flavor being committed as garbage.
    unsafe fn leave_oldest(_p: *const Links) {}
}

/// Marks this thread as collecting (for re-entrant `collect()` calls) until dropped, even if
/// something unwinds.
pub(crate) struct CollectionToken<F: Flavor> {
    _flavor: core::marker::PhantomData<F>,
}

impl<F: Flavor> CollectionToken<F> {
    pub(crate) fn new() -> Self {
        Self {
            _flavor: core::marker::PhantomData,
        }
    }
}

impl<F: Flavor> Drop for CollectionToken<F> {
    fn drop(&mut self) {
        F::leave_collection();
    }
}
