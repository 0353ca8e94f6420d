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
//! the messages; the owner, taking the list back, links the carried blocks into its free
//! list itself, with stores into lines that stayed in its own cache (the freer never touched
//! them). snmalloc's remote messages and jemalloc's tcache (an array of pointers, flushed in
//! batches) avoid touching the freed blocks in the same spirit.
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
//! chains are plain linked lists, as before messages.
//!
//! # Invariants (of every message on a batch's chain or a pool's remote-free list)
//!
//! * It and every block it carries are free blocks of one pool, distinct from each other and
//!   from those of every other message of the chain or list, each still counted in the
//!   pool's `used` (the accounting of `remote_batch.rs` and `RemoteList`, in blocks, counts
//!   a message as `1 + n`).
//! * Only the message's bytes above are written by the freer; a carried block is not touched
//!   by anyone until the owner takes the list back and links it into its free list.

use super::pool::{pool_memory, Block, Pool};
use super::size_class::{class_block_size, POOL_SIZE};

/// Bytes before the carried offsets: the link and the count.
const HEADER_BYTES: usize = 10;

/// Blocks a message of `class` carries at most besides itself: as many offsets as fit after
/// its link and count (3 in 16 bytes, 11 in 32, 27 in 64), at most 63 (a batch holds at most
/// 64 blocks), none in 8-byte blocks.
pub(crate) const fn carry_limit(class: usize) -> u32 {
    let size = class_block_size(class);
    if size < HEADER_BYTES + 2 {
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

/// Owner: link the blocks of a remote-free list (messages from `top` down to `bottom`,
/// `bottom`'s link null) into the free list `free` of `pool`, and return the new free list.
/// Writes the link of every block (the owner's own lines: the freers wrote only the
/// messages). Bound: O(blocks), the blocks taken back.
///
/// # Safety
/// The caller holds `pool`'s owner heap and took the list from the pool's `RemoteList`
/// (whose invariants, and those of the messages above, it satisfies); `free` is the pool's
/// free list.
pub(crate) unsafe fn unpack(
    pool: *mut Pool,
    top: *mut Block,
    bottom: *mut Block,
    mut free: *mut Block,
) -> *mut Block {
    // SAFETY: the pool is ours (caller's contract); `block_size` is fixed while blocks live.
    let carries = unsafe { (*pool).block_size.get() } as usize >= HEADER_BYTES + 2;
    let base = pool_memory(pool) as usize;
    let mut message = top;
    loop {
        // SAFETY: the messages and the blocks they carry are free blocks of the pool, ours
        // now (caller's contract and the invariants above).
        unsafe {
            let next = (*message).next;
            if carries {
                let count = count_ptr(message);
                for i in 1..=count.read() as usize {
                    let block = (base + count.add(i).read() as usize) as *mut Block;
                    (*block).next = free;
                    free = block;
                }
            }
            (*message).next = free;
            free = message;
            if message == bottom {
                return free;
            }
            message = next;
        }
    }
}
