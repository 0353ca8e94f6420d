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
    /// Number of unreachable objects that could not be freed. pyheap has no uncollectable
    /// garbage (it has no legacy finalizers and no `DEBUG_SAVEALL`), so this stays 0; a set
    /// resurrected by its finalizers is counted neither here nor in `collected`.
    pub uncollectable: usize,
}
