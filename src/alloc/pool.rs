//! `Pool`: the header of a [`POOL_SIZE`] piece of an arena holding blocks of one size class,
//! and the owner's fast operations on it.
//!
//! A pool's memory holds only blocks. Its header lives in the arena's first pool, the
//! *metadata pool*, in an array of headers (one per pool, after the arena header), so the
//! header of a block's pool is found from the block's address by masking and indexing
//! ([`pool_of`]): `arena = addr & !(ARENA_SIZE - 1)`, `index = (addr % ARENA_SIZE) /
//! POOL_SIZE`. Why not at the start of each pool, as CPython does: headers 16 KiB apart all
//! fall into the same L1 cache set (and each on its own page), so a program using more than
//! a handful of pools at once misses the cache on every header; packed together, the headers
//! of a whole arena take 8 KiB of consecutive lines. (mimalloc keeps its page headers
//! together at the start of a segment for the same reason.)
//!
//! Never-used blocks are handed out by bumping a pointer, freed ones are kept on an intrusive
//! singly linked free list threaded through their first word, or, freed by other threads, in
//! the messages they came back in (`remote_message.rs`): the blocks a message carries are
//! handed out by their offsets, without reading or writing the blocks themselves.

use super::remote::RemoteList;
use super::remote_message;
use super::size_class::{class_block_size, class_step, ARENA_SIZE, POOLS_PER_ARENA, POOL_SIZE};
use crate::sync::AtomicPtr;
use core::cell::Cell;
use core::ptr;

/// A free block: its first word links to the next free block.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
}

/// Where a pool stands with respect to its owner heap's lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PoolState {
    /// The heap allocates from it first (`ClassQueue::current`).
    Current,
    /// On the heap's list of pools with free blocks (`ClassQueue::partial`).
    Partial,
    /// Every block is handed out; on no list until one comes back.
    Full,
    /// Empty, kept by its owner heap for the next pool it needs (`Heap`'s spare pools,
    /// linked through `next`), instead of going back to its arena at once.
    Spare,
    /// Back in its arena, owned by the arena manager.
    Free,
    /// Part of a large block's head (`Arena::end..`, `large_blocks.rs`): no heap's, no block
    /// of a size class in it (its `class` is [`NO_CLASS`]).
    #[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
    LargeBlock,
}

/// A pool's owner as this layer sees it: an opaque type, so that pools do not depend on the
/// heaps above them. Every non-null `*mut PoolOwner` is a `*mut Heap` cast by `heap.rs`
/// (`Heap::as_owner` / `Heap::from_owner`), the only place that converts it back.
#[repr(C)]
pub(crate) struct PoolOwner {
    _opaque: [u8; 0],
}

/// The header at the start of every pool.
///
/// # Invariants
///
/// * **Holder-only fields** (every `Cell`): read and written only by the thread that holds the
///   owner heap (see `Heap`'s invariants), or, while the pool is [`PoolState::Free`], by the
///   arena manager under its lock. This is why a `Cell` suffices and why `Pool` is shared
///   across threads only through raw pointers.
/// * `owner`, `class`, `block_size` and `step` are written only while no block of the pool is
///   live (when the arena manager hands the pool out, or makes a heap's spare a pool of
///   another class: `ArenaManager::reinit_pool`). A thread freeing a live block of the pool
///   therefore reads the values that were current when the block was allocated, which
///   happened before it received the block.
/// * `class` and `capacity` are also read by `stats()` from any thread, under the arena lock
///   (`ArenaManager::for_each_pool_in_use`), while the holders run: so they are written only
///   under that lock while the pool is handed out (`Pool::init`, from `acquire_pool` and
///   `reinit_pool`), and the holder's own writes (`reset_empty`) leave them alone.
/// * While a block of the pool is live, `owner` is a heap (`Heap::as_owner` of the heap that
///   took the pool: `acquire_pool` is only called by heaps), never null nor `thread.rs`'s
///   `DEAD`. The free fast path relies on it: it compares the thread's raw `HEAP` value
///   (null, `DEAD` or a heap) with `owner`, with no test of its own
///   (`Heap::free_own_block`).
/// * `used` counts blocks handed out and not yet reclaimed by the owner: a block freed by
///   another thread stays counted until the owner takes it off the remote-free list. So
///   `used == 0` means no block is live and no thread is in the middle of freeing one, which is
///   what makes returning the pool (and maybe its arena) to the OS safe.
/// * While the pool is [`PoolState::LargeBlock`] (part of a large block, `large_blocks.rs`),
///   its `class` is [`NO_CLASS`]; the block's first pool keeps the block's arena count in
///   `capacity` and, in `owner`, the heap that allocated the block or null (written only by
///   the allocating thread before the block is handed out, not again while it lives; read,
///   once `check_block` found the block live, by the thread that frees or resizes it:
///   `LargeCache` keeps only its own, and `ForeignFrees` in `large_cache.rs` rests on it).
/// * `remote` and `queue_next` follow the protocol in `remote.rs` (`remote`'s own invariants
///   are `RemoteList`'s).
/// * The pool's free blocks not yet handed out again are: those on `free` (linked through
///   `Block::next`, null-terminated), the tail (from `bump` to the end of the pool's last
///   block), and those on `messages`: a null-terminated chain of messages
///   (`remote_message.rs`) taken back from `remote`, each a free block of this pool standing
///   for itself and the blocks it carries; of the first message's carried blocks, those
///   whose offsets are from `carried_at` to `carried_end` are still free (the others were
///   handed out), of every other message all. These sets are disjoint, none of their blocks
///   is counted in `used`, and `messages` is null in a pool whose blocks carry nothing
///   (`remote_message::carries`: their lists go onto `free`).
/// * `end` is null while `messages` is not (the tail is set aside until the messages are
///   handed out: `take_block`), else the end of the pool's last block
///   (`capacity * block_size` bytes into its memory).
#[repr(C, align(64))]
pub(crate) struct Pool {
    // First cache line: what other threads read or write. A freeing thread reads `owner` and
    // `step`; freers push onto `remote` and link `queue_next` (one CAS per batch of blocks,
    // `remote_batch.rs`); the owner writes the rest only on slow paths (a pool changing
    // lists or state). So the owner's per-block writes below never take this line from a
    // freer, and a freer's CAS never takes the owner's per-block line.
    pub(crate) owner: AtomicPtr<PoolOwner>,
    pub(crate) remote: RemoteList,
    pub(crate) queue_next: AtomicPtr<Pool>,
    /// Links in the owner's partial list (both), or in the arena's free-pool list (`next`).
    pub(crate) prev: Cell<*mut Pool>,
    pub(crate) next: Cell<*mut Pool>,
    /// `class_block_size(class)`, kept for the bump path.
    pub(crate) block_size: Cell<u32>,
    pub(crate) capacity: Cell<u32>,
    pub(crate) class: Cell<u8>,
    pub(crate) state: Cell<PoolState>,
    /// The never-used blocks (from `bump` to `end`) are untouched OS memory, hence zero.
    pub(crate) fresh: Cell<bool>,
    /// `class_step(class)`, kept for the free fast path's test (`fits`).
    pub(crate) step: Cell<u8>,
    _to_second_line: [u8; FIRST_LINE_PAD],
    // Second cache line: what the owner writes on every allocation and free.
    pub(crate) free: Cell<*mut Block>,
    pub(crate) bump: Cell<*mut u8>,
    pub(crate) end: Cell<*mut u8>,
    pub(crate) used: UsedCount,
    /// Of the first message on `messages`, the offsets of the carried blocks not handed out
    /// yet: from `carried_at` up to `carried_end` (both null when `messages` is).
    pub(crate) carried_at: Cell<*const u16>,
    pub(crate) carried_end: Cell<*const u16>,
    /// Messages taken back from `remote` whose blocks are free (see the invariants).
    pub(crate) messages: Cell<*mut Block>,
}

/// Bytes from the end of `step` to the second cache line (`free`), checked below; loom's
/// larger atomics make its first group longer, where the line split does not matter.
const FIRST_LINE_PAD: usize = 12;

/// `Pool::used`: written only by the pool's holder (a plain load and store, the same code as
/// a `Cell<u32>`), and also read by `stats()` under the arena lock while the holder runs,
/// hence atomic. Never used to synchronize: loom need not model it.
pub(crate) struct UsedCount(crate::sync::unmodelled::AtomicU32);

impl UsedCount {
    #[inline(always)]
    pub(crate) fn get(&self) -> u32 {
        self.0.load(crate::sync::unmodelled::Ordering::Relaxed)
    }
    #[inline(always)]
    pub(crate) fn set(&self, v: u32) {
        self.0.store(v, crate::sync::unmodelled::Ordering::Relaxed)
    }
}

/// The `class` of a pool that holds no size class's blocks (a large block's, see
/// [`PoolState::LargeBlock`]): `Pool::check_class` fails for it whatever layout a free names.
#[cfg_attr(any(loom, not(target_os = "linux")), allow(dead_code))]
pub(crate) const NO_CLASS: u8 = u8::MAX;
const _: () = assert!(super::size_class::NUM_SIZE_CLASSES < NO_CLASS as usize);

/// Offset of the first pool header in an arena (the arena header comes before it).
pub(crate) const HEADERS_OFFSET: usize = 128;

/// Bytes per pool header in the arena's header array.
pub(crate) const HEADER_SIZE: usize = core::mem::size_of::<Pool>();

/// Pools at the start of each arena that hold the arena header and the pool headers instead
/// of blocks (one in normal builds; loom's larger atomics may need two).
pub(crate) const METADATA_POOLS: usize =
    (HEADERS_OFFSET + POOLS_PER_ARENA * HEADER_SIZE).div_ceil(POOL_SIZE);

#[cfg(not(loom))]
const _: () = {
    assert!(HEADER_SIZE == 128);
    assert!(core::mem::offset_of!(Pool, step) < 64);
    assert!(core::mem::offset_of!(Pool, free) == 64);
    assert!(core::mem::offset_of!(Pool, messages) < 128 - 8);
    assert!(METADATA_POOLS == 1);
};

/// The header of the pool holding the block at `p` (an address inside an arena).
#[inline(always)]
pub(crate) fn pool_of(p: *const u8) -> *mut Pool {
    let addr = p as usize;
    let arena = addr & !(ARENA_SIZE - 1);
    let index = (addr & (ARENA_SIZE - 1)) / POOL_SIZE;
    (arena + HEADERS_OFFSET + index * HEADER_SIZE) as *mut Pool
}

/// The header of pool `index` of the arena at `arena_base`.
pub(crate) fn pool_header(arena_base: *mut u8, index: usize) -> *mut Pool {
    (arena_base as usize + HEADERS_OFFSET + index * HEADER_SIZE) as *mut Pool
}

/// The index in its arena of the pool whose header is `pool`.
pub(crate) fn pool_index(pool: *const Pool) -> usize {
    ((pool as usize & (ARENA_SIZE - 1)) - HEADERS_OFFSET) / HEADER_SIZE
}

/// The memory (first block) of the pool whose header is `pool`.
pub(crate) fn pool_memory(pool: *const Pool) -> *mut u8 {
    let arena = pool as usize & !(ARENA_SIZE - 1);
    (arena + pool_index(pool) * POOL_SIZE) as *mut u8
}

impl Pool {
    /// Make the pool whose header is `pool` ready to serve `class` for `owner`.
    ///
    /// # Safety
    /// `pool` is the header of a free pool just taken from the arena manager (no live block,
    /// nobody else refers to it).
    pub(crate) unsafe fn init(pool: *mut Pool, owner: *mut PoolOwner, class: usize, fresh: bool) {
        let size = class_block_size(class);
        let capacity = POOL_SIZE / size;
        let base = pool_memory(pool);
        // SAFETY: the caller hands us the pool exclusively; `capacity * size <= POOL_SIZE`.
        unsafe {
            ptr::write(
                pool,
                Pool {
                    owner: AtomicPtr::new(owner),
                    free: Cell::new(ptr::null_mut()),
                    bump: Cell::new(base),
                    end: Cell::new(base.add(capacity * size)),
                    used: UsedCount(crate::sync::unmodelled::AtomicU32::new(0)),
                    carried_at: Cell::new(ptr::null()),
                    carried_end: Cell::new(ptr::null()),
                    messages: Cell::new(ptr::null_mut()),
                    block_size: Cell::new(size as u32),
                    capacity: Cell::new(capacity as u32),
                    class: Cell::new(class as u8),
                    state: Cell::new(PoolState::Current),
                    fresh: Cell::new(fresh),
                    step: Cell::new(class_step(class) as u8),
                    prev: Cell::new(ptr::null_mut()),
                    next: Cell::new(ptr::null_mut()),
                    remote: RemoteList::new(),
                    queue_next: AtomicPtr::new(ptr::null_mut()),
                    _to_second_line: [0; FIRST_LINE_PAD],
                },
            );
        }
    }

    /// Abort if a block of this pool is being freed with a layout of another size class (the
    /// caller broke `dealloc`'s contract; going on would put the block on the wrong list).
    /// Readable by any thread holding a live block: `class` is fixed while blocks are live.
    #[inline]
    pub(crate) fn check_class(&self, class: usize) {
        if self.class.get() as usize != class {
            super::os::fatal(
                "pyheap: dealloc called with a layout of another size class than alloc",
            );
        }
    }

    /// Whether a block of this pool freed with a layout of `size` bytes may skip the size
    /// class computation: `size` is at most the block size and less than a class step below
    /// it (`class_step`). For an alignment of at most 8 that is exactly "`size` is of this
    /// pool's class". Aligned to 16, a request rounds up to a multiple of 16 first: one of this
    /// class may fail the test (then the caller computes the class, as it would have anyway),
    /// and one of the class above passes it for a pool whose block size is not a multiple of
    /// 16 (8, 40 or 56 bytes), a block such a request never gets (it is not 16-aligned): only a
    /// caller that freed with another alignment than it allocated with does that, and the
    /// block, whose size is at least `size`, goes back to its own pool as it should.
    /// Readable by any thread holding a live block, as `class`.
    #[inline(always)]
    pub(crate) fn fits(&self, size: usize) -> bool {
        (self.block_size.get() as usize).wrapping_sub(size) < self.step.get() as usize
    }

    /// Take a block: from the free list, else from the messages, else from the never-used
    /// tail (freed blocks before fresh ones, as CPython does). Returns the block and whether
    /// it is known to be zero, or null when the pool is full. Holder only.
    ///
    /// While the pool has messages its tail is set aside (`end` is null, see the
    /// invariants), so that the paths of a pool that has none (a thread freeing its own
    /// blocks) are those they were before messages: the tail's test fails for a pool with
    /// messages, and only then are they looked at.
    #[inline(always)]
    pub(crate) fn take_block(&self) -> (*mut u8, bool) {
        let block = self.free.get();
        if !block.is_null() {
            // SAFETY: blocks on the free list are free blocks of this pool, owned by the
            // holder, whose first word links to the next one.
            self.free.set(unsafe { (*block).next });
            self.used.set(self.used.get().wrapping_add(1));
            return (block.cast(), false);
        }
        let bump = self.bump.get();
        if bump < self.end.get() {
            let size = self.block_size.get() as usize;
            // SAFETY: `bump + size <= end`, within the pool.
            self.bump.set(unsafe { bump.add(size) });
            self.used.set(self.used.get().wrapping_add(1));
            return (bump, self.fresh.get());
        }
        let message = self.messages.get();
        if !message.is_null() {
            self.used.set(self.used.get().wrapping_add(1));
            let at = self.carried_at.get();
            if at != self.carried_end.get() {
                // SAFETY: `at` is an offset of the first message on `messages`, of a block
                // still free (the invariants).
                let (block, next) = unsafe { remote_message::carried_block(at) };
                self.carried_at.set(next);
                return (block, false);
            }
            // SAFETY: the first message is free, all it carries handed out; the next one (if
            // any) and all it carries are free (the invariants).
            unsafe { self.start_message((*message).next) };
            return (message.cast(), false);
        }
        (ptr::null_mut(), false)
    }

    /// Make `message` the first on `messages`, all its carried blocks free, and ask for the
    /// line of the one after it (its offsets are read some allocations later); with null
    /// (no message left), give the tail back (`end`). Holder only.
    ///
    /// # Safety
    /// `message` is null or a message of this pool whose blocks are all free, taken back
    /// from `remote`, heading the rest of the chain (the invariants).
    #[inline(always)]
    unsafe fn start_message(&self, message: *mut Block) {
        self.messages.set(message);
        if message.is_null() {
            self.carried_at.set(ptr::null());
            self.carried_end.set(ptr::null());
            let tail_end = self.capacity.get() as usize * self.block_size.get() as usize;
            self.end.set(pool_memory(self).wrapping_add(tail_end));
            return;
        }
        self.end.set(ptr::null_mut());
        // SAFETY: the caller's contract; a message's link and count share its first line.
        let (at, end) = unsafe {
            prefetch_write((*message).next.cast());
            remote_message::carried_offsets(message)
        };
        self.carried_at.set(at);
        self.carried_end.set(end);
    }

    /// Take back a list of blocks freed by other threads, as taken from `remote`: messages
    /// from `top` down to `bottom` (whose link is null). The caller uncounts them from
    /// `used`. O(1): puts the messages on `messages` (or, if this pool's blocks carry
    /// nothing, the list onto `free`), with no access to the blocks they carry. Holder only.
    ///
    /// # Safety
    /// The caller holds the owner heap and took the list from this pool's `RemoteList`
    /// (whose invariants, and those of `remote_message.rs`, it satisfies).
    #[inline(always)]
    pub(crate) unsafe fn take_back(&self, top: *mut Block, bottom: *mut Block) {
        // SAFETY (all three branches): the list's messages are free blocks of this pool,
        // ours now (the caller's contract): we may write their links, and they join the
        // free blocks as the invariants say.
        unsafe {
            if !remote_message::carries(self.block_size.get()) {
                (*bottom).next = self.free.get();
                self.free.set(top);
                return;
            }
            let first = self.messages.get();
            if first.is_null() {
                self.start_message(top);
            } else {
                // After the first message, whose carried blocks are being handed out: the
                // offsets left of it stay right.
                (*bottom).next = (*first).next;
                (*first).next = top;
            }
        }
    }

    /// Make an empty pool (`used == 0`) hand its blocks out again from its first one, as a
    /// pool just initialized for its class does: its free list and messages dropped, its
    /// tail the whole pool. Writes only holder-only fields that no other thread reads (the
    /// owner's line, `free` to `messages`, and `fresh`): `class` and `capacity`, which
    /// `stats()` reads under the arena lock while holders run, stay as they are. Holder only.
    pub(crate) fn reset_empty(&self) {
        debug_assert_eq!(self.used.get(), 0, "reset_empty on a pool with live blocks");
        let base = pool_memory(self);
        let tail_end = self.capacity.get() as usize * self.block_size.get() as usize;
        self.free.set(ptr::null_mut());
        self.bump.set(base);
        self.end.set(base.wrapping_add(tail_end));
        self.carried_at.set(ptr::null());
        self.carried_end.set(ptr::null());
        self.messages.set(ptr::null_mut());
        // Its blocks were handed out before: not known to be zero.
        self.fresh.set(false);
    }

    /// Put a block of this pool back on the local free list and return the new `used`
    /// (`u32::MAX` if the pool had no live block: a double free). Holder only.
    ///
    /// # Safety
    /// `block` is a live block of this pool, not used again by the caller.
    #[inline(always)]
    pub(crate) unsafe fn put_block(&self, block: *mut u8) -> u32 {
        let block = block.cast::<Block>();
        // SAFETY: the block is ours now and at least 8 bytes, 8-aligned.
        unsafe { (*block).next = self.free.get() };
        self.free.set(block);
        let used = self.used.get().wrapping_sub(1);
        self.used.set(used);
        used
    }
}

/// Ask the CPU to start loading the line at `p`, to be written (the remote-free paths' next
/// pool header or message, last written by another core). Only a hint: nothing is accessed,
/// any address (null included) is allowed. `prefetchw` where the build targets CPUs that
/// have it (`-C target-feature=+prfchw`, or a `target-cpu` with it), `prefetcht0` otherwise.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse", not(loom)))]
    // SAFETY: `_mm_prefetch` is a hint that never faults and never reads memory
    // architecturally; SSE is enabled (the cfg).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse", not(loom))))]
    let _ = p;
}
