//! Model: **the arena manager's lock** (`lock.rs`'s `RawLock`, `ArenaManager::acquire_pool`
//! and `release_pool`).
//!
//! Two threads take pools (of different size classes, so each needs its own) and give them
//! back at once: picking an arena, mapping a new one when there is none (outside the lock,
//! then inserting it under the lock), taking a pool, returning pools and returning an empty
//! arena to the OS (or keeping it, when one empty arena is retained) all run concurrently.
//!
//! Interleavings that matter: both threads finding no arena and each mapping one; one thread
//! returning the last pool of an arena (unlinking it, or counting it as retained-empty) while
//! the other picks that arena or takes a pool from it; the lock's spin and hand-over (its
//! `Acquire` swap and `Release` store order the list updates).
//!
//! Without the lock (or with a lock that let two holders in) the arena lists would be
//! corrupted: a pool handed out twice, an arena unlinked twice, `nfree` or the empty count
//! off. loom does not track the plain memory of the lists, so the models check the result:
//! `check_arenas` walks every list under the lock and compares it with the arena headers and
//! the counters, and the heaps' pool counts must match the arenas'.
#![cfg(loom)]

mod common;

use common::{assert_pools, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use std::alloc::Layout;

fn take_and_return(a: &ModelAllocator, layout: Layout) {
    let h = a.heap();
    let b = h.alloc(layout);
    // SAFETY: our own live block.
    unsafe { h.dealloc(b, layout) };
    h.exit();
}

fn run(retained: usize) {
    model(move || {
        let a = ModelAllocator::new(retained);
        let a2 = a.clone();
        let t = thread::spawn(move || take_and_return(&a2, SMALL));
        take_and_return(&a, LARGE);
        t.join().unwrap();

        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert!((1..=2).contains(&s.arenas_mapped_total), "\n{s}");
        assert_eq!(
            s.arenas_mapped + s.arenas_returned,
            s.arenas_mapped_total,
            "\n{s}"
        );
        assert_eq!(
            s.arenas_mapped,
            s.arenas_mapped_total.min(retained),
            "\n{s}"
        );
        // Both threads exited with nothing alive: their heaps were retired.
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");

        // The lists still work: a new thread takes both classes again.
        let h = a.heap();
        let x = BlockPtr(h.alloc(SMALL));
        let y = BlockPtr(h.alloc(LARGE));
        assert_ne!(
            x.0 as usize & !(pyheap::alloc::POOL_SIZE - 1),
            y.0 as usize & !(pyheap::alloc::POOL_SIZE - 1),
            "one pool handed out for two classes"
        );
        assert_pools(&a, 2, 2);
        // SAFETY: our own live blocks.
        unsafe {
            h.dealloc(x.0, SMALL);
            h.dealloc(y.0, LARGE);
        }
        h.exit();
        assert_pools(&a, 0, 0);
    });
}

/// No empty arena retained: arenas go back to the OS while the other thread takes pools.
#[test]
fn two_threads_take_and_return_pools_no_retained_arena() {
    run(0);
}

/// One empty arena retained: the returning thread keeps the arena, the other may take a
/// pool from it (leaving the empty-retained count).
#[test]
fn two_threads_take_and_return_pools_one_retained_arena() {
    run(1);
}
