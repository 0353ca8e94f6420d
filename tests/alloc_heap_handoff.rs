//! Data handed from an exited thread to a new one: the new thread carries on with the exited
//! thread's heap.
//!
//! Two chains of threads, run one after the other in a random order (larson's pattern,
//! serialized): each thread takes its chain's array of live blocks from the thread before it,
//! which has exited, frees them one by one and allocates new ones, then exits. Its first free
//! of one of those blocks adopts the heap that owns it (its predecessor's, abandoned), though
//! the abandoned heap at the head of the list is often the *other* chain's (abandoned last).
//! With the right heap, its frees of the predecessor's blocks are local frees. With the other
//! chain's heap, each of them would be a remote free into an unheld abandoned heap, which
//! claims the heap and lets it go again (a heap looked at each time: 459 heaps looked at
//! instead of 120 when the adoption is disabled).
//!
//! The work is counted, not timed (`pyheap::alloc::slow_path_work`): each thread looks at a
//! few heaps (its predecessor's to adopt it, its own at exit, the one std's late frees at
//! thread exit reach), not at one per block. Every block's contents are
//! checked before it is freed, and at the end blocks and heaps are back where they started.
//! A thread that only frees blocks of a held heap binds a heap after a few frees (not one
//! per free through the heapless path).
//!
//! One test in this binary: it asserts on process-wide counters.

mod common;

use common::{pattern_byte, Rng};
use pyheap::alloc::{slow_path_work, stats};
use std::sync::{Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Live blocks per chain.
const SLOTS: usize = 300;
/// Threads per chain.
const GENERATIONS: usize = 20;

/// A block of a random pool size filled with a pattern of its tag.
struct Block {
    tag: u64,
    bytes: Vec<u8>,
}

impl Block {
    fn new(rng: &mut Rng, tag: u64) -> Block {
        let len = rng.range(8, 512);
        Block {
            tag,
            bytes: (0..len).map(|i| pattern_byte(tag, i)).collect(),
        }
    }

    fn check(&self) {
        for (i, &b) in self.bytes.iter().enumerate() {
            assert_eq!(b, pattern_byte(self.tag, i), "block {} corrupt", self.tag);
        }
    }
}

struct Chain {
    slots: Vec<Block>,
    rng: Rng,
    next_tag: u64,
}

impl Chain {
    fn new(seed: u64) -> Chain {
        let mut rng = Rng::new(seed);
        let slots = (0..SLOTS as u64)
            .map(|t| Block::new(&mut rng, seed << 32 | t))
            .collect();
        Chain {
            slots,
            rng,
            next_tag: seed << 32 | SLOTS as u64,
        }
    }

    fn empty() -> Chain {
        Chain {
            slots: Vec::new(),
            rng: Rng::new(0),
            next_tag: 0,
        }
    }

    /// Replace every block, in order: the first act is a free of the predecessor's block.
    fn generation(&mut self) {
        for i in 0..SLOTS {
            self.slots[i].check();
            let tag = self.next_tag;
            self.next_tag += 1;
            // The old block is freed when the new one replaces it (allocated first, but in
            // this thread's heap either way: the free that binds it comes before, below).
            let old = std::mem::replace(
                &mut self.slots[i],
                Block {
                    tag,
                    bytes: Vec::new(),
                },
            );
            drop(old);
            self.slots[i] = Block::new(&mut self.rng, tag);
        }
    }
}

/// Hand `c` to a new thread, which runs one generation and exits.
fn hand_off(c: &mut Chain) {
    let mut moved = std::mem::replace(c, Chain::empty());
    *c = thread::spawn(move || {
        moved.generation();
        moved
    })
    .join()
    .unwrap();
}

fn heaps() -> (usize, usize) {
    let s = stats();
    (s.heaps_active, s.heaps_abandoned)
}

#[test]
fn a_thread_handed_an_exited_threads_blocks_adopts_its_heap() {
    common::wait_for_harness_idle();
    // Warm-up: std's one-time thread machinery, and this thread's heap.
    thread::spawn(|| drop(vec![1u8; 10])).join().unwrap();
    let mut chains = vec![Chain::new(1), Chain::new(2)];
    // Each chain's blocks into a heap of its own: the chains' first threads run at once (so
    // neither adopts the other's heap), then exit.
    let barrier = Arc::new(Barrier::new(2));
    let firsts: Vec<_> = chains
        .drain(..)
        .map(|mut c| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                c.generation();
                barrier.wait();
                c
            })
        })
        .collect();
    chains = firsts.into_iter().map(|t| t.join().unwrap()).collect();
    let base = heaps();
    let blocks_base = stats().blocks_in_use();
    let w0 = slow_path_work();
    // The chains take turns in a random order, so that the abandoned heap at the head of
    // the list (the last one abandoned) is as often the other chain's as the chain's own.
    let mut order = Rng::new(7);
    for _ in 0..GENERATIONS {
        let first = order.below(2);
        hand_off(&mut chains[first]);
        hand_off(&mut chains[1 - first]);
    }
    let w = slow_path_work() - w0;
    // Read before printing: the test harness's output capture allocates.
    let (heaps_now, blocks_now) = (heaps(), stats().blocks_in_use());
    let threads = (2 * GENERATIONS) as u64;
    println!(
        "{threads} threads: {} binds, {} exits, {} heaps looked at",
        w.heap_binds, w.heap_exits, w.heaps_visited
    );
    assert_eq!(w.heap_exits, threads, "{w:?}");
    assert!(
        w.heaps_visited <= 5 * threads,
        "{} heaps looked at by {threads} threads that each freed their predecessor's {SLOTS} \
         blocks: the frees were remote frees into an abandoned heap (the thread did not adopt \
         its predecessor's heap)",
        w.heaps_visited
    );
    assert_eq!(heaps_now, base, "one abandoned heap per chain, as before");
    assert_eq!(blocks_now, blocks_base, "each chain's {SLOTS} blocks");

    for c in &chains {
        for b in &c.slots {
            b.check();
        }
    }
    drop(chains);
    let (active, abandoned) = heaps();
    assert_eq!(
        abandoned,
        base.1 - 2,
        "the chains' heaps given back with their last blocks"
    );
    assert_eq!(active, base.0);

    // A thread that only frees blocks of a heap still held (this thread's) adopts nothing,
    // but binds a heap after a few frees, and frees the rest through it as before.
    let boxes: Vec<Box<[u8; 64]>> = (0..100).map(|i| Box::new([i as u8; 64])).collect();
    let w0 = slow_path_work();
    thread::spawn(move || {
        for (i, b) in boxes.into_iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8), "a box corrupt");
        }
    })
    .join()
    .unwrap();
    let w = slow_path_work() - w0;
    assert_eq!(
        (w.heap_binds, w.heap_exits),
        (1, 1),
        "a thread that freed 100 blocks of a held heap: {w:?}"
    );
}
