//! Remote frees in batches: a thread that frees blocks of another heap's pool keeps them, per
//! size class, on a chain of its own, and publishes the whole chain on the pool's
//! `RemoteList` with one CAS (`free_remote`), instead of one CAS per block. The chain is one
//! of *messages* (`remote_message.rs`): blocks that carry the offsets of other blocks of the
//! batch, so that the freer writes into one block of every `1 + carry_limit` (4 blocks of 16
//! bytes, 12 of 32, 28 of 64, a whole batch of 144 bytes or more: see
//! [`carry_limit`]) rather than into each.
//!
//! Why: each remote free used to be one locked CAS on the pool's remote-free word, right
//! after a store of the block's link into a line the allocating core wrote last; the CAS
//! waits for that store to drain (69% of the consumer's free path in the producer/consumer
//! profile, `BENCHMARKS.md`). Adding a block to a thread-local batch is plain stores, which
//! the store buffer overlaps; the CAS (and the bounce of the pool's remote-free line between
//! the freer's and the owner's cores) comes once per batch. snmalloc batches its remote
//! frees by destination in the same way (a message per destination), and jemalloc's tcache
//! flushes its cached blocks in batches.
//!
//! # When a batch is published (flushed)
//!
//! * a free of the same class into another pool (the batch holds blocks of one pool);
//! * the batch reaches [`batch_limit`] blocks (at most [`BATCH_BYTES`] bytes, 64 blocks);
//! * the thread's heap runs out of pools of a class and is about to take a new one
//!   (`Heap::alloc_slow`): a thread gives back what it holds before it grows;
//! * the thread gives its heap up (`HeapRegistry::abandon`, at thread exit), before anything
//!   else: so an abandoned heap has no batch, and a heap an adopter or a claiming freer comes
//!   to hold has none either.
//!
//! A thread with no heap (not made yet, or given up at exit: `thread.rs`) frees directly,
//! one block per CAS (`Global::free_without_heap`), so nothing is ever left in a batch after
//! its thread's exit. A child process after `fork()` inherits the forking thread's heap with
//! its batches: they are that thread's own state, consistent at any point the thread can
//! call `fork()`, and publishing them in the child onto pools of heaps whose threads did not
//! survive the fork is a remote free like any other (`fork.rs`).
//!
//! # Bound on what a thread holds unpublished
//!
//! At most one batch per size class, each of at most [`BATCH_BYTES`] (4 KiB) or 64 blocks:
//! with the 35 classes, at most 126 KiB of blocks (128,384 bytes, `max_batched_bytes`), and at most 35 pools
//! of other heaps kept from going back to their arenas (a pool with a block in a batch is in
//! use) by a thread that freed remotely once and then sleeps without allocating.
//!
//! # Statistics
//!
//! A block is counted as freed when it enters a batch (`ClassQueue::remote_frees`, as for a
//! block on a remote-free list not yet taken back), so `stats()` shows it free; its pool
//! still counts it in `used`, as for any remote free until the owner takes it back.

use super::pool::{Block, Pool};
use super::remote_message::{self, carry_limit};
use super::size_class::{class_block_size, NUM_SIZE_CLASSES};
use core::cell::Cell;
use core::ptr;

/// Bytes of blocks a batch holds at most before it is published.
pub(crate) const BATCH_BYTES: usize = 4096;

/// Blocks a batch holds at most, whatever their size.
const BATCH_MAX_BLOCKS: usize = 64;

/// Blocks a batch of `class` holds at most: [`BATCH_BYTES`] of them, at most 64 (8 blocks of
/// 512 bytes, 64 of 64 bytes or less).
pub(crate) const fn batch_limit(class: usize) -> u32 {
    let n = BATCH_BYTES / class_block_size(class);
    (if n > BATCH_MAX_BLOCKS {
        BATCH_MAX_BLOCKS
    } else {
        n
    }) as u32
}

/// A class's limits for its batches (see [`BATCH_LIMITS`]).
#[derive(Clone, Copy)]
pub(crate) struct BatchLimits {
    /// [`batch_limit`]: blocks in a batch.
    pub(crate) blocks: u32,
    /// [`carry_limit`]: blocks a message carries besides itself.
    pub(crate) carry: u32,
}

/// [`batch_limit`] and [`carry_limit`] of every class, for the free path (one line).
pub(crate) static BATCH_LIMITS: [BatchLimits; NUM_SIZE_CLASSES] = {
    let mut limits = [BatchLimits {
        blocks: 0,
        carry: 0,
    }; NUM_SIZE_CLASSES];
    let mut class = 0;
    while class < NUM_SIZE_CLASSES {
        limits[class] = BatchLimits {
            blocks: batch_limit(class),
            carry: carry_limit(class),
        };
        class += 1;
    }
    limits
};

/// The most bytes of blocks one thread can hold in batches (the bound in the module doc).
#[cfg(test)]
pub(crate) const fn max_batched_bytes() -> usize {
    let mut total = 0;
    let mut class = 0;
    while class < NUM_SIZE_CLASSES {
        total += batch_limit(class) as usize * class_block_size(class);
        class += 1;
    }
    total
}

const _: () = assert!(BATCH_BYTES / 512 >= 2, "a batch holds at least two blocks");

/// A chain of messages (`remote_message.rs`) of one pool, `count` blocks in all, not yet
/// published (see [`RemoteBatch::take`]).
pub(crate) struct Chain {
    pub(crate) pool: *mut Pool,
    pub(crate) top: *mut Block,
    pub(crate) bottom: *mut Block,
    pub(crate) count: u32,
}

/// One size class's batch of remote frees in a heap (`ClassQueue::batch`): blocks of one pool
/// of another heap, freed by the heap's thread and not yet published.
///
/// # Invariants
///
/// * Holder-only, as the heap's other `Cell`s: only the thread holding the heap touches it.
/// * Empty (`pool` null, `count` 0) or: `pool` is a pool of another heap than this one, of the
///   batch's class; the batch holds `count` (1 to the class's [`batch_limit`]) live blocks of
///   it that the heap's thread freed, as a chain of messages (`remote_message.rs`, whose
///   invariants they keep) linked from `top` through `Block::next` down to `bottom`, whose
///   link is not set (the publishing CAS writes it, `RemoteList`); every message but `top`
///   carries its class's [`carry_limit`] blocks, `top` carries `carried`.
/// * Every block in a batch is still counted in its pool's `used`, exactly as a block on the
///   pool's remote-free list: so the pool stays owned by its heap (it cannot go back to its
///   arena, whose memory stays mapped, nor change owner), and that heap stays mapped (it owns
///   the pool), until the batch is published and the owner takes the blocks back. This is
///   what makes publishing later, from the freer's heap, as sound as a push in flight.
/// * The heap's `batched` mask has the class's bit set exactly when the batch is not empty.
/// * A heap nobody is bound to (abandoned, or held by an adopter or a claiming freer that
///   got it from the abandoned list) has every batch empty: its thread published them before
///   giving it up.
pub(crate) struct RemoteBatch {
    pool: Cell<*mut Pool>,
    top: Cell<*mut Block>,
    bottom: Cell<*mut Block>,
    count: Cell<u16>,
    carried: Cell<u16>,
}

const _: () = assert!(BATCH_MAX_BLOCKS <= u16::MAX as usize);

/// What [`RemoteBatch::add`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Added {
    /// The block joined the batch.
    Batched,
    /// The block joined the batch, which is now full: publish it.
    Full,
    /// The batch is empty or of another pool: the block was not added.
    OtherPool,
}

impl RemoteBatch {
    /// An empty batch.
    pub(crate) const fn new() -> RemoteBatch {
        RemoteBatch {
            pool: Cell::new(ptr::null_mut()),
            top: Cell::new(ptr::null_mut()),
            bottom: Cell::new(ptr::null_mut()),
            count: Cell::new(0),
            carried: Cell::new(0),
        }
    }

    /// Add `block` of `pool` if the batch holds blocks of `pool` (`limits` are the class's).
    /// The free path's common case: plain stores, into the top message only unless the block
    /// starts a new one. (An empty batch's pool is null, never a block's pool.)
    ///
    /// # Safety
    /// The caller holds the heap; `block` is a live block of `pool` (another heap's pool, of
    /// the batch's class), freed by the caller and not used again.
    #[inline(always)]
    pub(crate) unsafe fn add(
        &self,
        pool: *mut Pool,
        block: *mut u8,
        limits: &BatchLimits,
    ) -> Added {
        if self.pool.get() != pool {
            return Added::OtherPool;
        }
        let carried = self.carried.get();
        if u32::from(carried) < limits.carry {
            // SAFETY: `top` is the batch's top message, ours, carrying `carried` blocks, fewer
            // than the limit; the block is ours now and of the same pool (caller's contract).
            unsafe { remote_message::carry(self.top.get(), u32::from(carried), block) };
            self.carried.set(carried + 1);
        } else {
            let block = block.cast::<Block>();
            // SAFETY: the block is ours now (caller's contract), of the batch's class; the
            // chain below it is the batch.
            unsafe { remote_message::start(block, self.top.get(), limits.carry) };
            self.top.set(block);
            self.carried.set(0);
        }
        let count = self.count.get() + 1;
        self.count.set(count);
        if u32::from(count) >= limits.blocks {
            Added::Full
        } else {
            Added::Batched
        }
    }

    /// Make `block` of `pool` the whole batch (a message carrying nothing yet; `carry` is the
    /// class's [`carry_limit`]), and return what the batch held (to publish).
    ///
    /// # Safety
    /// As for [`add`](Self::add).
    pub(crate) unsafe fn restart(&self, pool: *mut Pool, block: *mut u8, carry: u32) -> Chain {
        let block = block.cast::<Block>();
        let old = self.take();
        // SAFETY: forwarded contract.
        unsafe { remote_message::start(block, ptr::null_mut(), carry) };
        self.pool.set(pool);
        self.top.set(block);
        self.bottom.set(block);
        self.count.set(1);
        old
    }

    /// Empty the batch, returning what it held (`count` 0 if it was empty).
    pub(crate) fn take(&self) -> Chain {
        self.carried.set(0);
        Chain {
            pool: self.pool.replace(ptr::null_mut()),
            top: self.top.replace(ptr::null_mut()),
            bottom: self.bottom.replace(ptr::null_mut()),
            count: u32::from(self.count.replace(0)),
        }
    }

    /// Whether the batch is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.count.get() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_at_least_two_blocks_and_at_most_the_bytes() {
        for (class, &limit) in BATCH_LIMITS.iter().enumerate() {
            let n = batch_limit(class) as usize;
            assert!(n >= 2, "class {class}");
            assert!(n * class_block_size(class) <= BATCH_BYTES, "class {class}");
            assert_eq!(limit.blocks as usize, n);
            let carry = carry_limit(class) as usize;
            assert_eq!(limit.carry as usize, carry);
            assert!(carry < n.max(64), "class {class}");
            let size = class_block_size(class);
            assert!(size < 16 || 10 + 2 * carry <= size, "class {class}");
        }
        assert_eq!(batch_limit(NUM_SIZE_CLASSES - 1), 8);
        assert_eq!(
            max_batched_bytes(),
            128_384,
            "the bound in the module doc: 126 KiB"
        );
    }
}
