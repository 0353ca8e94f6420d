//! Remote-free messages: a freed block that carries the offsets of other freed blocks of its
//! pool, so that a thread freeing another heap's blocks writes into one block of a batch
//! instead of into every one.
//!
//! Why: a remote free used to link each block into its batch through the block's first word
//! (`Block::next`). The block's line was last written by the allocating core (the program
//! wrote its object there), so every remote free took that line over to the freeing core,
//! and the owner's next allocation of the block took it back (its pop reads the link): two
//! cross-core line transfers per block, inherent to intrusive lists (mimalloc and rpmalloc
//! pay them too). In the producer/consumer profile the producer's pop was 83% of its inlined
//! allocation path (`BENCHMARKS.md`, issue 17). With messages, the freer writes the offsets
//! of up to [`carry_limit`] blocks into one block of the batch (a *message*), and links only
//! the messages. snmalloc's remote messages and jemalloc's tcache (an array of pointers,
//! flushed in batches) avoid touching the freed blocks in the same spirit.
//!
//! The owner does not link them either: taking the list back puts the messages, as they
//! are, on the pool's message chain (`Pool::messages`, one store for the whole list), and
//! the allocation path hands out the carried blocks by reading their offsets from the
//! message, then the message itself (`Pool::take_block`). So neither thread touches a
//! carried block between its free and its next allocation, and the owner's allocation reads
//! one line per message (its offsets) instead of one per block (each block's link, a line
//! evicted since: the producer/consumer profile put 38% of the allocation path's samples
//! on that load, and a quarter of the slow path's on the links' stores, `BENCHMARKS.md`
//! session 30).
//!
//! # Layout of a message
//!
//! A message is a free block of a pool whose blocks are at least 16 bytes:
//!
//! | bytes | what |
//! |---|---|
//! | 0..8 | `Block::next`: the next message of the chain (or of the remote-free list) |
//! | 8..10 | `u16`: how many blocks it carries, `n` (at most [`carry_limit`]) |
//! | 10..10 + 2n | `u16` each: the byte offset, in the pool's memory, of a carried block |
//!
//! A message stands for itself and the `n` blocks it carries: `1 + n` blocks. Blocks of 8
//! bytes (class 0) have no room beside the link: their messages carry nothing, and their
//! chains are plain linked lists, as before messages, which the owner splices whole onto
//! its free list.
//!
//! # Invariants (of every message on a batch's chain or a pool's remote-free list)
//!
//! * It and every block it carries are free blocks of one pool, distinct from each other and
//!   from those of every other message of the chain or list, each still counted in the
//!   pool's `used` (the accounting of `remote_batch.rs` and `RemoteList`, in blocks, counts
//!   a message as `1 + n`).
//! * Only the message's bytes above are written by the freer; a carried block is not touched
//!   by anyone until the owner hands it out (`Pool::take_block`). Once the owner has taken
//!   the list back, it alone reads the messages, and writes only their links (to splice a
//!   list in), never their counts or offsets: which of the first message's carried blocks
//!   are left is `Pool::carried_at`.

use super::pool::Block;
use super::size_class::{class_block_size, POOL_SIZE};

/// Bytes before the carried offsets: the link and the count.
const HEADER_BYTES: usize = 10;

/// Blocks a message of `class` carries at most besides itself: as many offsets as fit after
/// its link and count (3 in 16 bytes, 11 in 32, 27 in 64), at most 63 (a batch holds at most
/// 64 blocks), none in 8-byte blocks.
pub(crate) const fn carry_limit(class: usize) -> u32 {
    let size = class_block_size(class);
    if !carries(size as u32) {
        return 0;
    }
    let n = (size - HEADER_BYTES) / 2;
    (if n > 63 { 63 } else { n }) as u32
}

/// Start a message in `block` (carrying nothing yet) that links to `next`.
///
/// # Safety
/// `block` is a free block the caller owns, of a class whose [`carry_limit`] is `carry`.
#[inline(always)]
pub(crate) unsafe fn start(block: *mut Block, next: *mut Block, carry: u32) {
    // SAFETY: the block is ours and at least 8 bytes; with `carry > 0`, at least 16.
    unsafe {
        (*block).next = next;
        if carry != 0 {
            count_ptr(block).write(0);
        }
    }
}

/// Add `carried`, a block of the message's pool, to the message `message`, which carries
/// `n` blocks (fewer than its class's [`carry_limit`]).
///
/// # Safety
/// `message` is a message the caller owns, carrying `n < carry_limit(class)` blocks;
/// `carried` is a free block of the same pool the caller owns, not carried yet.
#[inline(always)]
pub(crate) unsafe fn carry(message: *mut Block, n: u32, carried: *mut u8) {
    let offset = (carried as usize & (POOL_SIZE - 1)) as u16;
    // SAFETY: `n < carry_limit`, so `HEADER_BYTES + 2 * (n + 1)` bytes fit in the block.
    unsafe {
        count_ptr(message).add(1 + n as usize).write(offset);
        count_ptr(message).write(n as u16 + 1);
    }
}

/// The message's count, as a pointer (offsets follow it).
///
/// # Safety
/// `message` is at least 16 bytes and 8-aligned.
#[inline(always)]
unsafe fn count_ptr(message: *mut Block) -> *mut u16 {
    // SAFETY: byte 8 is inside the block.
    unsafe { message.cast::<u8>().add(8).cast::<u16>() }
}

/// Whether blocks of `block_size` bytes carry others (have room for the count and one
/// offset beside the link): all but the 8-byte class. The one statement of the rule, for
/// [`carry_limit`] (the freer) and `Pool::take_back` (the owner), which must agree.
#[inline(always)]
pub(crate) const fn carries(block_size: u32) -> bool {
    block_size as usize >= HEADER_BYTES + 2
}

/// The offsets of the blocks `message` carries: from the first to one past the last.
///
/// # Safety
/// `message` is a message of a carrying class ([`carries`]) that the caller owns and whose
/// writes happen before this read (the owner, after taking it from the pool's `RemoteList`).
#[inline(always)]
pub(crate) unsafe fn carried_offsets(message: *mut Block) -> (*const u16, *const u16) {
    // SAFETY: the block is at least 16 bytes (carrying class), 8-aligned, ours (contract);
    // its `n` offsets follow the count inside it (`carry`).
    unsafe {
        let count = count_ptr(message);
        let first = count.add(1);
        (first, first.add(count.read() as usize))
    }
}

/// The block at the carried offset `at` (from [`carried_offsets`]), and the next offset.
///
/// # Safety
/// `at` is one of the offsets [`carried_offsets`] returned for a message of the caller's.
#[inline(always)]
pub(crate) unsafe fn carried_block(at: *const u16) -> (*mut u8, *const u16) {
    // Pools are `POOL_SIZE`-aligned; the message holding `at` is a block of the pool.
    let base = at as usize & !(POOL_SIZE - 1);
    // SAFETY: the caller's contract.
    unsafe { ((base + at.read() as usize) as *mut u8, at.add(1)) }
}
