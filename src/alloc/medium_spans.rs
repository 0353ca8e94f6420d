//! Medium spans: where `PoolAlloc`'s medium blocks of 513 B to 4 KiB come from, instead of
//! one `malloc` each.
//!
//! Why: the medium cache (`medium_cache.rs`) serves a thread's requests from the blocks it
//! freed, which is what loops of allocations and frees need. A program that builds a large
//! structure out of medium blocks and keeps them all (a `BTreeMap`'s nodes are 544-728 bytes)
//! gets nothing from it: every block came from glibc's `malloc`, whose bins above its own
//! thread cache cost about 290 instructions per `malloc`/`free` pair under its arena lock.
//! That was most of what `serde_json`'s and `btree`'s workloads lost to mimalloc
//! (BENCHMARKS.md "Medium spans"). The pools stay at CPython's 512 bytes; this is the
//! fallback's own allocator for the next sizes, in the shape jemalloc gives its small
//! classes: thread caches (the medium cache) in front of shared *slabs* under a lock per bin,
//! filled and emptied in batches, so that the lock is taken once per batch and not per block.
//!
//! **Spans.** A span is [`SPAN_SIZE`] bytes mapped from the OS and aligned to that size,
//! holding blocks of one bin (`medium_cache::bin_size`) after a header at its start. The span
//! of a block is found by masking its address. The bins with a block size of at most
//! [`MAX_SPAN_BLOCK`] (the first [`SPAN_BINS`] bins) come from spans, always, on Unix, for
//! `PoolAlloc` (never for `PoolAllocWith`, whose allocator gets every request); larger medium
//! blocks still come from `malloc`. So whether a medium block lives in a span follows from its
//! layout alone, and a free never has to ask. A span block freed with the layout of another
//! bin (which would later serve requests larger than the block) aborts with a message
//! ([`check_bin`]: one read of the span's header per free), as a pool block freed with
//! another class's layout does.
//!
//! **Central bins.** Each span bin has a lock and a list of its spans that have a free block
//! (*partial* spans). [`alloc_chain`] hands out a chain of blocks (taking a span off the list
//! when it fills, and a new span when the list is empty); [`free_chain`] takes a chain back
//! (a full span goes back on the list, an empty one leaves the bin). A thread's medium cache
//! asks for [`REFILL_BYTES`] worth of blocks when its bin is empty, and gives back half a bin
//! at a time when it overflows or trims, so one lock acquisition serves many blocks.
//!
//! **Empty spans** go onto one shared list, newest first, and are reused from there by any
//! bin. Those that stayed on it for the purge delay
//! ([`set_purge_delay`](super::set_purge_delay), one second by default) are unmapped, checked
//! whenever spans join the list, at most [`UNMAP_BUDGET`] more than join;
//! [`purge`](super::purge) unmaps them all. So a program that frees its medium blocks and
//! builds again within the delay reuses memory that is already resident. As with the pools'
//! purge (`purge.rs`), the check rides on traffic: a program that goes idle after a peak keeps
//! its empty spans until spans are released again or `purge` is called.
//!
//! **Locks.** A bin's lock guards its list and every field of its spans; the empty list's lock
//! guards that list and the spans on it. The only nesting is a bin's lock, then the empty
//! list's (to take a span); `fork.rs` takes them all in that order before a fork. No user code
//! and no allocation runs under them; `mmap` may (for a new span, under its bin's lock only).

use super::lock::RawLock;
use super::medium_cache::bin_size;
use super::os;
use crate::sync::unmodelled::{AtomicUsize, Ordering};
use core::cell::UnsafeCell;
use core::ptr;

/// The size and alignment of a span.
pub(crate) const SPAN_SIZE: usize = 64 * 1024;
/// The largest block size served from spans (at least 15 blocks a span).
pub(crate) const MAX_SPAN_BLOCK: usize = 4096;
/// The bins served from spans: the first ones, up to [`MAX_SPAN_BLOCK`] (eight bins per
/// doubling above 512 bytes: 24).
pub(crate) const SPAN_BINS: usize = (MAX_SPAN_BLOCK.trailing_zeros()
    - super::SMALL_REQUEST_THRESHOLD.trailing_zeros()) as usize
    * 8;
/// Where a span's first block starts: after its header, on a cache line of its own.
const FIRST_BLOCK: usize = 64;
/// The most slots a span has (its smallest bin's): what `Span::free_slots` has bits for.
const MAX_SLOTS: usize = 128;
/// How many bytes' worth of blocks a medium cache asks for at once (at least one block).
pub(crate) const REFILL_BYTES: usize = 16 * 1024;
/// At most this many empty spans are unmapped by one operation on the empty list, besides as
/// many as it puts there.
pub(crate) const UNMAP_BUDGET: usize = 16;

const _: () = assert!(SPAN_BINS <= super::medium_cache::NUM_BINS);
const _: () = assert!(core::mem::size_of::<Span>() <= FIRST_BLOCK);
const _: () = assert!((SPAN_SIZE - FIRST_BLOCK) / bin_size(0) <= MAX_SLOTS);

/// Whether blocks of medium `bin` come from spans.
#[inline(always)]
pub(crate) fn serves(bin: usize) -> bool {
    bin < SPAN_BINS
}

/// How many blocks of span `bin` a medium cache asks for when it runs dry.
#[inline(always)]
pub(crate) fn refill_count(bin: usize) -> u32 {
    (REFILL_BYTES / bin_size(bin)).max(1) as u32
}

/// A span's header, at its start.
///
/// # Invariants
/// - A span is in exactly one place: on the empty list (no block of it is live; `bin` is
///   meaningless), or owned by bin `bin`, on that bin's partial list exactly when it has a free
///   slot (`free_slots` not all zero).
/// - Every field is read and written only under the lock of where the span is: its bin's, or
///   the empty list's. One exception: `bin` is written only by `take_span`, while no block of
///   the span is handed out, so a thread holding a live block of the span (which it received
///   after that write) may read `bin` without a lock (`check_bin`).
/// - Owned by a bin: the blocks are `capacity` (at most [`MAX_SLOTS`]) slots of
///   `bin_size(bin)` bytes from [`FIRST_BLOCK`]; bit `i % 64` of `free_slots[i / 64]` is set
///   exactly when slot `i < capacity` is free (not handed out, or handed out and given back),
///   and no bit at or above `capacity` is set; `used` counts the slots that are not free.
///
/// The free slots are a bitmap, not a list through the blocks, so that handing out a batch
/// (`alloc_chain`) reads no block: a list would make it chase one pointer per block through
/// memory that was freed long ago and is no longer cached, each load waiting for the one
/// before. It also hands out a span's free slots in address order, and lets `free_chain` see
/// a block given back twice.
#[repr(C)]
struct Span {
    bin: u32,
    capacity: u32,
    used: u32,
    free_slots: [u64; 2],
    prev: *mut Span,
    next: *mut Span,
    /// When the span joined the empty list (ms, `os::now_ms`).
    emptied_at: u64,
}

/// The span of a block of a span bin.
#[inline(always)]
fn span_of(block: *mut u8) -> *mut Span {
    (block as usize & !(SPAN_SIZE - 1)) as *mut Span
}

/// Abort (with a message, as the pools do for a block freed with another size class's
/// layout) if `block`, freed with a layout of span bin `bin`, lives in a span of another bin:
/// it would serve requests of `bin` larger than it is.
///
/// # Safety
/// `block` is a live block of a medium span (allocated with a layout of a span bin): its
/// span's `bin` is not written while one of its blocks is live (`Span`'s invariants: only
/// `take_span` writes it, for a span with no block handed out), and the block's owner received
/// it after that write.
#[inline(always)]
pub(crate) unsafe fn check_bin(block: *mut u8, bin: usize) {
    // SAFETY: caller's contract; the header is at the span's start.
    let span_bin = unsafe { (*span_of(block)).bin } as usize;
    if span_bin != bin {
        wrong_bin();
    }
}

#[cold]
#[inline(never)]
fn wrong_bin() -> ! {
    os::fatal("pyheap: dealloc called with a layout of another medium size bin than alloc")
}

#[cold]
#[inline(never)]
fn double_free() -> ! {
    os::fatal("pyheap: a medium block freed twice (or a pointer pyheap did not allocate)")
}

/// An intrusive doubly linked list of spans (through `prev`/`next`).
struct SpanList {
    head: *mut Span,
    tail: *mut Span,
    len: usize,
}

impl SpanList {
    const fn new() -> SpanList {
        SpanList {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
        }
    }

    /// # Safety
    /// `span` is on no list; the caller holds the list's lock, which guards `span` now.
    unsafe fn push_front(&mut self, span: *mut Span) {
        // SAFETY: caller's contract; the head, if any, is a span of this list.
        unsafe {
            (*span).prev = ptr::null_mut();
            (*span).next = self.head;
            if self.head.is_null() {
                self.tail = span;
            } else {
                (*self.head).prev = span;
            }
        }
        self.head = span;
        self.len += 1;
    }

    /// # Safety
    /// `span` is on this list; the caller holds its lock.
    unsafe fn remove(&mut self, span: *mut Span) {
        // SAFETY: caller's contract: `span` and its neighbours are spans of this list.
        unsafe {
            let (prev, next) = ((*span).prev, (*span).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev = prev;
            }
        }
        self.len -= 1;
    }
}

/// What one lock guards: a [`SpanList`] and the spans on it (see [`Span`]'s invariants).
struct Locked {
    lock: RawLock,
    list: UnsafeCell<SpanList>,
}

// SAFETY: the list and its spans are touched only under `lock`.
unsafe impl Sync for Locked {}

impl Locked {
    const fn new() -> Locked {
        Locked {
            lock: RawLock::new(),
            list: UnsafeCell::new(SpanList::new()),
        }
    }

    /// Run `f` on the list with the lock held.
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut SpanList) -> R) -> R {
        self.lock.lock();
        // SAFETY: the lock is held: the list is ours until `unlock`.
        let r = f(unsafe { &mut *self.list.get() });
        self.lock.unlock();
        r
    }
}

/// The span bins' partial lists.
static BINS: [Locked; SPAN_BINS] = [const { Locked::new() }; SPAN_BINS];
/// The empty spans, newest first.
static EMPTY: Locked = Locked::new();
/// Spans mapped now (for `stats()`).
static MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Spans on the empty list now (for `stats()`).
static EMPTY_NOW: AtomicUsize = AtomicUsize::new(0);

/// Spans mapped now, and how many of them are empty (for `stats()`).
pub(crate) fn counts() -> (usize, usize) {
    (
        MAPPED.load(Ordering::Relaxed),
        EMPTY_NOW.load(Ordering::Relaxed),
    )
}

/// Up to `want` (at least 1) blocks of span `bin`, linked through their first words and
/// null-terminated, with their number; `(null, 0)` when no span can be mapped. The blocks are
/// the caller's: each holds `bin_size(bin)` bytes, aligned to 16, of unspecified content.
pub(crate) fn alloc_chain(bin: usize, want: u32) -> (*mut u8, u32) {
    debug_assert!(serves(bin) && want >= 1);
    let size = bin_size(bin);
    BINS[bin].with(|partial| {
        let mut chain: *mut u8 = ptr::null_mut();
        let mut got = 0;
        while got < want {
            let mut span = partial.head;
            if span.is_null() {
                span = take_span(bin);
                if span.is_null() {
                    break;
                }
                // SAFETY: a span of this bin with a free block, on no list, under our lock.
                unsafe { partial.push_front(span) };
            }
            // SAFETY: `span` is on this bin's partial list and we hold its lock (`Span`'s
            // invariants): its fields are ours, and the slots whose bits are set are free
            // slots inside the span, which become the caller's.
            unsafe {
                let s = &mut *span;
                // The lowest free slots, in address order; then linked from the highest down,
                // so that the chain hands them out in address order.
                let mut taken = [0u8; MAX_SLOTS];
                let mut n = 0;
                while got + (n as u32) < want {
                    let word = usize::from(s.free_slots[0] == 0);
                    if s.free_slots[word] == 0 {
                        break;
                    }
                    let bit = s.free_slots[word].trailing_zeros() as usize;
                    s.free_slots[word] &= s.free_slots[word] - 1;
                    taken[n] = (word * 64 + bit) as u8;
                    n += 1;
                }
                s.used += n as u32;
                got += n as u32;
                for &slot in taken[..n].iter().rev() {
                    let block = span
                        .cast::<u8>()
                        .add(FIRST_BLOCK + usize::from(slot) * size);
                    block.cast::<*mut u8>().write(chain);
                    chain = block;
                }
                if s.free_slots == [0, 0] {
                    partial.remove(span);
                }
            }
        }
        (chain, got)
    })
}

/// Give a null-terminated chain of blocks of span `bin` (linked through their first words)
/// back to their spans.
///
/// # Safety
/// Every block of the chain came from [`alloc_chain`] for `bin`, and is given up: no one uses
/// it any more, and it is on no other chain.
pub(crate) unsafe fn free_chain(bin: usize, mut block: *mut u8) {
    debug_assert!(serves(bin));
    let size = bin_size(bin);
    let mut emptied: *mut Span = ptr::null_mut();
    BINS[bin].with(|partial| {
        while !block.is_null() {
            // SAFETY: a block of a span of this bin (caller's contract), whose fields are
            // guarded by the lock we hold; the block's first word is the chain's link, read
            // before the block goes back to its span's bitmap.
            unsafe {
                let next = block.cast::<*mut u8>().read();
                let span = span_of(block);
                let s = &mut *span;
                debug_assert_eq!(s.bin as usize, bin);
                // Wrapping: a pointer into the header (not a block) gives a slot out of range.
                let slot = (block as usize).wrapping_sub(span as usize + FIRST_BLOCK) / size;
                let bit = 1u64 << (slot % 64);
                if slot >= s.capacity as usize || s.free_slots[slot / 64] & bit != 0 {
                    double_free();
                }
                let was_full = s.free_slots == [0, 0];
                s.free_slots[slot / 64] |= bit;
                s.used -= 1;
                if s.used == 0 {
                    // Empty: off the bin, onto the caller's local chain of emptied spans.
                    if !was_full {
                        partial.remove(span);
                    }
                    s.next = emptied;
                    emptied = span;
                } else if was_full {
                    partial.push_front(span);
                }
                block = next;
            }
        }
    });
    if !emptied.is_null() {
        // SAFETY: spans taken off their bin with no live block, on no list.
        unsafe { release_spans(emptied) };
    }
}

/// A span for `bin`, set up with no block handed out: from the empty list, else newly
/// mapped; null when the OS refuses. Called with `bin`'s lock held.
fn take_span(bin: usize) -> *mut Span {
    let mut span = EMPTY.with(|empty| {
        let span = empty.head;
        if !span.is_null() {
            // SAFETY: the head of the empty list, under its lock.
            unsafe { empty.remove(span) };
            EMPTY_NOW.fetch_sub(1, Ordering::Relaxed);
        }
        span
    });
    if span.is_null() {
        span = os::map_aligned(SPAN_SIZE, SPAN_SIZE).cast();
        if span.is_null() {
            return span;
        }
        MAPPED.fetch_add(1, Ordering::Relaxed);
    }
    let capacity = (SPAN_SIZE - FIRST_BLOCK) / bin_size(bin);
    // SAFETY: a span on no list (just taken off the empty list, or just mapped): ours to set
    // up; the header fits before `FIRST_BLOCK`.
    unsafe {
        span.write(Span {
            bin: bin as u32,
            capacity: capacity as u32,
            used: 0,
            free_slots: all_free(capacity),
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            emptied_at: 0,
        })
    };
    span
}

/// `Span::free_slots` with the slots below `capacity` (at most [`MAX_SLOTS`]) free.
fn all_free(capacity: usize) -> [u64; 2] {
    debug_assert!(capacity <= MAX_SLOTS);
    // The low `n` bits (`n <= 64`) of a word.
    let low = |n: usize| u64::MAX.checked_shr((64 - n) as u32).unwrap_or(0);
    [low(capacity.min(64)), low(capacity.saturating_sub(64))]
}

/// Put a chain of spans (linked through `next`) on the empty list, then unmap those that
/// stayed there past the purge delay.
///
/// # Safety
/// Every span of the chain has no live block and is on no list.
unsafe fn release_spans(mut span: *mut Span) {
    let now = os::now_ms();
    let delay = super::purge::delay_ms();
    let mut expired: *mut Span = ptr::null_mut();
    EMPTY.with(|empty| {
        let mut released = 0;
        while !span.is_null() {
            // SAFETY: a span of the chain (caller's contract), now under the empty list's lock.
            unsafe {
                let next = (*span).next;
                (*span).emptied_at = now;
                empty.push_front(span);
                span = next;
            }
            EMPTY_NOW.fetch_add(1, Ordering::Relaxed);
            released += 1;
        }
        // As many as were released, and the budget: the list never grows by spans that are
        // due.
        expired = take_expired(empty, now, delay, released + UNMAP_BUDGET);
    });
    // SAFETY: spans taken off the empty list, on no list, no live block.
    unsafe { unmap_spans(expired) };
}

/// Take off the empty list (oldest first) up to `budget` spans that have been on it for at
/// least `delay` ms; returns them chained through `next`. Called with the list's lock held.
fn take_expired(empty: &mut SpanList, now: u64, delay: u64, budget: usize) -> *mut Span {
    let mut expired: *mut Span = ptr::null_mut();
    let mut n = 0;
    while n < budget {
        let oldest = empty.tail;
        // SAFETY: the tail of the empty list, under its lock.
        if oldest.is_null() || now.saturating_sub(unsafe { (*oldest).emptied_at }) < delay {
            break;
        }
        // SAFETY: as above.
        unsafe {
            empty.remove(oldest);
            (*oldest).next = expired;
        }
        EMPTY_NOW.fetch_sub(1, Ordering::Relaxed);
        expired = oldest;
        n += 1;
    }
    expired
}

/// Unmap a chain of spans (through `next`); returns how many.
///
/// # Safety
/// No span of the chain has a live block or is on a list; no one will touch them again.
unsafe fn unmap_spans(mut span: *mut Span) -> usize {
    let mut n = 0;
    while !span.is_null() {
        // SAFETY: caller's contract: the header is readable until the unmap.
        let next = unsafe { (*span).next };
        os::unmap(span.cast(), SPAN_SIZE);
        MAPPED.fetch_sub(1, Ordering::Relaxed);
        span = next;
        n += 1;
    }
    n
}

/// Unmap every empty span now (`purge()`); returns the bytes given back.
pub(crate) fn unmap_all_empty() -> usize {
    let mut total = 0;
    loop {
        let expired = EMPTY.with(|empty| take_expired(empty, u64::MAX, 0, UNMAP_BUDGET));
        if expired.is_null() {
            return total;
        }
        // SAFETY: spans taken off the empty list.
        total += unsafe { unmap_spans(expired) } * SPAN_SIZE;
    }
}

/// Take every lock of this module, in the order of the module doc (`fork.rs`'s prepare
/// handler).
pub(crate) fn fork_lock() {
    for bin in &BINS {
        bin.lock.lock();
    }
    EMPTY.lock.lock();
}

/// Release them in the parent after a fork.
pub(crate) fn fork_unlock() {
    EMPTY.lock.unlock();
    for bin in &BINS {
        bin.lock.unlock();
    }
}

/// Release them in the child, where the forking thread (which took them) is the only thread.
pub(crate) fn fork_force_unlock() {
    EMPTY.lock.force_unlock();
    for bin in &BINS {
        bin.lock.force_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_bins_end_at_the_largest_span_block() {
        assert_eq!(bin_size(SPAN_BINS - 1), MAX_SPAN_BLOCK);
        assert!(bin_size(SPAN_BINS) > MAX_SPAN_BLOCK);
        for bin in 0..SPAN_BINS {
            let capacity = (SPAN_SIZE - FIRST_BLOCK) / bin_size(bin);
            assert!(capacity >= 15, "bin {bin}");
            assert!(refill_count(bin) >= 4, "bin {bin}");
        }
    }

    #[test]
    fn a_fresh_span_has_exactly_its_slots_free() {
        for capacity in [0, 1, 15, 63, 64, 65, 113, 127, MAX_SLOTS] {
            let [lo, hi] = all_free(capacity);
            assert_eq!((lo.count_ones() + hi.count_ones()) as usize, capacity);
            assert_eq!(lo.trailing_ones() + hi.trailing_ones(), capacity as u32);
        }
        for bin in 0..SPAN_BINS {
            assert!(
                (SPAN_SIZE - FIRST_BLOCK) / bin_size(bin) <= MAX_SLOTS,
                "bin {bin}"
            );
        }
    }

    /// Held by the tests that count spans, which the others' spans would disturb.
    static SPAN_COUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The blocks of a chain, in its order.
    fn chain_blocks(mut chain: *mut u8) -> Vec<usize> {
        let mut blocks = Vec::new();
        while !chain.is_null() {
            blocks.push(chain as usize);
            // SAFETY: a block of a chain, ours; its first word links to the next.
            chain = unsafe { chain.cast::<*mut u8>().read() };
        }
        blocks
    }

    #[test]
    fn a_span_hands_out_its_lowest_free_slots_in_address_order() {
        // Bin 9 (1,280 B), used by no other test: a fresh span.
        let _counts = SPAN_COUNTS.lock().unwrap();
        let bin = 9;
        let size = bin_size(bin);
        let (chain, n) = alloc_chain(bin, 10);
        assert_eq!(n, 10);
        let first = chain_blocks(chain);
        let base = span_of(first[0] as *mut u8) as usize;
        let expected: Vec<usize> = (0..10).map(|i| base + FIRST_BLOCK + i * size).collect();
        assert_eq!(
            first, expected,
            "a fresh span's first slots, in address order"
        );
        // Give back slots 7 and 2 (in that order): the next two taken are 2 then 7, before
        // any slot never handed out.
        for slot in [7, 2] {
            let block = first[slot] as *mut u8;
            // SAFETY: a block of the chain, given up alone.
            unsafe {
                block.cast::<*mut u8>().write(ptr::null_mut());
                free_chain(bin, block);
            }
        }
        let (again, n) = alloc_chain(bin, 3);
        assert_eq!(n, 3);
        assert_eq!(
            chain_blocks(again),
            [first[2], first[7], base + FIRST_BLOCK + 10 * size],
            "the lowest free slots first"
        );
        // Everything back: the span empties (with `used` wrong, `free_chain` would keep it).
        let mut all: Vec<usize> = first
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 2 && i != 7)
            .map(|(_, &b)| b)
            .collect();
        all.extend(chain_blocks(again));
        let mut chain = ptr::null_mut::<u8>();
        for &b in &all {
            // SAFETY: ours, given back below.
            unsafe { (b as *mut u8).cast::<*mut u8>().write(chain) };
            chain = b as *mut u8;
        }
        let (_, empty_before) = counts();
        // SAFETY: blocks of bin `bin`, each once, given up.
        unsafe { free_chain(bin, chain) };
        assert_eq!(counts().1, empty_before + 1, "the span did not empty");
    }

    #[test]
    fn chains_come_back_to_their_spans_and_empty_spans_are_reused() {
        // Bin 5 (896 B): 73 blocks a span. Take three spans' worth, give them back in two
        // interleaved halves, take them again: no new span is mapped the second time.
        let _counts = SPAN_COUNTS.lock().unwrap();
        let bin = 5;
        let size = bin_size(bin);
        let mut blocks = Vec::new();
        let (mut chain, n) = alloc_chain(bin, 200);
        assert_eq!(n, 200);
        while !chain.is_null() {
            // SAFETY: a block of the chain, ours.
            let next = unsafe { chain.cast::<*mut u8>().read() };
            assert_eq!(chain as usize % 16, 0);
            assert_eq!(span_of(chain) as usize % SPAN_SIZE, 0);
            // SAFETY: the block holds `size` bytes.
            unsafe { chain.write_bytes(0xAB, size) };
            blocks.push(chain);
            chain = next;
        }
        blocks.sort();
        blocks.dedup();
        assert_eq!(blocks.len(), 200);
        for w in blocks.windows(2) {
            assert!(w[1] as usize - w[0] as usize >= size, "blocks overlap");
        }
        let (mapped_before, _) = counts();
        for parity in [0, 1] {
            let mut chain = ptr::null_mut();
            for (i, &b) in blocks.iter().enumerate() {
                if i % 2 == parity {
                    // SAFETY: ours, given back below.
                    unsafe { b.cast::<*mut u8>().write(chain) };
                    chain = b;
                }
            }
            // SAFETY: blocks of bin `bin`, given up.
            unsafe { free_chain(bin, chain) };
        }
        let (again, n) = alloc_chain(bin, 200);
        assert_eq!(n, 200);
        assert!(counts().0 <= mapped_before, "a span was mapped again");
        // SAFETY: the chain just taken, given back.
        unsafe { free_chain(bin, again) };
    }
}
