//! The medium cache: blocks of 513 B to 32 KiB that `PoolAlloc`'s fallback served and the
//! program freed, kept per heap for its thread's next request of the same size bin instead of
//! going back at once.
//!
//! Where the blocks come from: those of up to 4 KiB from pyheap's medium spans
//! (`medium_spans.rs`), in batches, when a bin of the cache is empty; the larger ones from
//! `malloc`, one at a time.
//!
//! Why: the pools stop at 512 bytes (CPython's scheme), so `PoolAlloc` hands medium requests
//! to its fallback. glibc's own per-thread cache stops at 1,032 bytes; above it every
//! `malloc` and `free` searches glibc's bins under its arena's lock. On `medium_churn` (256
//! live blocks of 513 B - 32 KiB, one freed and one allocated per operation) that made
//! `PoolAlloc` 4-5× slower than rpmalloc, which serves these sizes from thread-local spans
//! (BENCHMARKS.md "The medium cache"). This cache is a thread cache of the kind jemalloc's
//! tcache keeps for its small and medium classes, in front of the fallback and only there:
//! [`PoolAllocWith`](super::PoolAllocWith) leaves its fallback alone (its allocator has its
//! own caching, or the user chose it to have none).
//!
//! **Bins.** A medium size is one of [`NUM_BINS`] bins, eight per doubling of the size (the
//! bin of 513-576 B, then 577-640 B, ..., 30,721-32,768 B), so rounding wastes at most 12.5%
//! (6% on average over uniform sizes). A span block holds its bin's size exactly, and every
//! medium request above the spans' bins is rounded up to its bin's size before `malloc` sees
//! it, whether or not the cache serves it ([`request_size`]). So every medium block of the
//! fallback holds at least its bin's size, and a block freed with any size of a bin can serve
//! any later request of that bin, from any thread. A `realloc` within a bin returns the block
//! as it is.
//!
//! **Bounds.** A bin keeps at most [`MAX_PER_BIN`] blocks and a heap at most [`MAX_BYTES`]
//! bytes (counted by bin sizes). A free into a full bin gives half the bin back and keeps the
//! new block: for a `malloc` bin the older half (so a program that frees more blocks of a bin
//! than the cache holds hands `free` the older ones, which `malloc` can coalesce), for a span
//! bin the newer half (still in the CPU's cache; spans do not coalesce). A free that would
//! pass [`MAX_BYTES`] even so goes back at once. Every
//! [`TRIM_INTERVAL`] frees into the cache, each bin gives back half of the blocks that stayed
//! unused since the last trim (its low-water mark, as jemalloc's tcache GC does), so bins the
//! program stopped using empty over a few intervals while the ones it reuses keep their
//! blocks.
//!
//! **Lifetime.** A thread that frees medium blocks and then sleeps keeps at most
//! [`MAX_BYTES`] (4 MiB) until it exits (a refill takes at most what fits under the bound).
//! The cache is emptied when its thread exits (`thread.rs`, before the heap is given up), and
//! by [`purge`](super::purge): the calling thread's at once, every other thread's at that
//! thread's next medium free ([`request_flush_all`]). A child process inherits the other
//! threads' caches as it inherits their heaps (`fork.rs`): not reused there, a leak bounded by
//! [`MAX_BYTES`] per such thread.
//!
//! `stats()` reports the cached blocks and bytes apart from the program's live fallback
//! blocks ([`AllocStats::medium_cached_blocks`](super::AllocStats::medium_cached_blocks)).

#[cfg(all(unix, not(loom)))]
use super::medium_spans;
use crate::sync::unmodelled::{AtomicU32, Ordering};
use crate::sync::StatCounter;
use core::cell::Cell;
use core::ptr;

/// The smallest medium size: one more than the pools' limit.
pub(crate) const MIN_SIZE: usize = super::SMALL_REQUEST_THRESHOLD + 1;
/// The largest medium size (above it requests go to `malloc` as they are).
pub(crate) const MAX_SIZE: usize = 32 * 1024;
/// Bins per doubling of the size.
const BINS_PER_DOUBLING: usize = 8;
const LOG_BINS_PER_DOUBLING: u32 = BINS_PER_DOUBLING.trailing_zeros();
/// log2 of the pools' limit (512): the first doubling's base.
const LOG_BASE: u32 = super::SMALL_REQUEST_THRESHOLD.trailing_zeros();
/// Number of bins: 513 B to 32 KiB is six doublings.
pub(crate) const NUM_BINS: usize =
    (MAX_SIZE.trailing_zeros() - LOG_BASE) as usize * BINS_PER_DOUBLING;
/// At most this many blocks per bin.
pub(crate) const MAX_PER_BIN: u32 = 1024;
/// At most this many bytes (bin sizes) per heap: 4 MiB.
pub(crate) const MAX_BYTES: u64 = 4 << 20;
/// Frees into the cache between two trims.
const TRIM_INTERVAL: u32 = 1024;

const _: () = assert!(super::SMALL_REQUEST_THRESHOLD.is_power_of_two());
const _: () = assert!(NUM_BINS == 48);

/// The bin of a medium `size` (`MIN_SIZE..=MAX_SIZE`), else `None`.
#[inline(always)]
pub(crate) fn bin_of(size: usize) -> Option<usize> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return None;
    }
    let n = size - 1;
    // n is in 512..32768: its top bit is 9..=14.
    let log = usize::BITS - 1 - n.leading_zeros();
    let shift = log - LOG_BINS_PER_DOUBLING;
    // The top four bits of n: 8..=15.
    let sub = (n >> shift) - BINS_PER_DOUBLING;
    Some((log - LOG_BASE) as usize * BINS_PER_DOUBLING + sub)
}

/// The size every block of `bin` holds (the largest size of the bin).
#[inline(always)]
pub(crate) const fn bin_size(bin: usize) -> usize {
    let doubling = bin / BINS_PER_DOUBLING;
    let sub = bin % BINS_PER_DOUBLING;
    let shift = LOG_BASE as usize + doubling - LOG_BINS_PER_DOUBLING as usize;
    (BINS_PER_DOUBLING + sub + 1) << shift
}

/// What `malloc` is asked for a request of `size` bytes: its bin's size for a medium size,
/// else `size` itself.
#[inline(always)]
pub(crate) fn request_size(size: usize) -> usize {
    match bin_of(size) {
        Some(bin) => bin_size(bin),
        None => size,
    }
}

/// Raised by [`request_flush_all`]; a cache that sees a value other than the one it last saw
/// empties itself first.
static FLUSH_EPOCH: AtomicU32 = AtomicU32::new(0);

/// Ask every heap's cache to empty itself at its next use (`purge`).
pub(crate) fn request_flush_all() {
    FLUSH_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// One bin: a stack of blocks linked through their first word.
struct Bin {
    top: Cell<*mut u8>,
    /// The stack's length: written by the holder only (a load and a store), read by
    /// `stats()` from any thread.
    count: AtomicU32,
    /// The lowest `count` since the last trim: blocks below it were not needed meanwhile.
    low: Cell<u32>,
}

impl Bin {
    #[inline(always)]
    fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn set_count(&self, n: u32) {
        self.count.store(n, Ordering::Relaxed);
    }
}

/// A heap's medium cache.
///
/// # Invariants
/// - Only the heap's holder touches it (as the heap's other `Cell`s: `Heap`'s invariants),
///   except the bins' counts and `bytes`, which `stats()` reads from any thread.
/// - Every block on bin `b`'s stack is, for a span bin (`medium_spans::serves(b)`), a block
///   of a medium span of bin `b` handed out by `medium_spans::alloc_chain`; for the other
///   bins, a live block of the C library's `malloc` (from `malloc`, `calloc` or `realloc`) of
///   at least `bin_size(b)` bytes. Either way it is aligned to 16, and no one else references
///   it: the program freed it, or it came with a refill and was never handed out. Its first
///   word holds the next block of the stack (or null); `count` is the stack's length, at most
///   [`MAX_PER_BIN`]; `low` is at most `count`.
/// - `bytes` is the sum of `bin_size` over the blocks held, at most [`MAX_BYTES`].
pub(crate) struct MediumCache {
    bins: [Bin; NUM_BINS],
    /// The [`FLUSH_EPOCH`] this cache last saw.
    epoch: Cell<u32>,
    /// Frees into the cache until the next [`trim`](Self::trim).
    puts_until_trim: Cell<u32>,
    pub(crate) bytes: StatCounter,
}

impl MediumCache {
    pub(crate) fn new() -> MediumCache {
        MediumCache {
            bins: core::array::from_fn(|_| Bin {
                top: Cell::new(ptr::null_mut()),
                count: AtomicU32::new(0),
                low: Cell::new(0),
            }),
            puts_until_trim: Cell::new(TRIM_INTERVAL),
            epoch: Cell::new(FLUSH_EPOCH.load(Ordering::Relaxed)),
            bytes: StatCounter::new(),
        }
    }

    /// Empty the cache first if a flush was requested since it last looked.
    #[inline(always)]
    fn check_epoch(&self) {
        let epoch = FLUSH_EPOCH.load(Ordering::Relaxed);
        if epoch != self.epoch.get() {
            self.epoch.set(epoch);
            self.flush();
        }
    }

    /// A cached block of `bin` (at least `bin_size(bin)` bytes, the caller's now), or null.
    /// (It does not look at the flush epoch: a block taken is in use again, which is what a
    /// flush would have made of it too; the next `put` flushes.)
    #[inline(always)]
    pub(crate) fn take(&self, bin: usize) -> *mut u8 {
        let b = &self.bins[bin];
        let block = b.top.get();
        if !block.is_null() {
            // SAFETY: the top of the stack.
            b.top.set(unsafe { next(block) });
            self.uncount(bin, 1);
        }
        block
    }

    /// Refill `bin` from the medium spans and take one block of it (null when no span can be
    /// mapped). Only for a span bin (`medium_spans::serves`), when [`take`](Self::take) found
    /// it empty: the other blocks of the batch stay in the bin, within the cache's bounds.
    #[cfg(all(unix, not(loom)))]
    #[inline(never)]
    pub(crate) fn refill(&self, bin: usize) -> *mut u8 {
        let b = &self.bins[bin];
        debug_assert!(b.top.get().is_null() && b.count() == 0);
        let size = bin_size(bin) as u64;
        let room = (MAX_BYTES.saturating_sub(self.bytes.get()) / size) as u32;
        let want = medium_spans::refill_count(bin)
            .min(room + 1)
            .min(MAX_PER_BIN + 1);
        let (block, got) = medium_spans::alloc_chain(bin, want);
        if got > 1 {
            // SAFETY: the chain's blocks are ours (`alloc_chain`): span blocks of `bin`, each
            // linked to the next through its first word, which is the stack's link too.
            b.top.set(unsafe { next(block) });
            b.set_count(got - 1);
            self.bytes.add(u64::from(got - 1) * size);
        }
        block
    }

    /// [`put`](Self::put) when it has nothing else to do (no flush requested, no trim due,
    /// room in the bin and under the byte bound): push `block` and return `true`; otherwise
    /// change nothing and return `false` (the caller then calls `put`). With no call in it,
    /// the medium free path that inlines it needs no stack frame.
    ///
    /// # Safety
    /// As for `put`.
    #[inline(always)]
    pub(crate) unsafe fn put_fast(&self, bin: usize, block: *mut u8) -> bool {
        let b = &self.bins[bin];
        let size = bin_size(bin) as u64;
        let left = self.puts_until_trim.get();
        if FLUSH_EPOCH.load(Ordering::Relaxed) != self.epoch.get()
            || left <= 1
            || b.count() >= MAX_PER_BIN
            || self.bytes.get() + size > MAX_BYTES
        {
            return false;
        }
        self.puts_until_trim.set(left - 1);
        // SAFETY: the caller gives the block up: its first word is ours to write.
        unsafe { block.cast::<*mut u8>().write(b.top.get()) };
        b.top.set(block);
        b.set_count(b.count() + 1);
        self.bytes.add(size);
        true
    }

    /// Keep `block` in `bin`'s stack if the bounds allow; `false` if they do not (the caller
    /// frees it).
    ///
    /// # Safety
    /// `block` is a medium block of `bin` as the stacks hold them (`MediumCache`'s
    /// invariants: a span block for a span bin, else a `malloc` block of at least
    /// `bin_size(bin)` bytes), aligned to 16, that the caller gives up.
    #[inline(always)]
    pub(crate) unsafe fn put(&self, bin: usize, block: *mut u8) -> bool {
        self.check_epoch();
        let left = self.puts_until_trim.get() - 1;
        self.puts_until_trim.set(left);
        if left == 0 {
            self.trim();
        }
        let b = &self.bins[bin];
        let size = bin_size(bin) as u64;
        if b.count() >= MAX_PER_BIN || self.bytes.get() + size > MAX_BYTES {
            // Full: the older half of the bin goes back to `free` first, and this block, the
            // most recent, is kept. (Refusing it instead broke `malloc`'s coalescing when the
            // program frees more blocks of one bin than the cache holds, last-allocated
            // first: the blocks kept sat between the ones freed and `malloc`'s heap top, and
            // LIFO batches of 1,000 blocks of 4 KiB cost 742 instructions a pair instead of
            // 410.)
            if b.count() < 2 {
                return false;
            }
            if span_bin(bin) {
                self.free_newer_half(bin);
            } else {
                self.free_older_half(bin);
            }
            if self.bytes.get() + size > MAX_BYTES {
                return false;
            }
        }
        // SAFETY: the caller gives the block up: its first word is ours to write.
        unsafe { block.cast::<*mut u8>().write(b.top.get()) };
        b.top.set(block);
        b.set_count(b.count() + 1);
        self.bytes.add(size);
        true
    }

    /// The blocks held (for `stats()`, from any thread: a snapshot that may be off by the
    /// holder's operations in flight).
    pub(crate) fn blocks(&self) -> u64 {
        self.bins.iter().map(|b| u64::from(b.count())).sum()
    }

    /// `n` blocks left `bin`'s stack: its count, low-water mark and the bytes follow.
    #[inline(always)]
    fn uncount(&self, bin: usize, n: u32) {
        let b = &self.bins[bin];
        let count = b.count() - n;
        b.set_count(count);
        if count < b.low.get() {
            b.low.set(count);
        }
        self.bytes
            .add((u64::from(n) * bin_size(bin) as u64).wrapping_neg());
    }

    /// Give the older half of `bin`'s blocks (the bottom of its stack) back to `free`.
    #[cold]
    #[inline(never)]
    fn free_older_half(&self, bin: usize) {
        let count = self.bins[bin].count();
        let keep = count / 2;
        debug_assert!(keep >= 1);
        let older = self.split_below(bin, keep);
        // SAFETY: the stack's blocks below the kept part, now on no stack.
        unsafe { release_chain(bin, older) };
        self.uncount(bin, count - keep);
    }

    /// Give the newer half of span bin `bin`'s blocks (the top of its stack) back to their
    /// spans. For span bins this half, not the older one: the blocks freed last are the ones
    /// still in the CPU's cache, and giving a block back reads its link and writes its span's
    /// free list; the older half of a bin that overflows is cold (measured on `serde_json`,
    /// which frees its 20,000 `BTreeMap` nodes in a burst: the link reads of the older half
    /// were three quarters of `free_chain`'s time). Spans do not coalesce, so the order
    /// `malloc` needs (`free_older_half`) does not matter here.
    #[cold]
    #[inline(never)]
    fn free_newer_half(&self, bin: usize) {
        let count = self.bins[bin].count();
        let give = count - count / 2;
        // SAFETY: the top `give <= count` blocks, off the stack, given back.
        unsafe { release_chain(bin, self.cut_top(bin, give)) };
    }

    /// Take the top `n` blocks (at most the bin's count) off `bin`'s stack as a null-terminated
    /// chain, counted out.
    fn cut_top(&self, bin: usize, n: u32) -> *mut u8 {
        if n == 0 {
            return ptr::null_mut();
        }
        let b = &self.bins[bin];
        let first = b.top.get();
        b.top.set(self.split_below(bin, n));
        self.uncount(bin, n);
        first
    }

    /// Cut `bin`'s stack after its top `n` blocks (`1 <= n <= count`): the top `n` end in
    /// null, and the blocks below them are returned as a chain. The counts are the caller's to
    /// settle.
    fn split_below(&self, bin: usize, n: u32) -> *mut u8 {
        let b = &self.bins[bin];
        debug_assert!(n >= 1 && n <= b.count());
        let mut last = b.top.get();
        for _ in 1..n {
            // SAFETY: `n <= count`: a block of the stack.
            last = unsafe { next(last) };
        }
        // SAFETY: `last` is a block of the stack; its first word (its link) is ours to write.
        unsafe {
            let below = next(last);
            last.cast::<*mut u8>().write(ptr::null_mut());
            below
        }
    }

    /// Every [`TRIM_INTERVAL`] frees into the cache: give back half the blocks of each bin
    /// that stayed unused since the last trim (its low-water mark), as jemalloc's tcache
    /// "GC" does. A bin the program keeps reusing keeps its blocks; one it stopped using
    /// empties over a few intervals.
    #[cold]
    #[inline(never)]
    fn trim(&self) {
        self.puts_until_trim.set(TRIM_INTERVAL);
        for (bin, b) in self.bins.iter().enumerate() {
            let unused = b.low.get().div_ceil(2);
            // SAFETY: `unused <= low <= count` blocks off the stack, given back.
            unsafe { release_chain(bin, self.cut_top(bin, unused)) };
            b.low.set(b.count());
        }
    }

    /// Give every cached block back (to its span, or to `free`). A flush requested before
    /// this one ([`request_flush_all`]) is done by it.
    pub(crate) fn flush(&self) {
        self.epoch.set(FLUSH_EPOCH.load(Ordering::Relaxed));
        for (bin, b) in self.bins.iter().enumerate() {
            let blocks = b.top.replace(ptr::null_mut());
            // SAFETY: the whole stack, now on no stack.
            unsafe { release_chain(bin, blocks) };
            self.uncount(bin, b.count());
        }
    }
}

/// The block after `block` on its stack (or null).
///
/// # Safety
/// `block` is on a bin's stack (`MediumCache`'s invariants: its first word links the next).
#[inline(always)]
unsafe fn next(block: *mut u8) -> *mut u8 {
    // SAFETY: caller's contract; blocks are 16-aligned and at least 576 bytes.
    unsafe { block.cast::<*mut u8>().read() }
}

/// Give a null-terminated chain of former stack blocks of `bin` back to where they came
/// from: their spans for a span bin (`medium_spans.rs`, one lock for the chain), else `free`.
///
/// # Safety
/// Every block of the chain was on `bin`'s stack (linked through its first word), and no
/// stack holds it any more.
unsafe fn release_chain(bin: usize, mut block: *mut u8) {
    if block.is_null() {
        return;
    }
    if span_bin(bin) {
        #[cfg(all(unix, not(loom)))]
        {
            // SAFETY: span blocks of `bin` (the stack's invariant), given up (caller's
            // contract).
            unsafe { medium_spans::free_chain(bin, block) };
        }
        return;
    }
    while !block.is_null() {
        // SAFETY: a block of the chain (caller's contract).
        let after = unsafe { next(block) };
        free(block);
        block = after;
    }
}

/// Whether `bin`'s blocks come from the medium spans (`medium_spans::serves`; never under loom,
/// whose models build no spans, nor off Unix, where the cache is unused).
#[inline(always)]
fn span_bin(bin: usize) -> bool {
    #[cfg(all(unix, not(loom)))]
    return medium_spans::serves(bin);
    #[cfg(not(all(unix, not(loom))))]
    {
        let _ = bin;
        false
    }
}

/// `free` of the C library (the blocks of the bins above the spans' are `malloc`'s).
#[cfg(unix)]
fn free(block: *mut u8) {
    // SAFETY: a live `malloc` block nobody references (the stack's invariant).
    unsafe { libc::free(block.cast()) }
}

#[cfg(not(unix))]
fn free(_block: *mut u8) {
    unreachable!("the medium cache is used on Unix only");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_medium_sizes_in_order() {
        assert_eq!(bin_of(MIN_SIZE - 1), None);
        assert_eq!(bin_of(MAX_SIZE + 1), None);
        assert_eq!(bin_of(MIN_SIZE), Some(0));
        assert_eq!(bin_size(0), 576);
        assert_eq!(bin_of(MAX_SIZE), Some(NUM_BINS - 1));
        assert_eq!(bin_size(NUM_BINS - 1), MAX_SIZE);
        let mut last_bin = 0;
        for size in MIN_SIZE..=MAX_SIZE {
            let bin = bin_of(size).unwrap();
            assert!(bin == last_bin || bin == last_bin + 1, "size {size}");
            let bs = bin_size(bin);
            assert!(bs >= size, "size {size} in bin {bin} of {bs}");
            assert_eq!(bs % 16, 0);
            // At most 12.5% more than asked.
            assert!(bs - size < size / 8 + 1, "size {size}, bin size {bs}");
            // The bin's size is the largest size of the bin.
            assert_eq!(bin_of(bs), Some(bin));
            if bs < MAX_SIZE {
                assert_eq!(bin_of(bs + 1), Some(bin + 1));
            }
            last_bin = bin;
        }
    }
}
