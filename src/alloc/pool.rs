//! `Pool`: a [`POOL_SIZE`] piece of an arena holding blocks of one size class, and the
//! owner's fast operations on it.
//!
//! A pool's header sits at the pool's first byte, so the pool of a block is found by masking
//! the block's address ([`pool_of`]). Blocks follow the header (and, in an arena's first pool,
//! the arena header); never-used blocks are handed out by bumping a pointer, freed ones are
//! kept on an intrusive singly linked free list threaded through their first word.

use super::heap::Heap;
use super::size_class::{class_block_size, POOL_SIZE};
use crate::sync::{AtomicPtr, AtomicUsize};
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
    /// Back in its arena, owned by the arena manager.
    Free,
}

/// The header at the start of every pool.
///
/// # Invariants
///
/// * **Holder-only fields** (every `Cell`): read and written only by the thread that holds the
///   owner heap (see `Heap`'s invariants), or, while the pool is [`PoolState::Free`], by the
///   arena manager under its lock. This is why a `Cell` suffices and why `Pool` is shared
///   across threads only through raw pointers.
/// * `owner` and `class` are written only while no block of the pool is live (when the arena
///   manager hands the pool out). A thread freeing a live block of the pool therefore reads
///   the values that were current when the block was allocated, which happened before it
///   received the block.
/// * `used` counts blocks handed out and not yet reclaimed by the owner: a block freed by
///   another thread stays counted until the owner takes it off the remote-free list. So
///   `used == 0` means no block is live and no thread is in the middle of freeing one, which is
///   what makes returning the pool (and maybe its arena) to the OS safe.
/// * `remote` and `queue_next` follow the protocol in `remote.rs`.
#[repr(C)]
pub(crate) struct Pool {
    // First cache line: what the owner touches (and `owner`/`class`, which a freeing thread
    // reads).
    pub(crate) owner: AtomicPtr<Heap>,
    pub(crate) free: Cell<*mut Block>,
    pub(crate) bump: Cell<*mut u8>,
    pub(crate) end: Cell<*mut u8>,
    pub(crate) used: Cell<u32>,
    /// `class_block_size(class)`, kept for the bump path.
    pub(crate) block_size: Cell<u32>,
    pub(crate) capacity: Cell<u32>,
    pub(crate) class: Cell<u8>,
    pub(crate) state: Cell<PoolState>,
    /// The never-used blocks (from `bump` to `end`) are untouched OS memory, hence zero.
    pub(crate) fresh: Cell<bool>,
    /// Links in the owner's partial list (both), or in the arena's free-pool list (`next`).
    pub(crate) prev: Cell<*mut Pool>,
    pub(crate) next: Cell<*mut Pool>,
    // Second cache line: what other threads write, so that their CASes do not take the
    // owner's line away.
    pub(crate) remote: AtomicUsize,
    pub(crate) queue_next: AtomicPtr<Pool>,
}

const _: () = assert!(core::mem::offset_of!(Pool, remote) == 64 || cfg!(loom));

/// Size of the pool header, rounded up so the first block is [`BLOCK_ALIGN`]-aligned.
///
/// [`BLOCK_ALIGN`]: super::size_class::BLOCK_ALIGN
pub(crate) const POOL_HEADER: usize = round16(core::mem::size_of::<Pool>());

pub(crate) const fn round16(n: usize) -> usize {
    (n + 15) & !15
}

/// The pool holding the block at `p`.
#[inline(always)]
pub(crate) fn pool_of(p: *const u8) -> *mut Pool {
    ((p as usize) & !(POOL_SIZE - 1)) as *mut Pool
}

impl Pool {
    /// Make the pool at `pool` ready to serve `class` for `owner`.
    ///
    /// # Safety
    /// `pool` is a free pool just taken from the arena manager (no live block, nobody else
    /// refers to it); `first` is the offset of its first block.
    pub(crate) unsafe fn init(
        pool: *mut Pool,
        owner: *mut Heap,
        class: usize,
        first: usize,
        fresh: bool,
    ) {
        let size = class_block_size(class);
        let capacity = (POOL_SIZE - first) / size;
        let base = pool.cast::<u8>();
        // SAFETY: the caller hands us the pool exclusively; `first + capacity * size` is within
        // the pool by the computation above.
        unsafe {
            ptr::write(
                pool,
                Pool {
                    owner: AtomicPtr::new(owner),
                    remote: AtomicUsize::new(0),
                    queue_next: AtomicPtr::new(ptr::null_mut()),
                    free: Cell::new(ptr::null_mut()),
                    bump: Cell::new(base.add(first)),
                    end: Cell::new(base.add(first + capacity * size)),
                    used: Cell::new(0),
                    capacity: Cell::new(capacity as u32),
                    class: Cell::new(class as u8),
                    block_size: Cell::new(size as u32),
                    state: Cell::new(PoolState::Current),
                    fresh: Cell::new(fresh),
                    prev: Cell::new(ptr::null_mut()),
                    next: Cell::new(ptr::null_mut()),
                },
            );
        }
    }

    /// Take a block: from the free list, else from the never-used tail. Returns the block and
    /// whether it is known to be zero, or null when the pool is full. Holder only.
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
        (ptr::null_mut(), false)
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
