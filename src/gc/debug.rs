//! Python's `gc.set_debug` flags and `gc.callbacks`, for both flavors: what a collection
//! reports about itself (`DEBUG_STATS`, `DEBUG_COLLECTABLE`), keeps instead of freeing
//! (`DEBUG_SAVEALL`: `gc::garbage()`), and the functions called before and after it.
//!
//! The flags live in the space's `GenState` (`debug`), read by the scan (under the space's
//! lock) and by the teardown. The saved garbage is a list of objects, each holding the pin
//! the collection took on it (`GenState::garbage`): the objects are alive again, linked in
//! the oldest generation, and held by that list until `gc::clear_garbage()`.

/// Print statistics during collection (`gc.DEBUG_STATS`): a line when a collection starts,
/// how many objects it examines, and a line when it is done.
pub const DEBUG_STATS: u32 = 1;
/// Print the unreachable objects a collection found (`gc.DEBUG_COLLECTABLE`):
/// `gc: collectable <type @ address>`.
pub const DEBUG_COLLECTABLE: u32 = 2;
/// Print the uncollectable objects found (`gc.DEBUG_UNCOLLECTABLE`). pyheap finds none: every
/// unreachable set is freed or, through its finalizers, resurrected (see
/// [`GenerationStats::uncollectable`](crate::gc::GenerationStats::uncollectable)); the flag
/// is accepted for Python's sake.
pub const DEBUG_UNCOLLECTABLE: u32 = 4;
/// Keep every unreachable object in the garbage list instead of freeing it
/// (`gc.DEBUG_SAVEALL`): the objects' weak handles are cleared and their finalizers run as
/// usual, then the objects stay, alive and usable, until the list is cleared.
pub const DEBUG_SAVEALL: u32 = 32;
/// `DEBUG_COLLECTABLE | DEBUG_UNCOLLECTABLE | DEBUG_SAVEALL` (`gc.DEBUG_LEAK`): what a leak hunt
/// wants to see.
pub const DEBUG_LEAK: u32 = DEBUG_COLLECTABLE | DEBUG_UNCOLLECTABLE | DEBUG_SAVEALL;

/// The flags a space's collections understand.
pub(crate) const KNOWN: u32 = DEBUG_STATS | DEBUG_COLLECTABLE | DEBUG_UNCOLLECTABLE | DEBUG_SAVEALL;

/// When a collection callback is called (Python's `phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the collection (`"start"`).
    Start,
    /// After it, teardown included (`"stop"`).
    Stop,
}

/// What a collection callback is told (Python's `info` dict).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CollectionInfo {
    /// The oldest generation collected.
    pub generation: usize,
    /// Objects freed (at [`Phase::Stop`]; 0 at `Start`). Under `DEBUG_SAVEALL`, the objects
    /// saved in the garbage list instead.
    pub collected: usize,
    /// Always 0 (see [`DEBUG_UNCOLLECTABLE`]).
    pub uncollectable: usize,
}

/// Names a registered callback, to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(pub(crate) u64);

/// A `gc: collectable` line for each object of `set` (under `DEBUG_COLLECTABLE`).
///
/// # Safety
/// Every member of `set` is a live tracked object.
pub(crate) unsafe fn print_collectable(set: &[*const super::header::Links]) {
    for &p in set {
        // SAFETY: per the caller.
        let name = unsafe { ((*p).vtable().type_info)().name };
        eprintln!("gc: collectable <{name} @ {p:p}>");
    }
}
