//! The remote-free protocol: how a thread frees a block of a pool another heap owns, and how
//! the owner gets the block back.
//!
//! # The protocol
//!
//! Every pool has a remote-free word `Pool::remote`: the head of a Treiber stack of blocks,
//! with bit 0 (`QUEUED`) meaning "this pool is on (or about to be put on) its owner heap's
//! queue". Every heap has a queue of pools, `RemoteQueue`: another Treiber stack, linked
//! through `Pool::queue_next`.
//!
//! * **Freer** (any thread, holding a live block `b` of pool `p`): write `b.next = head`, then
//!   CAS `remote` from `head|q` to `b|QUEUED`. If the word it replaced had no `QUEUED` bit, it
//!   (and only it) then pushes `p` onto the owner heap's queue. After its last successful CAS
//!   the freer never touches `p` again.
//! * **Owner** (the thread holding the heap): takes the whole queue with one swap, reads each
//!   pool's `queue_next`, and only then swaps the pool's `remote` word to 0, taking its blocks
//!   and clearing `QUEUED` at once. It subtracts the blocks from `Pool::used`.
//!
//! # Why it holds
//!
//! * No lost block: a block is pushed while `QUEUED` is set or sets it; `QUEUED` is cleared only
//!   by the owner's swap that also takes every block pushed before it; a block pushed after
//!   that swap finds the bit clear and queues the pool again.
//! * No block handed out twice: the owner takes blocks only by swapping the whole list out;
//!   there is no pop, hence no ABA.
//! * No touch after release (the arena hazard): a pool goes back to its arena only when
//!   `used == 0`. A freer's block is counted in `used` until the owner's swap takes it, and the
//!   swap can take it only after the freer's CAS, which is the freer's last touch of the pool,
//!   except when that CAS set `QUEUED`: then the freer still has to push the pool on the heap
//!   queue, but the owner cannot take that block before it has dequeued the pool, i.e. after
//!   the push. (A pool with `QUEUED` set always has at least one block on its list, so
//!   `used > 0`.)
//! * `queue_next` is written by a freer only after it saw `QUEUED` clear, i.e. after the owner's
//!   swap (AcqRel) that followed the owner's read of `queue_next`: the read happens before the
//!   write.
//! * Heaps are never unmapped, so the owner heap a freer reads from `Pool::owner` is always
//!   valid memory, whichever thread holds it now (or none: an abandoned heap's queue is
//!   drained by whoever adopts or sweeps it).
//!
//! The loom models in `loom-tests/tests/alloc_*.rs` run this code.

use super::pool::{Block, Pool};
use crate::sync::{AtomicPtr, Ordering};
use core::ptr;

const QUEUED: usize = 1;

/// A heap's queue of pools that have blocks on their remote-free list.
pub(crate) struct RemoteQueue {
    head: AtomicPtr<Pool>,
}

impl RemoteQueue {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> RemoteQueue {
            RemoteQueue { head: AtomicPtr::new(ptr::null_mut()) }
        }
    }

    /// Whether any pool is queued (a hint; the owner acts on `take_all`).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    fn push(&self, pool: *mut Pool) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller (the freer that set QUEUED) has the exclusive right to write
            // `queue_next` until the push below publishes the pool.
            unsafe { (*pool).queue_next.store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, pool, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Owner: take every queued pool. Walk the result with [`take_remote_blocks`], which reads
    /// each pool's link before it lets the pool be queued again.
    pub(crate) fn take_all(&self) -> *mut Pool {
        if self.is_empty() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

/// Free `block`, a live block of `pool`, from a thread that does not hold the pool's owner
/// heap. `queue` is the owner heap's queue. Returns true if this call queued the pool (the
/// first remote free since the owner last looked).
///
/// # Safety
/// `block` is a live block of `pool`, not used again by the caller; `queue` belongs to the
/// heap in `pool.owner`.
pub(crate) unsafe fn free_remote(pool: *mut Pool, block: *mut u8, queue: &RemoteQueue) -> bool {
    let block = block.cast::<Block>();
    // SAFETY: `pool` has a live block (ours), so it is not back in its arena: its header is
    // mapped and initialized (Pool invariant on `used`).
    let remote = unsafe { &(*pool).remote };
    let mut word = remote.load(Ordering::Relaxed);
    loop {
        // SAFETY: the block is ours until the CAS below publishes it.
        unsafe { (*block).next = (word & !QUEUED) as *mut Block };
        match remote.compare_exchange_weak(
            word,
            block as usize | QUEUED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => word = now,
        }
    }
    if word & QUEUED == 0 {
        // We set QUEUED: the pool is ours to queue. Its `used` still counts our block, so it
        // stays mapped until the owner dequeues it, which is after this push.
        queue.push(pool);
        return true;
    }
    false
}

/// Owner: take the remote-free blocks of `pool`, a pool just taken from the heap's queue.
/// Returns the pool that followed it in the queue, the list of blocks, and how many there
/// are.
///
/// # Safety
/// The caller holds the pool's owner heap and got `pool` from that heap's `take_all`.
pub(crate) unsafe fn take_remote_blocks(
    pool: *mut Pool,
) -> (*mut Pool, *mut Block, *mut Block, u32) {
    // SAFETY: a queued pool has a counted block, so it is mapped (see the module comment).
    let p = unsafe { &*pool };
    // Read the link before the swap lets a freer queue the pool again (and overwrite it).
    let next = p.queue_next.load(Ordering::Relaxed);
    let word = p.remote.swap(0, Ordering::AcqRel);
    let head = (word & !QUEUED) as *mut Block;
    let mut tail = head;
    let mut count = 0;
    if !head.is_null() {
        count = 1;
        // SAFETY: the blocks were published by freers' Release CASes, which our AcqRel swap
        // read; they are free blocks of this pool, ours now.
        unsafe {
            while !(*tail).next.is_null() {
                tail = (*tail).next;
                count += 1;
            }
        }
    }
    (next, head, tail, count)
}
