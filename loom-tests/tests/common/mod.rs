//! Shared by the loom models: the model runner with its default bound, and small helpers.

#![allow(dead_code)] // each model file uses a part of it

use pyheap::alloc::model::{BlockPtr, ModelAllocator, ModelHeap};
use std::alloc::Layout;

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// Run `f` under loom, exploring every interleaving with at most `LOOM_MAX_PREEMPTIONS`
/// (default [`DEFAULT_PREEMPTIONS`]) preemptions.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_at_least(0, f)
}

/// As [`model`], with at least `min` preemptions whatever `LOOM_MAX_PREEMPTIONS` says: for a
/// model whose bug needs more context switches than the default bound allows (each such
/// model says why in its doc).
pub fn model_at_least<F>(min: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    let bound = builder
        .preemption_bound
        .unwrap_or(DEFAULT_PREEMPTIONS)
        .max(min);
    builder.preemption_bound = Some(bound);
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom: {} executions in {:.1?} (preemption bound {bound})",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed()
    );
}

/// 32-byte blocks (size class 2).
pub const SMALL: Layout = match Layout::from_size_align(32, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// 512-byte blocks (the largest class: 31 blocks in an arena's first pool).
pub const LARGE: Layout = match Layout::from_size_align(512, 16) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// Assert that `blocks` are pairwise distinct.
pub fn assert_distinct(blocks: &[BlockPtr]) {
    for (i, a) in blocks.iter().enumerate() {
        for b in &blocks[i + 1..] {
            assert_ne!(a, b, "a block was handed out twice");
        }
    }
}

/// Assert that the allocator is quiescent and empty: no block in use, no pool held (when
/// `pools` is 0), and the arena manager's lists agree with the heaps' pool counts.
pub fn assert_pools(a: &ModelAllocator, blocks: usize, pools: usize) {
    let s = a.stats();
    assert_eq!(s.blocks_in_use(), blocks, "blocks in use\n{s}");
    assert_eq!(s.pools_in_use(), pools, "pools held by heaps\n{s}");
    assert_eq!(
        a.check_arenas(),
        pools,
        "pools handed out by the arenas\n{s}"
    );
}

/// Blocks of `layout` one pool holds, from the statistics (exactly one pool of that class in
/// use, quiescent).
pub fn capacity_of(a: &ModelAllocator, layout: Layout) -> usize {
    let class = pyheap::alloc::size_class(layout.size(), layout.align()).unwrap();
    let s = a.stats();
    let c = &s.classes[class];
    assert_eq!(c.pools, 1, "capacity_of wants exactly one pool\n{s}");
    c.free_blocks + c.blocks_in_use
}
pub mod gc;

/// The owner's one block freed through another heap (its batch published at once, as its
/// allocation slow path would) on a loom thread, while the owner collects its remote frees
/// and exits: the release of the owner's emptied pool races the remote free. Returns the
/// block's address and the freeing heap, joined.
pub fn free_last_block_remotely_while_owner_exits(a: &ModelAllocator) -> (BlockPtr, ModelHeap) {
    let owner = a.heap();
    let h1 = a.heap();
    let b = BlockPtr(owner.alloc(SMALL));
    let t = loom::thread::spawn(move || {
        // SAFETY: b is live and given to this thread.
        unsafe { h1.dealloc(b.0, SMALL) };
        h1.flush_remote_batches();
        h1
    });
    owner.collect_remote_frees();
    owner.exit();
    (b, t.join().unwrap())
}
