//! Model: **a remote free racing with the owner reclaiming its remote-free list**
//! (`remote.rs`: `free_remote`, `RemoteQueue`, `take_remote_blocks`; `Heap::collect_remote_frees`).
//!
//! The owner heap allocates blocks of one pool and hands them to other threads, which free
//! them (through a heap of their own, or with no heap at all) while the owner takes its
//! remote frees back and allocates again.
//!
//! Interleavings that matter:
//! * a freer's CAS on `Pool::remote` between the owner's `take_all` of the heap queue and its
//!   swap of the pool's word (the block is taken by that swap, or the freer finds the word
//!   0 and queues the pool again);
//! * two freers racing on the same pool's word (one finds the list empty and must push the
//!   pool, the other must not), with the owner's swap between or after them;
//! * the owner's swap between a freer's CAS onto an empty list and its push of the pool onto
//!   the heap queue (the owner cannot see the block yet; it must find it on a later collect);
//! * a freer overwriting `Pool::queue_next` while the owner still walks the taken queue;
//! * the owner taking a list whose bottom block (the one whose CAS made it non-empty) was
//!   pushed by either freer, and putting it and the blocks above it on the pool, its own
//!   free list empty or not (`RemoteList`: the list is taken with its count and bottom;
//!   `Pool::take_back` splices it in through that bottom).
//!
//! Without the protocol: a block pushed after the owner's swap but seeing the pool still
//! queued would never be queued (lost: the pool keeps it counted in `used` forever); a pool pushed
//! twice would be walked twice or form a cycle; a pop-based reclaim would hand a block out
//! twice (ABA); a bottom moved by every push would cut the owner's free list off (lost
//! blocks), and a wrong count would make `Pool::used` lie (the statistics). The models
//! check that after everyone is done every freed block comes back to the owner's allocations
//! exactly once, that nothing stays queued, and that the statistics add up.
#![cfg(loom)]

mod common;

use common::{assert_distinct, assert_pools, capacity_of, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use std::alloc::Layout;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Two blocks freed remotely (one through another heap, one with no heap) while the owner
/// collects and allocates once; then the owner collects and allocates twice more. The three
/// allocations must be exactly the two freed blocks and the next never-used block.
#[test]
fn remote_frees_race_owner_reclaim() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let other = a.heap();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));
        let next = BlockPtr(b1.0.wrapping_add(SMALL.size()));
        assert_eq!(b1.0 as usize - b0.0 as usize, SMALL.size());

        let t1 = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { other.dealloc(b0.0, SMALL) };
            // Publish the batch now (as its allocation slow path would).
            other.flush_remote_batches();
            other
        });
        let a2 = a.clone();
        let t2 = thread::spawn(move || {
            // SAFETY: b1 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b1.0, SMALL) };
        });

        owner.collect_remote_frees();
        let x = BlockPtr(owner.alloc(SMALL));
        OUTCOMES[usize::from(x == b0) + 2 * usize::from(x == b1)].fetch_add(1, Relaxed);

        let other = t1.join().unwrap();
        t2.join().unwrap();

        owner.collect_remote_frees();
        assert!(
            !owner.has_remote_frees(),
            "a pool stayed queued after collecting"
        );
        let y1 = BlockPtr(owner.alloc(SMALL));
        let y2 = BlockPtr(owner.alloc(SMALL));
        let mut got = [x, y1, y2];
        assert_distinct(&got);
        got.sort();
        let mut want = [b0, b1, next];
        want.sort();
        assert_eq!(got, want, "freed blocks did not come back exactly once");
        assert_pools(&a, 3, 1);

        for b in got {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(b.0, SMALL) };
        }
        assert_pools(&a, 0, 1);
        let s = a.stats();
        let class = pyheap::alloc::size_class(SMALL.size(), SMALL.align()).unwrap();
        assert_eq!(s.classes[class].free_blocks, capacity_of(&a, SMALL));
        drop(other);
    });
    // The exploration must have seen the owner's early collect find each freed block, and
    // find none (a check on loom's coverage, see `src/sync/loom_dpor.rs`).
    let seen = OUTCOMES.each_ref().map(|n| n.load(Relaxed));
    assert!(
        seen[0] > 0 && seen[1] > 0 && seen[2] > 0,
        "outcomes {seen:?}"
    );
}

/// Which block the owner's concurrent allocation got: [fresh, b0, b1].
static OUTCOMES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

/// Two freers on the same pool through their own heaps, while the owner collects twice.
/// Then everything the owner allocates up to the pool's capacity (31 blocks of 512 bytes) is
/// distinct, and the two freed blocks are among it.
#[test]
fn two_freers_same_pool_owner_collects_twice() {
    model(|| {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let h1 = a.heap();
        let h2 = a.heap();
        let b0 = BlockPtr(owner.alloc(LARGE));
        let b1 = BlockPtr(owner.alloc(LARGE));

        let t1 = thread::spawn(move || {
            // SAFETY: b0 is given to this thread.
            unsafe { h1.dealloc(b0.0, LARGE) };
            // Publish the batch now (as its allocation slow path would).
            h1.flush_remote_batches();
            h1
        });
        let t2 = thread::spawn(move || {
            // SAFETY: b1 is given to this thread.
            unsafe { h2.dealloc(b1.0, LARGE) };
            // Publish the batch now (as its allocation slow path would).
            h2.flush_remote_batches();
            h2
        });
        owner.collect_remote_frees();
        owner.collect_remote_frees();

        let (h1, h2) = (t1.join().unwrap(), t2.join().unwrap());
        owner.collect_remote_frees();
        assert!(!owner.has_remote_frees());
        assert_pools(&a, 0, 1);

        // The whole pool's capacity: every block once, b0 and b1 among them.
        let cap = capacity_of(&a, LARGE);
        let mut all = Vec::with_capacity(cap);
        for _ in 0..cap {
            all.push(BlockPtr(owner.alloc(LARGE)));
        }
        assert!(
            all.contains(&b0) && all.contains(&b1),
            "a freed block was lost"
        );
        all.sort();
        assert_distinct(&all);
        assert_pools(&a, cap, 1);
        for b in all {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(b.0, LARGE) };
        }
        assert_pools(&a, 0, 1);
        drop((h1, h2));
    });
}

/// Two freers on the same pool (through a heap, and with no heap) while the owner, whose own
/// free list holds a block, collects and allocates once; then it collects again. Whichever
/// freer's block is at the bottom of the list the owner takes, and whether the owner's free
/// list is empty then or not, the three blocks come back exactly once, before any
/// never-used block, and the statistics count them exactly.
///
/// With blocks of 32 bytes (messages that can carry others: a list taken back while the pool
/// has no message goes on the pool whole, its bottom unused) and of 8 bytes (plain lists,
/// spliced onto the free list through their bottom: a wrong bottom loses the blocks below
/// it, which `r2_bottom_moves_with_every_push` makes happen).
#[test]
fn remote_list_spliced_under_local_free_list() {
    spliced_under_local_free_list(SMALL);
}

/// [`remote_list_spliced_under_local_free_list`] with 8-byte blocks.
#[test]
fn remote_list_of_8_byte_blocks_spliced_under_local_free_list() {
    spliced_under_local_free_list(EIGHT);
}

fn spliced_under_local_free_list(layout: Layout) {
    model(move || {
        let a = ModelAllocator::new(1);
        let owner = a.heap();
        let other = a.heap();
        let b0 = BlockPtr(owner.alloc(layout));
        let b1 = BlockPtr(owner.alloc(layout));
        let b2 = BlockPtr(owner.alloc(layout));
        let next = BlockPtr(b2.0.wrapping_add(layout.size()));
        // SAFETY: b2 is ours: the pool's own free list is [b2].
        unsafe { owner.dealloc(b2.0, layout) };

        let t1 = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { other.dealloc(b0.0, layout) };
            // Publish the batch now (as its allocation slow path would).
            other.flush_remote_batches();
            other
        });
        let a2 = a.clone();
        let t2 = thread::spawn(move || {
            // SAFETY: b1 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b1.0, layout) };
        });

        owner.collect_remote_frees();
        let x = BlockPtr(owner.alloc(layout));
        assert_ne!(x, next, "a never-used block before a free one");

        let other = t1.join().unwrap();
        t2.join().unwrap();
        owner.collect_remote_frees();
        assert!(!owner.has_remote_frees());
        assert_pools(&a, 1, 1);

        let y1 = BlockPtr(owner.alloc(layout));
        let y2 = BlockPtr(owner.alloc(layout));
        let mut got = [x, y1, y2];
        got.sort();
        let mut want = [b0, b1, b2];
        want.sort();
        assert_eq!(got, want, "freed blocks did not come back exactly once");
        let z = BlockPtr(owner.alloc(layout));
        assert_eq!(z, next, "a freed block came back twice");
        assert_pools(&a, 4, 1);
        for b in [x, y1, y2, z] {
            // SAFETY: live blocks of ours.
            unsafe { owner.dealloc(b.0, layout) };
        }
        assert_pools(&a, 0, 1);
        drop(other);
    });
}

/// Blocks of the smallest class: no room for a message's count, so their lists are plain.
const EIGHT: Layout = match Layout::from_size_align(8, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};
