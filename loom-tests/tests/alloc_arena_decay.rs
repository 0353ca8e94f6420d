//! Model: **an empty arena going back to the OS through the decay check**
//! (`ArenaManager::purge_due`, `take_victim`, `unlock_and_unmap`; `arena.rs`'s "Decay").
//!
//! With a purge delay, the release that empties an arena no longer unmaps it: the decay check
//! that runs on every pool request and release does, once the arena's dirt is due, if more
//! than the retained limit of empty arenas are mapped. `ModelAllocator::with_decay(0)` makes
//! every dirty arena due at once (the models' clock stands still) and keeps no empty arena, so
//! the arena goes back in the same release, but through that check. As in
//! `alloc_arena_release.rs`, a released arena is made `PROT_NONE` under loom: a touch after the
//! release faults.
//!
//! Models:
//! 1. The owner's last block freed remotely while the owner collects and exits (the path of
//!    `alloc_arena_release.rs`'s first model, with the decay).
//! 2. The owner frees its one block and exits (its pool's release empties arena A) while
//!    another thread requests a pool, whose decay check may unmap A, or whose pick may take a
//!    pool of A first (then A is not empty when the check runs). The pool the request got
//!    must stay usable (its whole memory is written and read back), and exactly the arena
//!    holding it stays mapped.
//!
//! Checked to fail when the decay check unmaps a due arena without checking that it is empty
//! (`loom-tests/sanity/a3_decay_unmaps_arena_in_use.patch`: model 2 faults on the pool it
//! got, or finds its arena gone from the map).
#![cfg(loom)]

mod common;

use common::{assert_pools, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use pyheap::alloc::POOL_SIZE;

/// The owner's last block freed through another heap while the owner collects and exits: the
/// arena goes back through the decay check of whichever release empties it.
#[test]
fn last_block_freed_while_owner_releases_arena_with_decay() {
    model(|| {
        let a = ModelAllocator::with_decay(0);
        let owner = a.heap();
        let h1 = a.heap();
        let b = BlockPtr(owner.alloc(SMALL));

        let t = thread::spawn(move || {
            // SAFETY: b is live and given to this thread.
            unsafe { h1.dealloc(b.0, SMALL) };
            // Publish the batch now (as its allocation slow path would).
            h1.flush_remote_batches();
            h1
        });
        owner.collect_remote_frees();
        owner.exit();
        let h1 = t.join().unwrap();

        assert_eq!(a.check_heaps(), 0, "an abandoned heap is left");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!(s.arenas_mapped, 0, "\n{s}");
        assert_eq!(s.arenas_returned, 1, "\n{s}");
        assert!(!a.owns(b.0), "the released arena is still in the arena map");
        drop(h1);
    });
}

/// An arena emptied by one thread's exit while another thread requests a pool: the request's
/// decay check and the exit's race to unmap the empty arena, and the request may take a pool
/// of it first.
#[test]
fn pool_request_races_the_decay_of_an_emptied_arena() {
    model(|| {
        let a = ModelAllocator::with_decay(0);
        let owner = a.heap();
        let b = BlockPtr(owner.alloc(SMALL));

        let a2 = a.clone();
        let t = thread::spawn(move || {
            let got = a2.acquire_raw_pool(LARGE);
            // SAFETY: the pool is this thread's (handed out to it) and POOL_SIZE bytes long.
            unsafe { core::ptr::write_bytes(got.memory(), 0x5A, POOL_SIZE) };
            got
        });
        // SAFETY: b is live and ours.
        unsafe { owner.dealloc(b.0, SMALL) };
        owner.exit();
        let got = t.join().unwrap();

        // SAFETY: still handed out to the model, POOL_SIZE bytes long.
        let mem = unsafe { core::slice::from_raw_parts(got.memory(), POOL_SIZE) };
        assert!(mem.iter().all(|&x| x == 0x5A), "the pool taken was purged");
        assert!(a.owns(got.memory()), "the taken pool's arena was unmapped");
        a.check_arenas();
        let s = a.stats();
        assert_eq!(s.arenas_mapped, 1, "only the taken pool's arena stays\n{s}");
        assert_eq!(
            s.arenas_mapped_total - s.arenas_returned,
            1,
            "arenas mapped and returned disagree\n{s}"
        );

        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(got) };
        let s = a.stats();
        assert_eq!(s.arenas_mapped, 0, "the last arena did not decay\n{s}");
    });
}
