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
//! **The free of a block the cache served takes no lock.** Any other large free checks the
//! block under the arena lock (`ArenaManager::check_block`: a free with another size, or of a
//! block already freed, aborts) and reads its owner; and every keep or serve moved the shared
//! live-block counts with a read-modify-write. Each of those locked instructions waits for the
//! program's page writes still in the store buffer: in the `request_loop` workload, whose
//! buffer is served from the cache every round, they were 80% of the large paths' samples and
//! 5% of the whole loop (232 ns a request, 220 without them; BENCHMARKS.md "Session 35"). So:
//!
//! * the heap records each block it serves, with its size and the [`ForeignFrees`] count at
//!   that moment (`note_served`). The free of a block whose record is found, of the same
//!   shape, with that count unchanged, is the free of a live block this heap handed out, and
//!   is kept without the check (see [`ForeignFrees`] for why);
//! * the live-block counts move by the heap's own counters (`live_blocks`, `live_bytes`:
//!   plain stores, one writer), which `stats()` adds to the shared ones.
//!
//! The price is memory: a thread may keep up to 8 MiB its next requests may never ask for
//! again (the `large_lifo` workload peaks at 8.1 MiB keeping four blocks, 6.7 keeping one;
//! System 5.8, rpmalloc 8.6, mimalloc 11.1), until it grows by a pool, exits or calls
//! `purge()`; and up to one pool per size class taken elsewhere while they are kept.

use crate::sync::unmodelled::AtomicUsize;
use crate::sync::StatCounter;
use crate::sync::{AtomicU64, Ordering};
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

/// How many times a large block ended its life (freed, or resized to another shape) on a
/// thread other than the holder of the heap that allocated it: the count a served block's
/// record (`LargeCache::note_served`) is stamped with. One per allocator state
/// (`ArenaManager::foreign_frees`: the process's, or a loom model's), on a line of its own.
///
/// # Invariant
///
/// *A record `(block, size, count)` in heap `h` with `count` equal to the current count
/// ([`now`](Self::now)) means that a large block of `shape(size)` at `block` is live, was
/// handed out by `h`'s cache, and has been neither freed nor resized to another shape
/// since.* Its free by `h`'s holder may then skip `check_block` and the owner test: the block
/// is `h`'s, of that shape. It holds because every end of a large block's life either clears
/// the record or moves the count:
///
/// * only the heap that allocated a block keeps it (its owner, recorded in the block's first
///   pool header and not written again while the block lives; `set_large_owner`), so only
///   that heap can have a record of it: a record is made when a kept block is served, and a
///   block is kept only after its owner was checked to be the heap, or with a record (by
///   induction);
/// * the owner's holder clears its record at every large free and at every resize to
///   another shape (`take_served`, in `fallback.rs`);
/// * any other thread, or a thread without a heap, that frees or resizes the block bumps the
///   count (`ArenaManager::note_block_ends`, through `note_life_ended`), after
///   `check_block` and before the block's places can be taken again, that is before the
///   arena lock that gives them back is released.
///
/// The orderings: the bump is a `Relaxed` read-modify-write, the holder's read a `Relaxed`
/// load. A free on another thread that the holder's later free must see happens before it:
/// through the program's own synchronization (the block was handed over and back), or
/// through the arena lock the place's next owner took it under. A `Relaxed` load that
/// happens after a store sees it or a later one (coherence), so the record is stale by then.
/// Frees that race (the same block freed on two threads at once) are a data race in the
/// program, which no check can order; the locked check has that limit too. The loom model
/// `loom-tests/tests/alloc_foreign_frees.rs` runs this count, the records and the arena lock
/// (large blocks themselves are not built under loom: a model place stands in for the
/// block's, given back under the lock after the bump as `give_back_block` does; sanity
/// mutations `l1`-`l4` in `loom-tests/sanity/`); real threads test the whole path in
/// `tests/alloc_large_blocks.rs`: the tests whose names start
/// `a_served_large_block_whose_life_ended_elsewhere`, `a_served_blocks_place_taken` and
/// `served_blocks_passed_between_threads`.
///
/// What rests on it: for a correct program, whose frees are of live blocks with their own
/// sizes, a record only decides whether the freed block is kept without the owner test, and
/// keeping a block the program gave up is safe whoever allocated it. The invariant is what
/// keeps the release-build misuse check (`check_block`) as strong as before for these frees:
/// a block freed twice, or resized and then freed with its old size, or freed with the size of
/// another shape, still aborts with the message.
///
/// A heap's own slow frees and its kept blocks going back do not move the count, so a
/// thread that frees its own blocks keeps its records valid; the count moves only with
/// blocks that cross threads, and then every heap's records go stale at once (their next
/// frees take the locked check), which costs a lock, never a wrong keep.
#[repr(align(128))]
pub(crate) struct ForeignFrees(AtomicU64);

impl ForeignFrees {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> ForeignFrees {
            ForeignFrees(AtomicU64::new(0))
        }
    }

    /// The current count: what a record made now is stamped with.
    #[inline(always)]
    #[cfg_attr(all(not(loom), not(target_os = "linux")), allow(dead_code))]
    pub(crate) fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// A large block ended its life on a thread other than its owner heap's holder (see the
    /// type's invariant for where this must be called).
    #[cfg_attr(all(not(loom), not(target_os = "linux")), allow(dead_code))]
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the record `served` (from `LargeCache::take_served`) vouches for the free of
    /// its block by the heap's holder: the block was served with a size `same_shape` accepts
    /// for the free's, and no large block ended its life on a foreign thread since.
    #[inline(always)]
    #[cfg_attr(all(not(loom), not(target_os = "linux")), allow(dead_code))]
    pub(crate) fn vouches(
        &self,
        served: Option<(usize, u64)>,
        same_shape: impl FnOnce(usize) -> bool,
    ) -> bool {
        served.is_some_and(|(was, count)| same_shape(was) && count == self.now())
    }
}

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
/// `served`, `served_sizes` and `served_counts` are the holder's records of blocks it served
/// ([`ForeignFrees`] states what a record whose count is current guarantees; a stale or
/// overwritten one only sends the free down the checked path). `live_blocks` and `live_bytes`
/// are written by the holder alone (`StatCounter::add`) and read by `stats()`.
pub(crate) struct LargeCache {
    blocks: [Cell<*mut u8>; LARGE_SLOTS],
    sizes: [Cell<usize>; LARGE_SLOTS],
    n: Cell<usize>,
    bytes: AtomicUsize,
    /// The blocks most recently handed back out of the cache (`note_served`), oldest
    /// overwritten first, with their sizes and the [`ForeignFrees`] count when served: their
    /// free takes no lock and gives no pools back (see the module doc). Null: no record.
    served: [Cell<*mut u8>; LARGE_SLOTS],
    served_sizes: [Cell<usize>; LARGE_SLOTS],
    served_counts: [Cell<u64>; LARGE_SLOTS],
    served_next: Cell<usize>,
    /// What this heap added to the shared live large-block counts (`ArenaCounters::
    /// large_blocks`, `large_bytes`) without the lock, wrapping: one block and its size less
    /// at each keep, more at each serve. `stats()` adds them; a retired heap's are folded
    /// into the registry's `RetiredCounters`.
    pub(crate) live_blocks: StatCounter,
    pub(crate) live_bytes: StatCounter,
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
                served_sizes: [const { Cell::new(0) }; LARGE_SLOTS],
                served_counts: [const { Cell::new(0) }; LARGE_SLOTS],
                served_next: Cell::new(0),
                live_blocks: StatCounter::new(),
                live_bytes: StatCounter::new(),
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
    /// as the most recent, no longer counted live; there must be room (`has_room_for`).
    /// Holder only.
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
        self.live_blocks.add(1u64.wrapping_neg());
        self.live_bytes.add((size as u64).wrapping_neg());
    }

    /// Kept block `block` was just handed out again for a request of `size` bytes: recorded
    /// with `count`, the current [`ForeignFrees`] count (`ForeignFrees::now`), and counted
    /// live again. Holder only.
    pub(crate) fn note_served(&self, block: *mut u8, size: usize, count: u64) {
        self.unused_in_a_row.set(0);
        let i = self.served_next.get();
        self.served[i].set(block);
        self.served_sizes[i].set(size);
        self.served_counts[i].set(count);
        self.served_next.set((i + 1) % LARGE_SLOTS);
        self.live_blocks.add(1);
        self.live_bytes.add(size as u64);
    }

    /// The program frees or resizes `block`: its record, if the cache served it
    /// (`note_served`), as `(size when served, the ForeignFrees count then)`, forgotten here. Holder
    /// only.
    pub(crate) fn take_served(&self, block: *mut u8) -> Option<(usize, u64)> {
        let i = self.served.iter().position(|s| s.get() == block)?;
        self.served[i].set(ptr::null_mut());
        Some((self.served_sizes[i].get(), self.served_counts[i].get()))
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
