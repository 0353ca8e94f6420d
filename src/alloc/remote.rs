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
//!   the freer never touches `p` again, nor the heap (unless that push made it the heap's
//!   holder: an abandoned heap nobody held, see `RemoteQueue`).
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
//! * The owner heap a freer reads from `Pool::owner` is valid memory until the freer's push:
//!   a heap is retired only when it owns no pool, and the freer's block keeps the pool owned
//!   (counted in `used`) until the holder dequeues it. After its push the freer touches the
//!   heap only if the push made it the holder (`RemoteQueue`: the queue word is also the
//!   heap's holder token), and a holder is who retires a heap.
//!
//! The loom models in `loom-tests/tests/alloc_*.rs` run this code.

use super::pool::{Block, Pool};
use crate::sync::{AtomicUsize, Ordering};
use core::ptr;

const QUEUED: usize = 1;

/// The word of a heap's queue when no thread holds the heap (its queue is then empty).
const UNHELD: usize = 1;

/// A heap's queue of pools that have blocks on their remote-free list, and the heap's holder
/// token.
///
/// One word: the head of a Treiber stack of pools (linked through `Pool::queue_next`) while
/// some thread holds the heap, or `UNHELD` (no pool queued) while none does. Keeping both in
/// one word is what lets a freer find out, in the very CAS that queues its pool, that nobody
/// will take the pool back; it then becomes the holder itself (see `registry.rs`):
///
/// * a freer pushing onto `UNHELD` replaces it by its pool and holds the heap from then on
///   ([`Pushed::Claimed`]); onto anything else, it just pushes ([`Pushed::Queued`]) and never
///   touches the heap again;
/// * the holder takes the whole stack with one swap ([`take_all`](Self::take_all)), and lets
///   go of the heap with a CAS from an empty stack to `UNHELD`
///   ([`try_let_go`](Self::try_let_go)), which fails while a pool is queued: a holder never
///   lets go with work left, and a heap with work always has a holder;
/// * an adopter claims a heap nobody holds with a CAS from `UNHELD` to an empty stack
///   ([`try_claim`](Self::try_claim)).
///
/// The claiming CASes are `Acquire` and the letting-go CAS `Release`: one holder's accesses
/// to the heap happen before the next holder's.
///
/// Other threads' CASes write this word, so it has a cache line of its own: in the heap it
/// sat on the line of the holder's fallback counters, which the holder writes on every
/// request above the pools' limit (`docs/scaling.md`).
#[repr(align(64))]
pub(crate) struct RemoteQueue {
    word: AtomicUsize,
}

/// What [`RemoteQueue::push`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pushed {
    /// The pool is queued for the heap's holder.
    Queued,
    /// Nobody held the heap: the pushing thread holds it now, and must take the pool back
    /// itself and let go of the heap (`HeapRegistry::let_go`).
    Claimed,
}

impl RemoteQueue {
    crate::sync::maybe_const_fn! {
        /// A queue whose heap is held by its creator.
        pub(crate) fn new() -> RemoteQueue {
            RemoteQueue { word: AtomicUsize::new(0) }
        }
    }

    /// Whether any pool is queued (a hint for the holder, which acts on `take_all`).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.word.load(Ordering::Relaxed) & !UNHELD == 0
    }

    fn push(&self, pool: *mut Pool) -> Pushed {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let next = if word == UNHELD { 0 } else { word };
            // SAFETY: the caller (the freer that set QUEUED) has the exclusive right to write
            // `queue_next` until the push below publishes the pool.
            unsafe {
                (*pool)
                    .queue_next
                    .store(next as *mut Pool, Ordering::Relaxed)
            };
            // Release: publishes `queue_next` (and the blocks, published earlier) to the
            // holder. Acquire: a claim makes the last holder's accesses visible.
            match self.word.compare_exchange_weak(
                word,
                pool as usize,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if word == UNHELD => return Pushed::Claimed,
                Ok(_) => return Pushed::Queued,
                Err(now) => word = now,
            }
        }
    }

    /// Holder: take every queued pool. Walk the result with [`take_remote_blocks`], which reads
    /// each pool's link before it lets the pool be queued again.
    pub(crate) fn take_all(&self) -> *mut Pool {
        if self.is_empty() {
            return ptr::null_mut();
        }
        self.word.swap(0, Ordering::Acquire) as *mut Pool
    }

    /// Holder: let go of the heap, if no pool is queued. Returns false (still holding) when
    /// one is: take it back first.
    pub(crate) fn try_let_go(&self) -> bool {
        self.word
            .compare_exchange(0, UNHELD, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Claim the heap if nobody holds it. Returns whether the caller holds it now.
    pub(crate) fn try_claim(&self) -> bool {
        self.word
            .compare_exchange(UNHELD, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether nobody holds the heap (exact only when no thread races with the caller).
    #[cfg(loom)]
    pub(crate) fn is_unheld(&self) -> bool {
        self.word.load(Ordering::Relaxed) == UNHELD
    }
}

/// What [`free_remote`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RemoteFree {
    /// The pool was queued already: the block waits on its list.
    Listed,
    /// This free queued the pool on its owner heap's queue, see [`Pushed`].
    Pushed(Pushed),
}

/// Free `block`, a live block of `pool`, from a thread that does not hold the pool's owner
/// heap. `queue` is the owner heap's queue. Says whether this call queued the pool (the first
/// remote free since the owner last looked) and, if so, whether it now holds the heap. After
/// it returns anything but `Pushed(Claimed)`, the caller must not touch the heap again: the
/// holder may take the block back, release the pool and retire the heap at any moment.
///
/// # Safety
/// `block` is a live block of `pool`, not used again by the caller; `queue` belongs to the
/// heap in `pool.owner`.
pub(crate) unsafe fn free_remote(
    pool: *mut Pool,
    block: *mut u8,
    queue: &RemoteQueue,
) -> RemoteFree {
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
        // stays mapped, and owned by its heap (which stays mapped), until the holder dequeues
        // it, which is after this push.
        return RemoteFree::Pushed(queue.push(pool));
    }
    RemoteFree::Listed
}

/// Owner: take the remote-free blocks of `pool`, a pool just taken from the heap's queue.
/// Returns the pool that followed it in the queue, the list of blocks, and how many there
/// are. Bound (audit of issue 13): a walk of the blocks freed into the pool since it was last
/// taken (to count them and find the tail), at most the pool's capacity, once per block.
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
