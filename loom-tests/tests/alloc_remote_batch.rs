//! Model: **remote frees in batches** (`remote_batch.rs`: `RemoteBatch`, `Heap::flush_batch`,
//! `flush_remote_batches`; `remote.rs`: `RemoteList::push_chain`, `free_remote`;
//! `HeapRegistry::abandon`, which publishes the batches first).
//!
//! A freeing thread keeps the blocks it frees into one pool of another heap on a chain of
//! its own and publishes the whole chain with one CAS; the pool's remote-free list then
//! grows by the chain's length, with the chain's bottom as the list's bottom if the list was
//! empty.
//!
//! Interleavings that matter:
//! * the chain's push racing with another freer's single push on the same pool (either one
//!   finds the list empty and queues the pool, the other must not; the list's bottom is the
//!   bottom of whichever came first: the chain's first block, or the single block);
//! * the owner's swap before, between or after the two pushes, with its own free list empty
//!   or not (the taken list is put on the pool, down to its bottom): a wrong bottom link or
//!   a wrong count loses blocks, hands one out twice, or makes `Pool::used` lie;
//! * a batch longer than one message (`remote_message.rs`: a message carries the offsets of
//!   up to three 16-byte blocks): the chain's messages are linked top to bottom, only the
//!   bottom one's link is written by the push, and the owner hands out every carried block
//!   by its offset, then the message, before the pool's never-used blocks (its tail, set
//!   aside while it has messages, and given back after them), its own free list empty or
//!   not;
//! * a freer exiting with blocks still in its batch while the owner heap is being abandoned:
//!   the exit publishes the batch before giving its own heap up, and that push may find the
//!   owner heap unheld and claim it (take the blocks back, release the pool, retire the
//!   heap), or land before the owner's exit collects.
//!
//! The models check that every freed block comes back exactly once, that blocks in a batch
//! are counted as free by the statistics while their pool still counts them, and that nothing
//! leaks (pools, arenas, heaps) once everyone is done.
#![cfg(loom)]

mod common;

use common::{assert_distinct, assert_pools, capacity_of, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use std::alloc::Layout;

/// 16-byte blocks: a message (`remote_message.rs`) carries three other blocks.
const TINY: Layout = match Layout::from_size_align(16, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// A freer batches three blocks of the owner's pool (one before the threads start, two
/// racing) and publishes them with one push, while another freer frees one block of the same
/// pool singly (a batch of one, published at once), and the owner, whose own free list holds
/// a block, collects and allocates. Then every freed block comes back exactly once, before
/// any never-used block.
/// After the frees are collected: `x` (already allocated) and the owner's next `freed.len()`
/// allocations of `layout` are distinct, are the `freed` blocks exactly once plus `next`
/// (the pool's first never-used block), and are returned for freeing.
fn take_back_exactly_once(
    owner: &pyheap::alloc::model::ModelHeap,
    layout: Layout,
    x: BlockPtr,
    freed: &[BlockPtr],
    next: BlockPtr,
) -> Vec<BlockPtr> {
    let mut got = vec![x];
    for _ in 0..freed.len() {
        got.push(BlockPtr(owner.alloc(layout)));
    }
    assert_distinct(&got);
    let mut back: Vec<BlockPtr> = got.iter().copied().filter(|g| *g != next).collect();
    back.sort();
    let mut want = freed.to_vec();
    want.sort();
    assert_eq!(back, want, "freed blocks did not come back exactly once");
    assert!(got.contains(&next), "a freed block was lost");
    got
}

#[test]
fn batch_pushed_while_single_push_and_owner_collects() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let h1 = a.heap();
        let h2 = a.heap();
        let b: Vec<BlockPtr> = (0..5).map(|_| BlockPtr(owner.alloc(SMALL))).collect();
        let next = BlockPtr(b[4].0.wrapping_add(SMALL.size()));
        // SAFETY: b[4] is ours: the pool's own free list is [b4].
        unsafe { owner.dealloc(b[4].0, SMALL) };
        // SAFETY: b[3] is live and given to h1: the first block of its batch.
        unsafe { h1.dealloc(b[3].0, SMALL) };
        // Batched: counted as free, still counted by its pool (so the pool stays in use).
        assert_pools(&a, 3, 1);
        assert!(!owner.has_remote_frees(), "a batched block was published");

        let (b0, b1, b2) = (b[0], b[1], b[2]);
        let t1 = thread::spawn(move || {
            // SAFETY: b0 and b1 are live and given to this thread.
            unsafe {
                h1.dealloc(b0.0, SMALL);
                h1.dealloc(b1.0, SMALL);
            }
            // One push of the chain of three.
            h1.flush_remote_batches();
            h1
        });
        let t2 = thread::spawn(move || {
            // SAFETY: b2 is live and given to this thread.
            unsafe { h2.dealloc(b2.0, SMALL) };
            h2.flush_remote_batches();
            h2
        });
        owner.collect_remote_frees();
        let x = BlockPtr(owner.alloc(SMALL));

        let (h1, h2) = (t1.join().unwrap(), t2.join().unwrap());
        owner.collect_remote_frees();
        assert!(!owner.has_remote_frees(), "a pool stayed queued");
        assert_pools(&a, 1, 1);

        // The four remote frees and b4, exactly once, then the never-used block.
        let got = take_back_exactly_once(&owner, SMALL, x, &b, next);
        assert_pools(&a, 6, 1);
        for g in got {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(g.0, SMALL) };
        }
        assert_pools(&a, 0, 1);
        let s = a.stats();
        let class = pyheap::alloc::size_class(SMALL.size(), SMALL.align()).unwrap();
        assert_eq!(s.classes[class].free_blocks, capacity_of(&a, SMALL));
        drop((h1, h2));
    });
}

/// A freer batches six 16-byte blocks of the owner's pool, two messages (the first carrying
/// three blocks, the second one), and publishes them with one push, while another freer
/// frees one block of the pool singly and the owner, whose own free list holds a block,
/// collects and allocates. Then every freed block comes back exactly once, before any
/// never-used block.
#[test]
fn chain_of_messages_pushed_while_single_push_and_owner_collects() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let h1 = a.heap();
        let h2 = a.heap();
        let b: Vec<BlockPtr> = (0..8).map(|_| BlockPtr(owner.alloc(TINY))).collect();
        let next = BlockPtr(b[7].0.wrapping_add(TINY.size()));
        // SAFETY: b[7] is ours: the pool's own free list is [b7].
        unsafe { owner.dealloc(b[7].0, TINY) };

        let chain: Vec<BlockPtr> = b[..6].to_vec();
        let b6 = b[6];
        let t1 = thread::spawn(move || {
            for c in chain {
                // SAFETY: b0..b5 are live and given to this thread.
                unsafe { h1.dealloc(c.0, TINY) };
            }
            // One push of two messages, six blocks.
            h1.flush_remote_batches();
            h1
        });
        let t2 = thread::spawn(move || {
            // SAFETY: b6 is live and given to this thread.
            unsafe { h2.dealloc(b6.0, TINY) };
            h2.flush_remote_batches();
            h2
        });
        owner.collect_remote_frees();
        let x = BlockPtr(owner.alloc(TINY));

        let (h1, h2) = (t1.join().unwrap(), t2.join().unwrap());
        owner.collect_remote_frees();
        assert!(!owner.has_remote_frees(), "a pool stayed queued");
        assert_pools(&a, 1, 1);

        // The seven remote frees and b7, exactly once, then the never-used block.
        let got = take_back_exactly_once(&owner, TINY, x, &b, next);
        for g in got {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(g.0, TINY) };
        }
        assert_pools(&a, 0, 1);
        drop((h1, h2));
    });
}

/// The owner exits with two blocks given to a freer, which batches both and exits: its exit
/// publishes the batch (one push of the chain of two), racing with the owner's exit; that push
/// lands before the owner collects, or finds the owner heap abandoned and unheld and claims
/// it. Either way the pool, its arena (none retained) and both heaps go, and nothing is left
/// in use.
#[test]
fn freer_exits_with_batch_while_owner_exits() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let h1 = a.heap();
        let b0 = BlockPtr(owner.alloc(LARGE));
        let b1 = BlockPtr(owner.alloc(LARGE));

        let t_owner = thread::spawn(move || owner.exit());
        let t1 = thread::spawn(move || {
            // SAFETY: b0 and b1 are live and given to this thread.
            unsafe {
                h1.dealloc(b0.0, LARGE);
                h1.dealloc(b1.0, LARGE);
            }
            // Both blocks are in h1's batch: the exit publishes them.
            h1.exit();
        });
        t_owner.join().unwrap();
        t1.join().unwrap();

        assert_eq!(a.check_heaps(), 0, "the owner's heap was not retired");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
        assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
        assert!(!a.owns(b0.0) && !a.owns(b1.0));
    });
}
