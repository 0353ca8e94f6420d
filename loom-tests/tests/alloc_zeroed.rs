//! Model: **`alloc_zeroed` after remote frees** (`Heap::alloc_zeroed`, `Pool::fresh`, the
//! remote-free protocol).
//!
//! `alloc_zeroed` skips the memset only for blocks from a pool's never-used tail of untouched
//! OS memory. A block freed by another thread comes back through the remote-free list with
//! its first word overwritten by the list link (and whatever its user wrote before): it must
//! be cleared. The owner fills a whole pool, gives two blocks to threads that free them
//! remotely, and allocates zeroed blocks while they do (finding the pool full, its slow path
//! collects the remote frees or takes a fresh pool), then until both freed blocks are back.
//!
//! Without the `fresh` bookkeeping (a recycled block reported as zero), the model sees a
//! non-zero byte.
#![cfg(loom)]

mod common;

use common::{assert_pools, capacity_of, model, LARGE};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

fn assert_zero(b: BlockPtr) {
    // SAFETY: a live block of LARGE.size() bytes.
    let bytes = unsafe { core::slice::from_raw_parts(b.0, LARGE.size()) };
    assert!(
        bytes.iter().all(|&x| x == 0),
        "alloc_zeroed returned dirty memory"
    );
}

#[test]
fn alloc_zeroed_after_remote_frees() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let h1 = a.heap();
        let first = BlockPtr(owner.alloc(LARGE));
        let cap = capacity_of(&a, LARGE);
        let mut blocks = vec![first];
        for _ in 1..cap {
            blocks.push(BlockPtr(owner.alloc(LARGE)));
        }
        for b in &blocks {
            // SAFETY: live blocks of LARGE.size() bytes.
            unsafe { core::ptr::write_bytes(b.0, 0xAB, LARGE.size()) };
        }
        let (b0, b1) = (blocks[3], blocks[7]);

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
        let z = BlockPtr(owner.alloc_zeroed(LARGE));
        assert_zero(z);
        let h1 = t1.join().unwrap();
        t2.join().unwrap();

        // Keep allocating zeroed blocks until both freed blocks came back (they are on the
        // full pool's lists once collected; the fresh pool, if one was taken, runs out
        // first). Each must be zero.
        owner.collect_remote_frees();
        let mut got = vec![z];
        let mut n = 0;
        while !(got.contains(&b0) && got.contains(&b1)) {
            let b = BlockPtr(owner.alloc_zeroed(LARGE));
            assert_zero(b);
            got.push(b);
            n += 1;
            assert!(n <= 2 * cap, "a remotely freed block never came back");
        }
        let live = blocks.len() - 2 + got.len();
        assert_pools(&a, live, a.stats().pools_in_use());
        for b in blocks.iter().filter(|b| **b != b0 && **b != b1).chain(&got) {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(b.0, LARGE) };
        }
        owner.exit();
        assert_pools(&a, 0, 0);
        drop(h1);
    });
}
