//! Model: **an arena going back to the OS while another thread still holds a pointer into one
//! of its pools** (`remote.rs`'s protocol, `Pool::used`, `ArenaManager::release_pool`).
//!
//! No empty arena is retained (`ModelAllocator::new(0)`), and under loom a released arena is
//! made `PROT_NONE` instead of unmapped: any touch of the pool header after the release
//! faults, and the model dies with SIGSEGV instead of passing.
//!
//! The owner holds the one live block of the arena's one pool. Another thread frees it
//! remotely while the owner reclaims its remote frees and exits (returning its empty current
//! pool, hence the arena), or while the owner is already gone and the freer, whose push made
//! it the holder of the abandoned heap, takes the block back and releases the pool, the arena
//! and the heap. Retired heaps are `PROT_NONE` under loom too, so a freer that touched the
//! heap after its push (when it did not become the holder) would fault as well.
//!
//! Interleavings that matter: the owner's swap of `Pool::remote` right after the freer's CAS
//! (the block is counted in `used` until then, so the pool cannot be released earlier), and,
//! when that CAS made the pool's list non-empty, the window between the CAS and the freer's push of the pool
//! onto the heap queue (`Pool::queue_next` is written in the pool header). The protocol makes
//! the owner unable to take the block before the push: it only swaps pools it dequeued.
//! Without it (say the owner scanned its pools' `remote` words directly, or the freer read
//! the pool after publishing its block), the owner could release the arena while the freer
//! still writes `queue_next` or reads the pool: a use after unmap.
#![cfg(loom)]

mod common;

use common::{assert_pools, free_last_block_remotely_while_owner_exits, model, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

fn assert_arena_returned(a: &ModelAllocator, b: BlockPtr) {
    // The owner's heap was retired (by its exit or by the free that emptied it), with no
    // sweep: nothing is left for one.
    assert_eq!(a.check_heaps(), 0, "an abandoned heap is left");
    assert_pools(a, 0, 0);
    let s = a.stats();
    assert_eq!(s.arenas_mapped, 0, "\n{s}");
    assert_eq!(s.arenas_returned, 1, "\n{s}");
    assert_eq!(s.arenas_mapped_total, 1, "\n{s}");
    assert!(!a.owns(b.0), "the released arena is still in the arena map");
}

/// The last block freed through another heap while the owner collects and exits.
#[test]
fn last_block_freed_while_owner_releases_arena() {
    model(|| {
        let a = ModelAllocator::new(0);
        let (b, h1) = free_last_block_remotely_while_owner_exits(&a);

        assert_arena_returned(&a, b);
        drop(h1);
    });
}

/// The owner's heap is abandoned (with the block live) while the block is freed with no
/// heap: the freer may be the one that releases the arena (its push finds the heap unheld),
/// or the exiting thread (its letting go fails while the pool is queued).
#[test]
fn last_block_freed_without_heap_while_owner_exits() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let b = BlockPtr(owner.alloc(SMALL));

        let t_owner = thread::spawn(move || owner.exit());
        // SAFETY: b is live and ours.
        unsafe { a.dealloc_without_heap(b.0, SMALL) };
        t_owner.join().unwrap();

        assert_arena_returned(&a, b);
    });
}

/// Two blocks, two freers: one of them finds the pool already queued and returns without
/// pushing; whichever takes the last block back releases the arena. Neither freer may touch
/// the pool after its CAS (the non-queuing one) or after its push (the queuing one).
#[test]
fn two_freers_while_owner_releases_arena() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let h1 = a.heap();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));

        let t1 = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { h1.dealloc(b0.0, SMALL) };
            // Publish the batch now (as its allocation slow path would).
            h1.flush_remote_batches();
            h1
        });
        let a2 = a.clone();
        let t2 = thread::spawn(move || {
            // SAFETY: b1 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b1.0, SMALL) };
        });
        owner.exit();
        let h1 = t1.join().unwrap();
        t2.join().unwrap();

        assert_arena_returned(&a, b0);
        drop(h1);
    });
}
