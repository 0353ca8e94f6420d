//! Model: **a thread exiting with live blocks in its pools** while other threads free them
//! (`HeapRegistry::abandon`, `let_go`, `bind`; `free_into`; the remote-free protocol and the
//! heap's holder token in its queue word, `RemoteQueue`).
//!
//! The owner thread allocated blocks and gave them away; it exits (abandons its heap: takes
//! back its remote frees, returns empty pools, retires the heap if it owns no pool, else puts
//! it on the abandoned list and lets go of it) while the holders free the blocks, through a
//! heap of their own or with no heap at all. A free whose push finds the heap unheld holds it
//! from then on: it takes the blocks back, releases the pools, and lets go of the heap or
//! retires it. Nothing sweeps afterwards: when every thread is done, every block must be back.
//!
//! Interleavings that matter:
//! * a free landing before the exit's `collect_remote_frees`, between it and the exit's
//!   letting go (which then fails: a pool is queued, so the exiting thread takes it back
//!   itself), or after it (then the freer's push claims the heap);
//! * two freers, one claiming the heap while the other pushes onto it (its pool waits for the
//!   claimer, who cannot let go before taking it);
//! * a new thread adopting the abandoned heap (claiming it under the registry lock) while a
//!   freer claims it or pushes onto it: one holder at a time.
//!
//! Without the protocol: blocks freed into an exited thread's pools would never be taken
//! back (the pool, and its arena, leak); two threads holding one heap would hand out one
//! block twice or corrupt the pool lists; a heap retired under a freer would be touched after
//! its unmapping (retired heaps are `PROT_NONE` under loom: a SIGSEGV). The models check that
//! when every thread is done no block is in use, every pool went back to its arena, no
//! abandoned heap is left held or empty (`check_heaps`), the heap counts are right, and an
//! adopter's allocations are all distinct.
#![cfg(loom)]

mod common;

use common::{assert_distinct, assert_pools, capacity_of, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

/// The owner exits while one block is freed through another heap and one with no heap;
/// nothing sweeps afterwards: the exit and the frees alone return the pool, the arena (no
/// arena retained) and the owner's heap.
#[test]
fn exit_and_frees_alone_return_everything() {
    model(|| exit_during_two_remote_frees(false));
}

/// As above, and the freeing heap's thread exits too, right after its free (while it may
/// still race with the owner's exit and with the other free).
#[test]
fn exit_while_others_free_and_exit() {
    model(|| exit_during_two_remote_frees(true));
}

/// The owner allocates two blocks and exits while one is freed through another heap (whose
/// thread then exits if `h1_exits`) and one with no heap. Everything must be back in the end.
fn exit_during_two_remote_frees(h1_exits: bool) {
    let a = ModelAllocator::new(0);
    let owner = a.heap();
    let h1 = a.heap();
    let b0 = BlockPtr(owner.alloc(SMALL));
    let b1 = BlockPtr(owner.alloc(SMALL));

    let t_owner = thread::spawn(move || owner.exit());
    let t1 = thread::spawn(move || {
        // SAFETY: b0 is live and given to this thread.
        unsafe { h1.dealloc(b0.0, SMALL) };
        if h1_exits {
            // The block is still in h1's batch: the exit publishes it.
            h1.exit();
            None
        } else {
            h1.flush_remote_batches();
            Some(h1)
        }
    });
    // SAFETY: b1 is live and ours.
    unsafe { a.dealloc_without_heap(b1.0, SMALL) };

    t_owner.join().unwrap();
    let h1 = t1.join().unwrap();

    assert_eq!(a.check_heaps(), 0, "the owner's heap was not retired");
    assert_pools(&a, 0, 0);
    let s = a.stats();
    let active = usize::from(h1.is_some());
    assert_eq!((s.heaps_active, s.heaps_abandoned), (active, 0), "\n{s}");
    assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
    assert!(!a.owns(b0.0) && !a.owns(b1.0));
    drop(h1);
}

/// The owner exits while two threads free two of its blocks, one of them through its own
/// heap; a third block stays alive, so the heap stays abandoned. Then a new heap adopts it
/// (it is unheld once the frees are done), finds nothing left queued, and its allocations (a
/// whole pool's worth) are all distinct; freeing the kept block and exiting retires it.
#[test]
fn exit_while_others_free_then_adopt() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let owner_id = owner.id();
        let h1 = a.heap();
        let b0 = BlockPtr(owner.alloc(LARGE));
        let b1 = BlockPtr(owner.alloc(LARGE));
        let kept = BlockPtr(owner.alloc(LARGE));

        let t_owner = thread::spawn(move || owner.exit());
        let t1 = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { h1.dealloc(b0.0, LARGE) };
            // Publish the batch now (as its allocation slow path would).
            h1.flush_remote_batches();
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

        assert_eq!(
            a.check_heaps(),
            1,
            "the owner's heap (with a live block) is abandoned"
        );
        let adopter = a.heap();
        assert_eq!(adopter.id(), owner_id, "the abandoned heap was not adopted");
        assert!(
            !adopter.has_remote_frees(),
            "a pool was left queued on an unheld heap"
        );
        let s = a.stats();
        assert_eq!(s.blocks_in_use(), 1, "\n{s}");
        assert_eq!((s.heaps_active, s.heaps_abandoned), (2, 0), "\n{s}");
        assert_pools(&a, 1, 1);

        let first = BlockPtr(adopter.alloc(LARGE));
        let cap = capacity_of(&a, LARGE);
        let mut all = vec![first, kept];
        for _ in 2..cap {
            all.push(BlockPtr(adopter.alloc(LARGE)));
        }
        all.sort();
        assert_distinct(&all);
        assert_pools(&a, cap, 1);
        for b in all {
            // SAFETY: live blocks of the adopter (the kept one since the adoption).
            unsafe { adopter.dealloc(b.0, LARGE) };
        }
        adopter.exit();
        assert_pools(&a, 0, 0);
        assert_eq!(a.check_heaps(), 0);
        drop(h1);
    });
}

/// A new thread binds (adopting the owner's heap if it is already abandoned and unheld, else
/// making a new one) and allocates while the owner exits and another thread frees the owner's
/// block with no heap (and may become the abandoned heap's holder through its push). One
/// holder at a time: the adopter's allocation is never the block still being freed, and
/// everything adds up with no sweep.
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

        assert_eq!(
            a.check_heaps(),
            0,
            "the owner's heap is empty: retired or adopted"
        );
        // If the new thread adopted the owner's heap, b0 may still be queued on it.
        h.collect_remote_frees();
        assert_pools(&a, 1, a.stats().pools_in_use());
        // SAFETY: x is live and h allocated it.
        unsafe { h.dealloc(x.0, SMALL) };
        h.exit();
        assert_eq!(a.check_heaps(), 0);
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
    });
}
