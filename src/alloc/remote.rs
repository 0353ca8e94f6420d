//! The remote-free protocol: how a thread frees a block of a pool another heap owns, and how
//! the owner gets the block back.
//!
//! # The protocol
//!
//! Every pool has a remote-free word `Pool::remote` ([`RemoteList`]): a Treiber stack of
//! blocks packed with its length and its bottom block, the word being non-zero exactly when
//! the stack is, which means "this pool is on (or about to be put on) its owner heap's
//! queue". Every heap has a queue of pools, `RemoteQueue`: another Treiber stack, linked
//! through `Pool::queue_next`.
//!
//! * **Freer** (any thread, holding a live block `b` of pool `p`, or a chain of them from
//!   `b` down to `c`, see `remote_batch.rs`; the chain's elements are *messages*, blocks that
//!   may carry the offsets of other blocks of the pool, see `remote_message.rs`, and `n`
//!   counts the blocks they carry too): write `c.next` (the message on top, or null),
//!   then CAS `remote` from `w` to `w` with `b` on top and the count `n` higher for a chain
//!   of `n` (and `c` as the bottom too if `w` was 0). If `w` was 0, it (and only it) then
//!   pushes `p` onto the owner heap's queue. After its last successful CAS the freer never
//!   touches `p` again, nor the heap (unless that push made it the heap's holder: an
//!   abandoned heap nobody held, see `RemoteQueue`).
//! * **Owner** (the thread holding the heap): takes the whole queue with one swap, reads each
//!   pool's `queue_next`, and only then swaps the pool's `remote` word to 0, taking its list
//!   (top, bottom and count) and letting the pool be queued again at once. It subtracts the
//!   count from `Pool::used` and puts the messages on the pool (`Pool::take_back`), from which
//!   its allocations hand out the blocks they carry without touching them.
//!
//! # Why it holds
//!
//! * No lost block: a block is pushed onto a non-empty list (the pool is queued) or onto an
//!   empty one (then its freer queues the pool); the list is emptied only by the owner's swap,
//!   which takes every block pushed before it; a block pushed after that swap finds the word
//!   0 and queues the pool again.
//! * No block handed out twice: the owner takes blocks only by swapping the whole list out;
//!   there is no pop, hence no ABA.
//! * An exact count and the right bottom: each CAS adds a chain of `n` blocks
//!   and `n` to the count, and only the CAS onto an empty list sets the bottom (its chain's), whose `next` is null;
//!   later CASes keep it (the bottom stays at the bottom until the swap takes the list).
//! * No touch after release (the arena hazard): a pool goes back to its arena only when
//!   `used == 0`. A freer's block is counted in `used` until the owner's swap takes it, and the
//!   swap can take it only after the freer's CAS, which is the freer's last touch of the pool,
//!   except when that CAS made the list non-empty: then the freer still has to push the pool
//!   on the heap queue, but the owner cannot take that block before it has dequeued the pool,
//!   i.e. after the push. (A queued pool always has at least one block on its list, so
//!   `used > 0`.)
//! * `queue_next` is written by a freer only after it saw the word 0, i.e. after the owner's
//!   swap (AcqRel) that followed the owner's read of `queue_next`: the read happens before the
//!   write.
//! * The messages' links, counts and offsets are the freers' plain writes before their CASes
//!   (Release); the owner's swap (Acquire) reads the last CAS of a chain of
//!   read-modify-writes, so every one of them in the list it takes, the bottom's null link
//!   included, happens before its reads, and so do the program's last writes into the
//!   carried blocks (made before their frees), before the owner hands them out again.
//! * The owner heap a freer reads from `Pool::owner` is valid memory until the freer's push:
//!   a heap is retired only when it owns no pool, and the freer's block keeps the pool owned
//!   (counted in `used`) until the holder dequeues it. After its push the freer touches the
//!   heap only if the push made it the holder (`RemoteQueue`: the queue word is also the
//!   heap's holder token), and a holder is who retires a heap.
//!
//! The loom models in `loom-tests/tests/alloc_*.rs` run this code.

use super::pool::{pool_memory, Block, Pool, PoolOwner};
use super::size_class::POOL_SIZE;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use core::ptr;

/// A pool's remote-free list (`Pool::remote`): a Treiber stack of the pool's blocks freed by
/// threads that do not hold its owner heap, as messages (`remote_message.rs`), packed in one
/// word with its length in blocks and its bottom message, so that the owner takes the whole
/// list with one swap and walks only the messages (a walk over every block, each last
/// written by a freeing core, cost a cache miss per block: 80% of the owner's allocation
/// slow path in the producer/consumer profile, `BENCHMARKS.md`).
///
/// # Invariants
///
/// The word is `count << 32 | bottom << 16 | top`, where `top` (the last block pushed) and
/// `bottom` (the first) are byte offsets in the pool's memory, which is `POOL_SIZE`-aligned
/// and `POOL_SIZE <= 1 << 16` bytes long:
///
/// * the word is 0 exactly when the list is empty, and then the pool is not on its owner
///   heap's queue; non-zero, the pool is queued or its freer is about to queue it (the
///   protocol in the module doc);
/// * `count` is the number of blocks on the list (the messages and the blocks they carry), at
///   most the pool's capacity (2,048 blocks of 8 bytes) unless a block was freed twice;
/// * following `Block::next` from `top`, the list's messages end at `bottom`, whose `next` is
///   null, and carry `count` blocks in all, themselves included (`remote_message.rs`: a
///   message stands for itself and the blocks whose offsets it holds);
/// * every block on it is a free block of the pool, still counted in `Pool::used`.
///
/// It changes only by [`free_remote`]'s CAS (a chain of `n` blocks on top, count + `n`, and
/// the chain's bottom as the bottom when the list was empty) and by the owner's swap to 0
/// ([`take_remote_blocks`]).
pub(crate) struct RemoteList {
    word: AtomicU64,
}

const TOP_MASK: u64 = 0xffff;
const BOTTOM_SHIFT: u32 = 16;

const _: () = assert!(POOL_SIZE <= 1 << BOTTOM_SHIFT && POOL_SIZE.is_power_of_two());

impl RemoteList {
    /// An empty list.
    pub(crate) fn new() -> RemoteList {
        RemoteList {
            word: AtomicU64::new(0),
        }
    }

    /// Push the chain of `count` blocks from `top` to `bottom` (linked through
    /// `Block::next` from `top` down to `bottom`; `bottom`'s link is written here), with one
    /// CAS; returns whether the list was empty (the caller must then queue the pool). A
    /// single block is the chain of one (`top == bottom`, `count == 1`). Any thread.
    ///
    /// # Safety
    /// The chain's blocks are live blocks of the pool owning this list, linked as said, at
    /// most the pool's capacity, and not used again by the caller.
    #[inline]
    unsafe fn push_chain(&self, top: *mut Block, bottom: *mut Block, count: u32) -> bool {
        let base = top as usize & !(POOL_SIZE - 1);
        let top_offset = (top as usize & (POOL_SIZE - 1)) as u64;
        let bottom_offset = (bottom as usize & (POOL_SIZE - 1)) as u64;
        let added = u64::from(count) << 32;
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let (next, new) = if word == 0 {
                (
                    ptr::null_mut(),
                    added | (bottom_offset << BOTTOM_SHIFT) | top_offset,
                )
            } else {
                let old_top = (base + (word & TOP_MASK) as usize) as *mut Block;
                (old_top, ((word & !TOP_MASK) + added) | top_offset)
            };
            // SAFETY: the chain is ours until the CAS below publishes it.
            unsafe { (*bottom).next = next };
            // Release: publishes the chain's links (and, through the chain of CASes, the
            // links below it) to the owner's swap.
            match self
                .word
                .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return word == 0,
                Err(now) => word = now,
            }
        }
    }

    /// Owner: take the whole list of the pool whose memory starts at `base`: its top block,
    /// its bottom block and its length (nulls and 0 when empty). Lets the pool be queued
    /// again (read `Pool::queue_next` before).
    #[inline]
    fn take(&self, base: *mut u8) -> (*mut Block, *mut Block, u32) {
        // Acquire: the links of the blocks (see `push`).
        let word = self.word.swap(0, Ordering::AcqRel);
        if word == 0 {
            return (ptr::null_mut(), ptr::null_mut(), 0);
        }
        let top = base
            .wrapping_add((word & TOP_MASK) as usize)
            .cast::<Block>();
        let bottom = base
            .wrapping_add(((word >> BOTTOM_SHIFT) & TOP_MASK) as usize)
            .cast::<Block>();
        (top, bottom, (word >> 32) as u32)
    }
}

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
            // SAFETY: the caller (the freer whose block made the pool's list non-empty) has the
            // exclusive right to write `queue_next` until the push below publishes the pool.
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

    /// Whether nobody held the heap a moment ago: a hint, with no ordering, that a
    /// [`try_claim`](Self::try_claim) is worth trying (which alone decides).
    #[inline]
    pub(crate) fn looks_unheld(&self) -> bool {
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

/// Free the chain of `count` blocks of `pool` from `top` to `bottom` (linked from `top` down
/// to `bottom` through `Block::next`; a single block is the chain of one, see
/// `remote_batch.rs` for longer ones) from a thread that does not hold the pool's owner heap,
/// with one CAS. Says whether this call queued the pool (the first remote free since the
/// owner last looked) and, if so, whether it now holds the heap. Only when it queues the pool
/// does it read the pool's owner, and pass it to `queue_of` for the owner heap's queue: the
/// common case (the pool already queued) is the one CAS. After it returns anything but
/// `Pushed(Claimed)`, the caller must not touch the pool or the heap again: the holder may
/// take the blocks back, release the pool and retire the heap at any moment.
///
/// # Safety
/// The chain's blocks are live blocks of `pool`, linked as said, not used again by the
/// caller, `1 <= count <=` the pool's capacity; `queue_of` maps the pool's owner to that
/// heap's queue.
#[inline]
pub(crate) unsafe fn free_remote<'h>(
    pool: *mut Pool,
    top: *mut Block,
    bottom: *mut Block,
    count: u32,
    queue_of: impl FnOnce(*mut PoolOwner) -> &'h RemoteQueue,
) -> RemoteFree {
    // SAFETY: `pool` has live blocks (ours), so it is not back in its arena: its header is
    // mapped and initialized (Pool invariant on `used`); the blocks are ours to give.
    let was_empty = unsafe { (*pool).remote.push_chain(top, bottom, count) };
    if !was_empty {
        return RemoteFree::Listed;
    }
    // The list was empty: the pool is ours to queue. Its `used` still counts our blocks, so
    // it stays mapped, and owned by its heap (which stays mapped), until the holder dequeues
    // it, which is after the push below: its owner is still the one our blocks came from.
    // SAFETY: as above.
    let owner = unsafe { (*pool).owner.load(Ordering::Relaxed) };
    RemoteFree::Pushed(queue_of(owner).push(pool))
}

/// Owner: take the remote-free blocks of `pool`, a pool just taken from the heap's queue.
/// Returns the pool that followed it in the queue, the list of messages (top and bottom, the
/// bottom's link null), and how many blocks they hold. Bound: O(1), whatever the length of
/// the list (it is a swap of the pool's [`RemoteList`]; `Pool::take_back` puts it on the pool).
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
    let (top, bottom, count) = p.remote.take(pool_memory(pool));
    (next, top, bottom, count)
}
