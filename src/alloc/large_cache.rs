//! A thread's last freed large blocks (`arena/large_blocks.rs`), kept for its next large
//! requests of the same shapes.
//!
//! A program that allocates and frees a buffer of a few hundred KiB in a loop (a request
//! body, a scratch `Vec`) would otherwise take the arena lock twice per round and walk
//! arena and pool headers: about 3,500 instructions and 0.5-0.9 µs per round, against glibc's
//! 40-200 ns for the same loop (BENCHMARKS.md "Session 27"). With the block kept, the next
//! request of its shape takes it back without a lock. A thread keeps up to [`LARGE_SLOTS`]
//! blocks (at most [`LARGE_CACHE_BYTES`] in all), so that a program whose requests cycle
//! through a few sizes (a server reading bodies of a few typical lengths: the `large_lifo`
//! workload) finds each one kept; a block freed beyond those bounds pushes the longest kept
//! one back to the arenas.
//!
//! A thread keeps only a block it allocated itself (the heap is recorded in the block's first
//! pool header, `ArenaManager::set_large_owner`): a block handed to another thread and freed
//! there goes back to the arenas, where the next block of the thread that makes them can take
//! its place (the `rayon` workload makes its tables on one worker and frees them on another;
//! kept by the freeing threads, they peaked at 13.8-15.0 MiB, against 9.4-9.7 not kept).
//!
//! The blocks stay the thread's only while the thread does not need their memory for anything
//! else: they go back to the arenas (`ArenaManager::free_kept_block`) when the thread's heap
//! is about to grow by a pool (`Heap::alloc_slow`: its pools may then come from the blocks',
//! which is what a `HashMap` that outgrew its table needs), when it exits, and at
//! [`purge`](super::purge); the oldest go back when a block freed needs room. A request of a
//! shape none of them has leaves them kept: the arenas serve it. Blocks above
//! [`LARGE_CACHE_MAX`] are not kept: at most [`LARGE_CACHE_BYTES`] per thread is out of the
//! other threads' reach. `stats()` reports the bytes kept (`large_cached_bytes`).
//!
//! **A pool taken again is not growth.** The free of a kept block, and a large request the
//! kept blocks miss, give the heap's empty current pools back to the arenas
//! (`Heap::release_empty_pools`: otherwise they keep arenas from being empty for the next large
//! blocks). A request loop then takes a pool of the same class again for its next small
//! string: if that gave the kept blocks back, every request would miss them and go to the
//! arenas under their lock (450 ns a request against System's 53-78: BENCHMARKS.md "Session
//! 28"). So the classes whose pools went back that way are remembered (`idle_classes`, one bit
//! per class), and the next pool of each of those classes leaves the kept blocks kept, once;
//! any other pool the heap takes is growth and gives them back. A program that frees a
//! structure and builds the next (a `HashMap` dropped and filled again) retakes at most one
//! pool per class that way before its first new pool gives the blocks back. And the free of a
//! block the cache itself served (`note_served`) gives no pools back at all: a loop that
//! reuses its blocks would otherwise give its strings' pools back and take them again, under
//! the arena lock, every round (the `request_loop` workload: 370-425 ns a request against
//! 340-353 without; a `HashMap`'s tables, which come from the arenas, still give them back).
//!
//! **A thread whose kept blocks go back unused stops keeping for a while.** A program whose
//! large requests rarely repeat a shape (the `large_churn` workload: random sizes of 256 KiB
//! to 4 MiB, some 300 shapes) would keep every block it frees only to give it back a few frees
//! later, unused, to make room: each free then checks the block twice and takes the arena
//! lock once more. After [`UNUSED_LIMIT`] blocks in a row went back unused that way, the
//! thread's next [`SKIP_FREES`] frees go to the arenas at once; then it keeps again, and any
//! request the kept blocks serve starts the count over. (`large_churn`: 138-141 µs without
//! keeping against 145-147 keeping, BENCHMARKS.md "Session 32"; a loop over a few shapes
//! never gives a kept block back unused and is not affected.)
//!
//! The price is memory: a thread may keep up to 8 MiB its next requests may never ask for
//! again (the `large_lifo` workload peaks at 8.1 MiB keeping four blocks, 6.7 keeping one;
//! System 5.8, rpmalloc 8.6, mimalloc 11.1), until it grows by a pool, exits or calls
//! `purge()`; and up to one pool per size class taken elsewhere while they are kept.

use crate::sync::unmodelled::{AtomicUsize, Ordering};
use core::cell::Cell;
use core::ptr;

/// The largest block a thread keeps.
#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
pub(crate) const LARGE_CACHE_MAX: usize = 4 << 20;
/// The most bytes a thread keeps, over all its kept blocks.
#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
pub(crate) const LARGE_CACHE_BYTES: usize = 8 << 20;
/// The most blocks a thread keeps.
pub(crate) const LARGE_SLOTS: usize = 4;
/// Kept blocks given back unused in a row (to make room) before the thread stops keeping.
pub(crate) const UNUSED_LIMIT: u32 = 8;
/// Frees that go to the arenas at once when the thread stopped keeping.
pub(crate) const SKIP_FREES: u32 = 64;

// One bit per class in `LargeCache::idle_classes`.
const _: () = assert!(crate::alloc::size_class::NUM_SIZE_CLASSES <= 64);

/// # Invariants
/// `blocks[..n]` are distinct large blocks this heap allocated and the program freed, the
/// most recently kept first, of `sizes[i]` bytes each (its size as last allocated or
/// resized), which no one else refers to: the holder of the heap owns them. The rest of
/// `blocks` is null. `n <= LARGE_SLOTS`; `bytes` is the sum of `sizes[..n]`, at most
/// [`LARGE_CACHE_BYTES`]. Only the heap's holder reads or writes `blocks`, `sizes` and `n`;
/// `bytes` is also read by `stats()` from any thread (hence atomic). `idle_classes`, `served`,
/// `unused_in_a_row` and `skip_frees` are hints for when kept blocks and empty pools go back
/// and whether a free keeps its block, not safety invariants (the holder's alone too).
pub(crate) struct LargeCache {
    blocks: [Cell<*mut u8>; LARGE_SLOTS],
    sizes: [Cell<usize>; LARGE_SLOTS],
    n: Cell<usize>,
    bytes: AtomicUsize,
    /// The blocks most recently handed back out of the cache (`note_served`), oldest
    /// overwritten first: their free gives no pools back (see the module doc). A hint: a
    /// stale entry costs one give-back.
    served: [Cell<*mut u8>; LARGE_SLOTS],
    served_next: Cell<usize>,
    /// Bit `c`: the holder's heap gave back its empty current pool of class `c` at a large
    /// free or request (`Heap::release_empty_pools`), and has not taken a pool of that class
    /// since (kept while nothing is kept: a loop's first request after its kept blocks went
    /// back makes and frees a block again, and its pools must find their bits).
    idle_classes: Cell<u64>,
    /// Kept blocks given back unused in a row to make room for others (`note_evicted`).
    unused_in_a_row: Cell<u32>,
    /// Frees left that do not keep their block (`keeps_next`).
    skip_frees: Cell<u32>,
}

#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
impl LargeCache {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> LargeCache {
            LargeCache {
                blocks: [const { Cell::new(ptr::null_mut()) }; LARGE_SLOTS],
                sizes: [const { Cell::new(0) }; LARGE_SLOTS],
                n: Cell::new(0),
                bytes: AtomicUsize::new(0),
                idle_classes: Cell::new(0),
                served: [const { Cell::new(ptr::null_mut()) }; LARGE_SLOTS],
                served_next: Cell::new(0),
                unused_in_a_row: Cell::new(0),
                skip_frees: Cell::new(0),
            }
        }
    }

    /// How many blocks are kept. Holder only.
    pub(crate) fn len(&self) -> usize {
        self.n.get()
    }

    /// Kept block `i` (`i < len()`) and its size. Holder only.
    pub(crate) fn get(&self, i: usize) -> (*mut u8, usize) {
        debug_assert!(i < self.n.get());
        (self.blocks[i].get(), self.sizes[i].get())
    }

    /// Whether `block` is one of the blocks kept. Holder only.
    pub(crate) fn holds(&self, block: *mut u8) -> bool {
        self.blocks[..self.n.get()].iter().any(|b| b.get() == block)
    }

    /// Take kept block `i` (`i < len()`): the caller owns it now. Holder only.
    pub(crate) fn remove(&self, i: usize) -> (*mut u8, usize) {
        let n = self.n.get();
        debug_assert!(i < n);
        let kept = (self.blocks[i].get(), self.sizes[i].get());
        for j in i..n - 1 {
            self.blocks[j].set(self.blocks[j + 1].get());
            self.sizes[j].set(self.sizes[j + 1].get());
        }
        self.blocks[n - 1].set(ptr::null_mut());
        self.sizes[n - 1].set(0);
        self.n.set(n - 1);
        // One writer (the holder): no read-modify-write needed.
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.bytes.store(bytes - kept.1, Ordering::Relaxed);
        kept
    }

    /// Whether a block of `size` bytes fits beside those kept without exceeding
    /// [`LARGE_SLOTS`] or [`LARGE_CACHE_BYTES`]. Holder only.
    pub(crate) fn has_room_for(&self, size: usize) -> bool {
        self.n.get() < LARGE_SLOTS && self.bytes.load(Ordering::Relaxed) + size <= LARGE_CACHE_BYTES
    }

    /// Keep `block` of `size` bytes (at most [`LARGE_CACHE_MAX`]), which the caller gives up,
    /// as the most recent; there must be room (`has_room_for`). Holder only.
    pub(crate) fn put(&self, block: *mut u8, size: usize) {
        let n = self.n.get();
        debug_assert!(self.has_room_for(size) && size <= LARGE_CACHE_MAX);
        for j in (0..n).rev() {
            self.blocks[j + 1].set(self.blocks[j].get());
            self.sizes[j + 1].set(self.sizes[j].get());
        }
        self.blocks[0].set(block);
        self.sizes[0].set(size);
        self.n.set(n + 1);
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.bytes.store(bytes + size, Ordering::Relaxed);
    }

    /// Kept block `block` was just handed out again for a request. Holder only.
    pub(crate) fn note_served(&self, block: *mut u8) {
        self.unused_in_a_row.set(0);
        let i = self.served_next.get();
        self.served[i].set(block);
        self.served_next.set((i + 1) % LARGE_SLOTS);
    }

    /// The program frees `block`: whether it is one handed out of the cache (`note_served`),
    /// forgetting it if so. Holder only.
    pub(crate) fn was_served(&self, block: *mut u8) -> bool {
        match self.served.iter().find(|s| s.get() == block) {
            Some(slot) => {
                slot.set(ptr::null_mut());
                true
            }
            None => false,
        }
    }

    /// The holder's heap gave back its empty current pools of the classes in `released` (bit
    /// `c` for class `c`) at a large free or a large request: taking a pool of those classes
    /// again, once per class, is no growth and leaves the kept blocks kept. Holder only.
    pub(crate) fn note_idle_pools(&self, released: u64) {
        self.idle_classes.set(self.idle_classes.get() | released);
    }

    /// The holder's heap is about to take a pool of `class`: whether the kept blocks should go
    /// back first (see the module doc). Holder only.
    pub(crate) fn should_release(&self, class: usize) -> bool {
        let idle = self.idle_classes.get();
        let bit = 1u64 << class;
        self.idle_classes.set(idle & !bit);
        self.n.get() != 0 && idle & bit == 0
    }

    /// The oldest kept block went back unused to make room for a block freed now: after
    /// [`UNUSED_LIMIT`] in a row, the next [`SKIP_FREES`] frees keep nothing. Holder only.
    pub(crate) fn note_evicted(&self) {
        let n = self.unused_in_a_row.get() + 1;
        if n >= UNUSED_LIMIT {
            self.unused_in_a_row.set(0);
            self.skip_frees.set(SKIP_FREES);
        } else {
            self.unused_in_a_row.set(n);
        }
    }

    /// Whether the block the holder frees now may be kept: not while the thread stopped
    /// keeping (`note_evicted`), which this counts down. Holder only.
    pub(crate) fn keeps_next(&self) -> bool {
        let skip = self.skip_frees.get();
        if skip == 0 {
            return true;
        }
        self.skip_frees.set(skip - 1);
        false
    }

    /// The holder gives the heap up (its thread exits): the next thread to hold it keeps
    /// blocks from the start, whatever this one's requests were. Holder only.
    pub(crate) fn forget_misses(&self) {
        self.unused_in_a_row.set(0);
        self.skip_frees.set(0);
    }

    /// Bytes kept: for `stats()`, from any thread.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}
