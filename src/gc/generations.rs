//! The generational state one object space keeps: three generation lists with their counts,
//! thresholds and statistics, the permanent (frozen) generation, and CPython's long-lived
//! counters. Both flavors hold one [`GenState`]: the single-thread flavor in its thread-local
//! `Space`, the thread-safe flavor behind its space lock. The collector (`gc::collect`) only
//! ever sees a `&GenState`, which is how one implementation serves both.
//!
//! Every field is a `Cell`: whoever holds the `&GenState` has exclusive use of it (the owning
//! thread, or the holder of the shared space's lock), and the lists' nodes are only relinked
//! by that holder (the invariant is stated on `gc::list`).

use core::cell::Cell;
use core::mem::ManuallyDrop;

use super::header::Links;
use super::list;
use super::stats::GenerationStats;

/// Number of generations, as in CPython.
pub(crate) const NUM_GENERATIONS: usize = 3;

/// One generation: its list, its count and threshold, its statistics.
pub(crate) struct Generation {
    pub(crate) head: Links,
    /// Generation 0: tracked allocations minus deaths since its last collection. Older ones:
    /// collections of the next younger generation since their last collection.
    pub(crate) count: Cell<usize>,
    pub(crate) threshold: Cell<usize>,
    pub(crate) stats: Cell<GenerationStats>,
}

impl Generation {
    const fn new(threshold: usize) -> Self {
        Self {
            head: Links::sentinel(),
            count: Cell::new(0),
            threshold: Cell::new(threshold),
            stats: Cell::new(GenerationStats {
                collections: 0,
                collected: 0,
                uncollectable: 0,
            }),
        }
    }
}

/// The generations of one object space. Its list heads are self-linked in place by
/// [`GenState::init`] before first use and never move afterwards.
pub(crate) struct GenState {
    pub(crate) gens: [Generation; NUM_GENERATIONS],
    /// `gc.freeze()`'s permanent generation: never scanned.
    pub(crate) permanent: Links,
    initialized: Cell<bool>,
    /// A collection pass is running (`prev` fields hold collection bits): nothing may be
    /// linked into a list. Only `Trace` impls run meanwhile.
    pub(crate) in_pass: Cell<bool>,
    /// CPython's `long_lived_total`: survivors of the last full collection.
    pub(crate) long_lived_total: Cell<usize>,
    /// CPython's `long_lived_pending`: objects promoted into the oldest generation since.
    pub(crate) long_lived_pending: Cell<usize>,
    /// Single-thread flavor: the oldest generation's objects that lost a reference since the
    /// last collection of generation 1 (`gc::local::old_touched`); part of the oldest generation.
    /// Always empty in the thread-safe flavor.
    pub(crate) touched: Links,
    /// How many objects entered `touched` since the last collection of generation 1 (the
    /// budget of the next one's gathering; objects that left it since are not subtracted).
    pub(crate) touched_count: Cell<usize>,
    /// `gc.set_debug` flags (`gc::debug`).
    pub(crate) debug: Cell<u32>,
    /// `gc.garbage` under `DEBUG_SAVEALL`: objects, each holding the pin its collection took
    /// (a strong reference this list owns), alive again in the oldest generation
    /// (`gc::debug`). `ManuallyDrop`: no drop glue (the single-thread space's constraint);
    /// emptied by `gc::clear_garbage` and at thread exit.
    pub(crate) garbage: Cell<ManuallyDrop<Vec<*const Links>>>,
}

impl GenState {
    /// CPython's defaults: thresholds (700, 10, 10), empty lists.
    pub(crate) const fn new() -> Self {
        Self {
            gens: [
                Generation::new(700),
                Generation::new(10),
                Generation::new(10),
            ],
            permanent: Links::sentinel(),
            initialized: Cell::new(false),
            in_pass: Cell::new(false),
            long_lived_total: Cell::new(0),
            long_lived_pending: Cell::new(0),
            touched: Links::sentinel(),
            touched_count: Cell::new(0),
            debug: Cell::new(0),
            garbage: Cell::new(ManuallyDrop::new(Vec::new())),
        }
    }

    /// Whether [`GenState::init`] ran.
    #[inline]
    pub(crate) fn is_initialized(&self) -> bool {
        self.initialized.get()
    }

    /// Self-link the sentinels on first use (their address is only known in place).
    ///
    /// # Safety
    /// `self` does not move after this call for as long as the lists are in use.
    #[inline]
    pub(crate) unsafe fn init(&self) {
        if !self.initialized.get() {
            self.initialized.set(true);
            for g in &self.gens {
                // SAFETY: per the caller the heads stay where they are.
                unsafe { list::init(&g.head) };
            }
            // SAFETY: as above.
            unsafe {
                list::init(&self.permanent);
                list::init(&self.touched);
            }
        }
    }

    #[inline]
    pub(crate) fn gen_head(&self, i: usize) -> *const Links {
        &self.gens[i].head
    }

    /// The thresholds, as `gc.get_threshold()`.
    pub(crate) fn thresholds(&self) -> (usize, usize, usize) {
        let t = |i: usize| self.gens[i].threshold.get();
        (t(0), t(1), t(2))
    }

    /// Set the thresholds (`gc.set_threshold`).
    pub(crate) fn set_thresholds(&self, t0: usize, t1: usize, t2: usize) {
        self.gens[0].threshold.set(t0);
        self.gens[1].threshold.set(t1);
        self.gens[2].threshold.set(t2);
    }

    /// The counts, as `gc.get_count()`.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let c = |i: usize| self.gens[i].count.get();
        (c(0), c(1), c(2))
    }

    /// The statistics, as `gc.get_stats()`.
    pub(crate) fn stats(&self) -> [GenerationStats; NUM_GENERATIONS] {
        [
            self.gens[0].stats.get(),
            self.gens[1].stats.get(),
            self.gens[2].stats.get(),
        ]
    }

    /// Which generation a collection should run now (CPython's `collect_generations` rule:
    /// the oldest over its threshold, the oldest only under the 25% long-lived rule).
    pub(crate) fn generation_due(&self) -> Option<usize> {
        for i in (0..NUM_GENERATIONS).rev() {
            let g = &self.gens[i];
            if g.count.get() > g.threshold.get() {
                if i == NUM_GENERATIONS - 1
                    && self.long_lived_pending.get() < self.long_lived_total.get() / 4
                {
                    continue;
                }
                return Some(i);
            }
        }
        None
    }

    /// `gc.freeze()`: every tracked object into the permanent generation.
    ///
    /// # Safety
    /// Initialised; lists intact (no pass running).
    pub(crate) unsafe fn freeze(&self) {
        for i in 0..NUM_GENERATIONS {
            // SAFETY: per the caller the lists are intact.
            unsafe { list::merge(self.gen_head(i), &self.permanent) };
        }
        self.gens[0].count.set(0);
    }

    /// `gc.unfreeze()`: the permanent generation back into the oldest one.
    ///
    /// # Safety
    /// As [`GenState::freeze`].
    pub(crate) unsafe fn unfreeze(&self) {
        // SAFETY: per the caller the lists are intact.
        unsafe { list::merge(&self.permanent, self.gen_head(NUM_GENERATIONS - 1)) }
    }

    /// `gc.get_freeze_count()`.
    ///
    /// # Safety
    /// As [`GenState::freeze`].
    pub(crate) unsafe fn freeze_count(&self) -> usize {
        // SAFETY: per the caller the list is intact.
        unsafe { list::len(&self.permanent) }
    }

    /// Record one collection of generation `gen` (its scan is done).
    pub(crate) fn record_collection(&self, gen: usize) {
        let cell = &self.gens[gen].stats;
        let mut st = cell.get();
        st.collections += 1;
        cell.set(st);
    }

    /// Record `freed` objects freed by the teardown of a collection of generation `gen`.
    pub(crate) fn record_collected(&self, gen: usize, freed: usize) {
        let cell = &self.gens[gen].stats;
        let mut st = cell.get();
        st.collected += freed;
        cell.set(st);
    }
}
