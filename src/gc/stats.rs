//! [`GenerationStats`]: what `gc.get_stats()` reports per generation.

/// Statistics of one generation since the thread started, as Python's `gc.get_stats()`.
///
/// ```
/// let before = pyheap::gc::stats()[2].collections;
/// pyheap::collect();
/// let after = pyheap::gc::stats();
/// assert_eq!(after[2].collections, before + 1);
/// println!("{:?}", after[2]); // GenerationStats { collections: 1, collected: 0, uncollectable: 0 }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GenerationStats {
    /// Number of times this generation was collected.
    pub collections: usize,
    /// Number of objects found unreachable and freed by those collections.
    pub collected: usize,
    /// Number of unreachable objects that could not be freed. Always 0 in pyheap, by design.
    ///
    /// CPython counts here the objects it moves to `gc.garbage` instead of freeing them:
    /// before Python 3.4, cycles with `__del__` methods (it could not choose an order to run
    /// them in); since PEP 442, only objects of C types with a legacy `tp_del` finalizer, and
    /// everything under `gc.set_debug(gc.DEBUG_SAVEALL)`. pyheap has neither: finalizers
    /// ([`Finalize`](crate::Finalize)) follow PEP 442 (all run, then the set is re-checked and
    /// either freed or resurrected whole), `Drop` cannot resurrect, and there is no save-all
    /// mode. A garbage set resurrected by its finalizers is not garbage any more and is
    /// counted neither here nor in `collected`. (A `Drop` or finalizer that panics during
    /// teardown does not stop it: the set is freed all the same and counted in `collected`,
    /// then the panic is resumed; see `tests/gc_panics.rs`.) The field is kept so the
    /// statistics read like `gc.get_stats()`.
    pub uncollectable: usize,
}
