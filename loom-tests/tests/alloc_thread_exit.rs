//! Model: **a thread exiting with live blocks in its pools** while other threads free them
//! (`HeapRegistry::abandon`, `sweep`, `bind`; `free_into`; the remote-free protocol).
//!
//! The owner thread allocated blocks and gave them away; it exits (abandons its heap: takes
//! back its remote frees, returns empty pools, marks the heap `ABANDONED`, sweeps) while the
//! holders free the blocks, through a heap of their own or with no heap at all. Afterwards a
//! sweep, or a new thread adopting the abandoned heap, must find every block.
//!
//! Interleavings that matter:
//! * a free landing before the exit's `collect_remote_frees`, between it and the `ABANDONED`
//!   store, or after it (then the freer that queues the pool sees `ABANDONED` and sweeps the
//!   heap itself, or a later sweep does);
//! * a freer's sweep claiming the heap (`ABANDONED -> CLAIMED`) while the exiting thread's own
//!   sweep or another freer's sweep tries to, and while a new thread tries to adopt it
//!   (`ABANDONED -> ACTIVE`): one holder at a time;
//! * a free queued on the heap while a sweeper holds it (`CLAIMED`) after its collect: the
//!   block waits on the abandoned heap's queue for the next sweep or adoption.
//!
//! Without the protocol: blocks freed into an exited thread's pools would never be taken
//! back (the pool, and its arena, leak); two threads holding one heap would hand out one
//! block twice or corrupt the pool lists. The models check that after a final sweep (or an
//! adoption and a collect) no block is in use, every pool went back to its arena, the heap
//! counts are right, and an adopter's allocations are all distinct.
#![cfg(loom)]

mod common;

use common::{assert_distinct, assert_pools, capacity_of, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

/// The owner exits while one block is freed through another heap and one with no heap; then
/// a sweep returns the pool, and (no arena retained) the arena.
#[test]
fn exit_while_others_free_then_sweep() {
    model(|| exit_during_two_remote_frees(true));
}

/// As above, but with no sweep afterwards: the exit and the freers alone must leave nothing
/// queued and every pool and arena returned. This is the fence pairing of `HeapRegistry::sweep`
/// and `free_into`: a freer that queues a pool while the exiting thread lets go of the heap
/// either sees `ABANDONED` and sweeps, or is seen by the exiting thread's own last sweep.
#[test]
fn exit_and_frees_alone_return_everything() {
    model(|| exit_during_two_remote_frees(false));
}

/// The owner allocates two blocks and exits while one is freed through another heap and one
/// with no heap; then (if `sweep`) a sweep runs. Everything must be back in the end.
fn exit_during_two_remote_frees(sweep: bool) {
    let a = ModelAllocator::new(0);
    let owner = a.heap();
    let h1 = a.heap();
    let b0 = BlockPtr(owner.alloc(SMALL));
    let b1 = BlockPtr(owner.alloc(SMALL));

    let t_owner = thread::spawn(move || owner.exit());
    let t1 = thread::spawn(move || {
        // SAFETY: b0 is live and given to this thread.
        unsafe { h1.dealloc(b0.0, SMALL) };
        h1
    });
    // SAFETY: b1 is live and ours.
    unsafe { a.dealloc_without_heap(b1.0, SMALL) };

    t_owner.join().unwrap();
    let h1 = t1.join().unwrap();

    if sweep {
        a.sweep_abandoned();
    }
    assert_pools(&a, 0, 0);
    let s = a.stats();
    assert_eq!((s.heaps_active, s.heaps_abandoned), (1, 1), "\n{s}");
    assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
    assert!(!a.owns(b0.0) && !a.owns(b1.0));
    drop(h1);
}

/// The owner exits while two threads free its blocks, one of them through its own heap;
/// then a new heap adopts the abandoned one, takes back what is still queued, and its
/// allocations (a whole pool's worth) are all distinct.
#[test]
fn exit_while_others_free_then_adopt() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let owner_id = owner.id();
        let h1 = a.heap();
        let b0 = BlockPtr(owner.alloc(LARGE));
        let b1 = BlockPtr(owner.alloc(LARGE));

        let t_owner = thread::spawn(move || owner.exit());
        let t1 = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { h1.dealloc(b0.0, LARGE) };
            h1
        });
        let a2 = a.clone();
        let t2 = thread::spawn(move || {
            // SAFETY: b1 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b1.0, LARGE) };
        });
        t_owner.join().unwrap();
        let h1 = t1.join().unwrap();
        t2.join().unwrap();

        let adopter = a.heap();
        assert_eq!(adopter.id(), owner_id, "the abandoned heap was not adopted");
        adopter.collect_remote_frees();
        assert!(!adopter.has_remote_frees());
        let s = a.stats();
        assert_eq!(s.blocks_in_use(), 0, "\n{s}");
        assert_eq!((s.heaps_active, s.heaps_abandoned), (2, 0), "\n{s}");
        // The pool is still the heap's current one if the frees came after the exit's
        // collect; otherwise it went back to the arena at the exit.
        let pools = s.pools_in_use();
        assert!(pools <= 1, "\n{s}");
        assert_pools(&a, 0, pools);

        let first = BlockPtr(adopter.alloc(LARGE));
        let cap = capacity_of(&a, LARGE);
        let mut all = vec![first];
        for _ in 1..cap {
            all.push(BlockPtr(adopter.alloc(LARGE)));
        }
        all.sort();
        assert_distinct(&all);
        assert_pools(&a, cap, 1);
        for b in all {
            // SAFETY: live blocks of the adopter.
            unsafe { adopter.dealloc(b.0, LARGE) };
        }
        adopter.exit();
        assert_pools(&a, 0, 0);
        drop(h1);
    });
}

/// A new thread binds (adopting the owner's heap if it is already abandoned, else mapping a
/// new one) and allocates while the owner exits and another thread frees the owner's block
/// with no heap (and may sweep the abandoned heap itself). One holder at a time: the
/// adopter's allocation is never the block still being freed, and everything adds up.
#[test]
fn adopt_races_exit_and_sweeping_free() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let b0 = BlockPtr(owner.alloc(SMALL));

        let t_owner = thread::spawn(move || owner.exit());
        let a2 = a.clone();
        let t_free = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b0.0, SMALL) };
        });
        let a3 = a.clone();
        let t_new = thread::spawn(move || {
            let h = a3.heap();
            let x = BlockPtr(h.alloc(SMALL));
            (h, x)
        });
        t_owner.join().unwrap();
        t_free.join().unwrap();
        let (h, x) = t_new.join().unwrap();

        a.sweep_abandoned();
        h.collect_remote_frees();
        assert_pools(&a, 1, a.stats().pools_in_use());
        // SAFETY: x is live and h allocated it.
        unsafe { h.dealloc(x.0, SMALL) };
        h.exit();
        a.sweep_abandoned();
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!(s.heaps_active, 0, "\n{s}");
    });
}
