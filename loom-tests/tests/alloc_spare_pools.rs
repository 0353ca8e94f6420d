//! Model: **the empty pools a heap keeps (its spares) while its thread exits and another
//! thread frees its last block** (`Heap::keep_or_release`, `release_empty_pools`,
//! `collect_remote_frees_letting_go`; the remote-free protocol and `HeapRegistry::abandon`,
//! `let_go`).
//!
//! A heap keeps the pools that empty up to its spare limit, instead of giving them back to
//! their arenas. The owner here has two pools: the first's last live block is freed by
//! another thread while the owner takes its remote frees back and exits. Depending on the
//! interleaving, that pool empties while the owner holds its heap as its own (it becomes a
//! spare, which the exit gives back), during the exit (the exit takes the block back while
//! letting go: no spare may be kept then), or after the heap was let go (the freer claims the
//! heap and lets it go or retires it: no spare either). In every case, once every thread is
//! done, every pool must be back in its arena (the arena unmapped, none retained) and the
//! owner's heap retired: a spare kept by a heap nobody holds any more would keep it, its
//! pool and its arena forever.
#![cfg(loom)]

mod common;

use common::{assert_pools, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use pyheap::alloc::{class_block_size, size_class, POOL_SIZE};

/// Blocks of `LARGE` a pool holds.
fn per_pool() -> usize {
    POOL_SIZE / class_block_size(size_class(LARGE.size(), LARGE.align()).unwrap())
}

#[test]
fn spares_go_back_whoever_empties_the_pool() {
    model(|| {
        let a = ModelAllocator::with_spare_pools(0, 4);
        let owner = a.heap();
        let h1 = a.heap();
        let n = per_pool();
        // The first pool full, then one block of a second (the current pool).
        let first: Vec<BlockPtr> = (0..n).map(|_| BlockPtr(owner.alloc(LARGE))).collect();
        let second = BlockPtr(owner.alloc(LARGE));
        // All of the first pool's blocks but its last are freed by the owner.
        for b in &first[..n - 1] {
            // SAFETY: live, ours, freed once.
            unsafe { owner.dealloc(b.0, LARGE) };
        }
        let last = first[n - 1];

        let t1 = thread::spawn(move || {
            // SAFETY: `last` is live and given to this thread.
            unsafe { h1.dealloc(last.0, LARGE) };
            h1.flush_remote_batches();
            h1
        });
        // Takes the block back if it is there already: the first pool becomes a spare.
        owner.collect_remote_frees();
        // SAFETY: live, ours: the second pool, current, empties (and stays current).
        unsafe { owner.dealloc(second.0, LARGE) };
        owner.exit();
        let h1 = t1.join().unwrap();

        assert_eq!(a.check_heaps(), 0, "the owner's heap was not retired");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (1, 0), "\n{s}");
        assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
        h1.exit();
    });
}

/// A spare serves the heap's next pool of another class (made one of that class under the
/// arena lock) while another thread takes the allocator's statistics under that lock: it
/// sees two pools in use whenever it looks (the spare, of the old class or the new, and the
/// current one of `LARGE`), the new block is in the spare's memory, and the pools go back
/// at exit.
#[test]
fn a_spare_serves_another_class_while_stats_are_taken() {
    model(|| {
        let a = ModelAllocator::with_spare_pools(0, 4);
        let owner = a.heap();
        let n = per_pool();
        let first: Vec<BlockPtr> = (0..n).map(|_| BlockPtr(owner.alloc(LARGE))).collect();
        let second = BlockPtr(owner.alloc(LARGE));
        for b in &first {
            // SAFETY: live, ours, freed once: the first pool becomes a spare.
            unsafe { owner.dealloc(b.0, LARGE) };
        }
        let a2 = a.clone();
        let t = thread::spawn(move || {
            let s = a2.stats();
            assert_eq!(s.pools_in_use(), 2, "\n{s}");
            assert_eq!(
                s.blocks_in_use(),
                1 + s.classes[small_class()].blocks_in_use
            );
        });
        let x = BlockPtr(owner.alloc(SMALL));
        let first_pool = first[0].0 as usize & !(POOL_SIZE - 1);
        assert_eq!(
            x.0 as usize & !(POOL_SIZE - 1),
            first_pool,
            "the small block is not in the spare"
        );
        t.join().unwrap();
        // SAFETY: live, ours, freed once.
        unsafe {
            owner.dealloc(x.0, SMALL);
            owner.dealloc(second.0, LARGE);
        }
        owner.exit();
        assert_eq!(a.check_heaps(), 0);
        assert_pools(&a, 0, 0);
    });
}

fn small_class() -> usize {
    size_class(SMALL.size(), SMALL.align()).unwrap()
}
