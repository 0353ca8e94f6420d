//! The shared object space's internals, for the loom models in `loom-tests/` (`gc_*.rs`).
//!
//! Only built under `--cfg loom`. There the space of `pyheap::Gc` is a `loom::lazy_static!`
//! (a fresh one per loom execution, dropped at its end), its thread-locals are loom's (per
//! loom thread), and no collector thread exists: a model runs the requested automatic
//! collection itself with [`service_pending`], on whichever loom thread it likes.
//!
//! A model must leave the space empty at the end of each execution ([`tracked_count`] `== 0`
//! after its last collection): objects left in it would never be freed (the space is dropped
//! with the execution, not its objects), and their loom atomics belong to that execution.

use super::collect;
use super::generations::NUM_GENERATIONS;
use super::shared::space::{space, Shared};
pub use super::stats::GenerationStats;

/// Collect generation `gen` (and the younger ones) of the shared space only, on the calling
/// loom thread; returns the number of objects freed (0 if called from a `Drop` or finalizer
/// of a collection running on this thread).
pub fn collect(gen: usize) -> usize {
    let mut panics = crate::gc::panics::FirstPanic::new();
    let freed = space().finish_pending(&mut panics)
        + collect::collect_generation::<Shared>(gen, &mut panics);
    panics.resume();
    freed
}

/// One iteration of the collector thread's loop: tear down the garbage sets automatic scans
/// (run by the allocating threads) queued. Returns the number of objects freed.
pub fn service_pending() -> usize {
    let mut panics = crate::gc::panics::FirstPanic::new();
    let freed = space().service_pending(&mut panics);
    panics.resume();
    freed
}

/// Whether an automatic collection is requested and not yet started.
pub fn pending() -> bool {
    space().pending()
}

/// How many times `pending` went from false to true in this execution (each would wake the
/// collector thread once).
pub fn requests() -> u64 {
    space().requests()
}

/// Set the shared space's thresholds (as `pyheap::gc::set_threshold`).
pub fn set_threshold(t0: usize, t1: usize, t2: usize) {
    space().set_thresholds(t0, t1, t2)
}

/// The shared space's statistics (as `pyheap::gc::stats`).
pub fn stats() -> [GenerationStats; NUM_GENERATIONS] {
    space().with_state(|st| st.stats())
}

/// Collections of the shared space run so far in this execution (all generations).
pub fn collections() -> usize {
    stats().iter().map(|s| s.collections).sum()
}

/// Number of objects linked into the shared space's lists (the three generations and the
/// permanent one). Objects under `get_mut` and garbage being torn down are in no list.
pub fn tracked_count() -> usize {
    space().tracked_count()
}

/// The shared space's counts (as `pyheap::gc::count`).
pub fn counts() -> (usize, usize, usize) {
    space().with_state(|st| st.counts())
}

/// The calling thread hands its shard back, as its exit does outside loom (where loom
/// threads keep theirs: see `ShardSlot`'s `Drop`); the next thread that needs a shard
/// adopts it, with the objects in it. An allocation on this thread afterwards takes a shard
/// again.
pub fn release_my_shard() {
    super::shared::space::release_my_shard()
}

/// The calling thread's shard id (taking a free one, or a new one, if it has none yet).
pub fn my_shard() -> u32 {
    super::shared::space::my_shard_id()
}

/// The shard `h`'s object was created in (and whose lock guards its list links for life).
pub fn shard_of<T: crate::GcValue + ?Sized>(h: &crate::Gc<T>) -> u32 {
    crate::Gc::shard_id(h)
}
