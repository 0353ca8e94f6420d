//! `PoolAlloc` as the global allocator under what real programs do: std collections growing
//! across the 512-byte small/large boundary, `realloc` moving blocks between size classes and
//! to and from the system allocator, every alignment from 1 to 4096, recycled memory handed out
//! by `alloc_zeroed`, and threads freeing each other's blocks or exiting with blocks alive.
//!
//! Users care because a global allocator bug shows up as silent corruption anywhere in the
//! program: every block must be aligned, writable, disjoint from every other live block, and
//! keep its contents until freed.

mod common;

use common::{first_mismatch, Block, Rng};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[test]
fn vec_growth_through_1_to_2048_bytes_keeps_every_element() {
    for elem in [1usize, 3, 8, 24] {
        let mut vecs: Vec<Vec<u8>> = Vec::new();
        for round in 0..20u8 {
            let mut v = Vec::new();
            for i in 0..(2048 / elem) * elem {
                v.push((i as u8).wrapping_add(round));
            }
            vecs.push(v);
        }
        for (round, v) in vecs.iter().enumerate() {
            assert!(v.len() >= 2040);
            for (i, &b) in v.iter().enumerate() {
                assert_eq!(b, (i as u8).wrapping_add(round as u8));
            }
        }
    }
    // u64 elements, shrink_to_fit crossing back below the threshold.
    let mut v: Vec<u64> = (0..256).collect();
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<u64>>());
}

#[test]
fn strings_and_maps_hold_their_contents() {
    let mut strings: Vec<String> = Vec::new();
    for i in 0..3000 {
        let mut s = String::new();
        for j in 0..(i % 700) {
            s.push(char::from(b'a' + ((i + j) % 26) as u8));
        }
        strings.push(s);
    }
    let mut hash: HashMap<String, usize> = HashMap::new();
    let mut btree: BTreeMap<usize, String> = BTreeMap::new();
    for (i, s) in strings.iter().enumerate() {
        hash.insert(format!("key-{i}-{}", s.len()), i);
        btree.insert(i, s.clone());
    }
    for (i, s) in strings.iter().enumerate() {
        assert_eq!(hash[&format!("key-{i}-{}", s.len())], i);
        assert_eq!(&btree[&i], s);
        assert!(s
            .bytes()
            .enumerate()
            .all(|(j, b)| b == b'a' + ((i + j) % 26) as u8));
    }
    // Remove half, then add again: recycled blocks.
    for i in (0..3000).step_by(2) {
        btree.remove(&i);
    }
    for i in (0..3000).step_by(2) {
        btree.insert(i, format!("{i:0>width$}", width = i % 600));
    }
    for (i, s) in &btree {
        if i % 2 == 0 {
            assert_eq!(s, &format!("{i:0>width$}", width = i % 600));
        } else {
            assert_eq!(s, &strings[*i]);
        }
    }
    let set: HashSet<&str> = strings.iter().map(|s| s.as_str()).collect();
    assert!(set.len() > 600);
}

#[test]
fn sorting_many_boxed_values_keeps_them_intact() {
    let mut rng = Rng::new(7);
    let mut items: Vec<(u64, Box<[u8]>)> = (0..5000)
        .map(|_| {
            let key = rng.next_u64();
            let len = rng.range(1, 1100);
            (key, vec![key as u8; len].into_boxed_slice())
        })
        .collect();
    items.sort_by_key(|(k, _)| *k);
    assert!(items.windows(2).all(|w| w[0].0 <= w[1].0));
    for (k, v) in &items {
        assert!(v.iter().all(|&b| b == *k as u8));
    }
    let mut words: Vec<String> = (0..5000)
        .map(|i| format!("{}", (i * 7919) % 5000))
        .collect();
    words.sort();
    words.dedup();
    assert_eq!(words.len(), 5000);
}

/// Sizes that exercise every size class edge and the small/large boundary.
fn interesting_sizes() -> Vec<usize> {
    let mut sizes = vec![1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 255, 256, 257];
    sizes.extend([
        496, 511, 512, 513, 520, 1000, 1024, 2048, 4096, 10_000, 100_000,
    ]);
    sizes
}

#[test]
fn realloc_preserves_contents_across_classes_and_the_512_byte_boundary() {
    let sizes = interesting_sizes();
    for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
        for &from in &sizes {
            for &to in &sizes {
                let layout = Layout::from_size_align(from, align).unwrap();
                let tag = (from * 31 + to) as u64;
                // SAFETY: non-zero size; the block is filled, resized, checked and freed with
                // the layouts realloc's contract asks for.
                unsafe {
                    let p = alloc(layout);
                    assert!(!p.is_null());
                    common::fill(p, from, tag);
                    let q = realloc(p, layout, to);
                    assert!(!q.is_null(), "realloc {from} -> {to} align {align}");
                    assert_eq!(
                        q as usize % align,
                        0,
                        "realloc {from} -> {to} align {align}"
                    );
                    let kept = from.min(to);
                    assert_eq!(
                        first_mismatch(q, kept, tag),
                        None,
                        "realloc {from} -> {to} align {align} lost contents"
                    );
                    // The whole new size is writable.
                    common::fill(q, to, tag + 1);
                    dealloc(q, Layout::from_size_align(to, align).unwrap());
                }
            }
        }
    }
}

/// `realloc`'s fast path copies a short block (up to 64 bytes) inline, as whole 8-byte words
/// (`n` rounded up to 8, in two overlapping chunks of 8, 16 or 32 bytes). Every pair of sizes
/// from 1 to 72 bytes, in every alignment the pools serve: the kept bytes must arrive, and
/// nothing may be written past the new block. For the second, the block the move lands in is
/// made the one just freed in its pool (blocks come back last freed, first out), with its
/// neighbour in the pool live and filled: a copy that overran the block would change it.
#[test]
fn realloc_of_short_blocks_keeps_the_bytes_and_writes_nothing_past_the_block() {
    for align in [1usize, 8, 16] {
        for from in 1..=72usize {
            for to in 1..=72usize {
                let layout = Layout::from_size_align(from, align).unwrap();
                let to_layout = Layout::from_size_align(to, align).unwrap();
                let tag = ((align * 1000 + from) * 1000 + to) as u64;
                // SAFETY: non-zero sizes; every block is filled, checked and freed with the
                // layout it was allocated with, or resized with realloc's contract.
                unsafe {
                    let p = alloc(layout);
                    assert!(!p.is_null());
                    common::fill(p, from, tag);
                    // Two neighbours of the destination class; the first freed, so that the
                    // move takes it, the second live.
                    let (landing, neighbour, extra) = adjacent_blocks(to_layout);
                    common::fill(neighbour, to, !tag);
                    dealloc(landing, to_layout);
                    let q = realloc(p, layout, to);
                    assert!(!q.is_null(), "realloc {from} -> {to} align {align}");
                    let same_class = pyheap::alloc::size_class(from, align)
                        == pyheap::alloc::size_class(to, align);
                    assert!(same_class || q == landing, "the move took another block");
                    assert_eq!(
                        q as usize % align,
                        0,
                        "realloc {from} -> {to} align {align}"
                    );
                    assert_eq!(
                        first_mismatch(q, from.min(to), tag),
                        None,
                        "realloc {from} -> {to} align {align} lost contents"
                    );
                    assert_eq!(
                        first_mismatch(neighbour, to, !tag),
                        None,
                        "realloc {from} -> {to} align {align} wrote past the new block"
                    );
                    common::fill(q, to, tag + 1);
                    dealloc(q, to_layout);
                    dealloc(neighbour, to_layout);
                    for b in extra {
                        dealloc(b, to_layout);
                    }
                }
            }
        }
    }
}

/// Two live blocks of `layout`, the second right after the first in their pool, and the
/// blocks allocated on the way there (the free lists hand out blocks in no fixed order).
fn adjacent_blocks(layout: Layout) -> (*mut u8, *mut u8, Vec<*mut u8>) {
    let size = pyheap::alloc::size_class(layout.size(), layout.align())
        .map(pyheap::alloc::class_block_size)
        .expect("a pool size");
    let mut extra = Vec::new();
    // SAFETY: a non-zero layout.
    let mut prev = unsafe { alloc(layout) };
    for _ in 0..100_000 {
        // SAFETY: as above.
        let next = unsafe { alloc(layout) };
        assert!(!prev.is_null() && !next.is_null());
        if next as usize == prev as usize + size {
            return (prev, next, extra);
        }
        extra.push(prev);
        prev = next;
    }
    panic!("no two adjacent blocks of {size} bytes in 100,000 allocations");
}

/// The same short reallocs from another thread than the one that allocated: the block is in a
/// pool of the first thread's heap, so the fast path must leave it to the general one (which
/// frees it remotely), and the contents still arrive.
#[test]
fn realloc_of_short_blocks_allocated_by_another_thread() {
    let blocks: Vec<Block> = thread::spawn(|| {
        (1..=72usize)
            .flat_map(|from| {
                (0..4u64).map(move |k| {
                    let layout = Layout::from_size_align(from, 8).unwrap();
                    // SAFETY: non-zero size; filled over its whole size.
                    unsafe {
                        let p = alloc(layout);
                        assert!(!p.is_null());
                        common::fill(p, from, from as u64 * 10 + k);
                        Block {
                            ptr: p,
                            layout,
                            tag: from as u64 * 10 + k,
                        }
                    }
                })
            })
            .collect()
    })
    .join()
    .unwrap();
    for b in blocks {
        let from = b.layout.size();
        let to = if from < 40 { from * 2 } else { from / 2 };
        // SAFETY: a live block of `b.layout`, filled with `b.tag`'s pattern; resized, checked
        // and freed with the layouts realloc's contract asks for.
        unsafe {
            let q = realloc(b.ptr, b.layout, to);
            assert!(!q.is_null());
            assert_eq!(
                first_mismatch(q, from.min(to), b.tag),
                None,
                "realloc {from} -> {to} of another thread's block lost contents"
            );
            dealloc(q, Layout::from_size_align(to, 8).unwrap());
        }
    }
}

/// Short reallocs of blocks whose heap is busy on another thread: one thread allocates
/// 20-byte blocks (the 32-byte class) and keeps allocating from that class while a second
/// thread moves each of them to the 40-byte class with `realloc`. The old block must go back
/// to its own heap as a remote free (`realloc`'s fast path tests the pool's owner first): put
/// on the first thread's free list by the second thread, it races with the first thread's
/// pops, and a block comes out twice, which the tags below catch.
#[test]
fn short_reallocs_of_a_busy_threads_blocks() {
    const ROUNDS: u64 = 20_000;
    let l20 = Layout::from_size_align(20, 8).unwrap();
    let l40 = Layout::from_size_align(40, 8).unwrap();
    let (tx, rx) = mpsc::sync_channel::<Block>(64);
    let mover = thread::spawn(move || {
        for b in rx {
            // SAFETY: a live block of `b.layout`, filled with `b.tag`'s pattern; resized,
            // checked, filled and freed with the layouts realloc's contract asks for.
            unsafe {
                let q = realloc(b.ptr, b.layout, 40);
                assert!(!q.is_null());
                assert_eq!(first_mismatch(q, 20, b.tag), None, "the move lost contents");
                common::fill(q, 40, b.tag);
                assert_eq!(
                    first_mismatch(q, 40, b.tag),
                    None,
                    "a moved block is shared"
                );
                dealloc(q, l40);
            }
        }
    });
    let mut mine: Vec<Block> = Vec::new();
    for round in 0..ROUNDS {
        // SAFETY: non-zero layout; each block is filled over its size before it is shared.
        unsafe {
            let p = alloc(l20);
            assert!(!p.is_null());
            common::fill(p, 20, round * 2);
            tx.send(Block {
                ptr: p,
                layout: l20,
                tag: round * 2,
            })
            .unwrap();
            let own = alloc(l20);
            assert!(!own.is_null());
            common::fill(own, 20, round * 2 + 1);
            mine.push(Block {
                ptr: own,
                layout: l20,
                tag: round * 2 + 1,
            });
        }
        if mine.len() == 256 {
            for b in mine.drain(..) {
                // SAFETY: a live block of `b.layout` filled with `b.tag`'s pattern.
                unsafe {
                    assert_eq!(
                        first_mismatch(b.ptr, 20, b.tag),
                        None,
                        "a block of this thread was handed out twice"
                    );
                    dealloc(b.ptr, b.layout);
                }
            }
        }
    }
    drop(tx);
    mover.join().unwrap();
    for b in mine {
        // SAFETY: as above.
        unsafe {
            assert_eq!(first_mismatch(b.ptr, 20, b.tag), None);
            dealloc(b.ptr, b.layout);
        }
    }
}

#[test]
fn vec_grow_and_shrink_through_realloc_keeps_bytes() {
    let mut v: Vec<u8> = Vec::new();
    for i in 0..5000usize {
        v.push((i % 251) as u8);
        if i % 700 == 699 {
            v.shrink_to_fit();
        }
    }
    while v.len() > 1 {
        let n = v.len() / 2;
        v.truncate(n);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}

#[test]
fn every_alignment_from_1_to_4096_is_honoured() {
    let mut live = Vec::new();
    let mut align = 1;
    while align <= 4096 {
        for size in [1, 8, 16, 24, 100, 512, 513, 4096, 5000] {
            let b = Block::new(size, align, (align + size) as u64);
            live.push(b);
        }
        align *= 2;
    }
    for b in live {
        b.free();
    }
}

#[test]
fn alignments_above_the_block_alignment_on_small_sizes() {
    // 32..4096 on sizes that would otherwise be served from pools.
    let mut rng = Rng::new(3);
    let mut live = Vec::new();
    for round in 0..2000 {
        let align = 32 << rng.below(8); // 32..=4096
        let size = rng.range(1, 512);
        live.push(Block::new(size, align, round));
        if live.len() > 100 {
            live.swap_remove(rng.below(100)).free();
        }
    }
    for b in live {
        b.free();
    }
}

#[test]
fn alloc_zeroed_gives_zero_memory_even_for_recycled_blocks() {
    let sizes = interesting_sizes();
    for round in 0..30 {
        // Dirty many blocks of every size and free them, so that alloc_zeroed next gets
        // recycled blocks.
        let mut dirty = Vec::new();
        for &size in &sizes {
            for _ in 0..20 {
                dirty.push(Block::new(size, 8, 0xA5 + round));
            }
        }
        for b in dirty {
            b.free();
        }
        let mut zeroed = Vec::new();
        for &size in &sizes {
            for align in [1, 8, 16, 64] {
                for _ in 0..5 {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { alloc_zeroed(layout) };
                    assert!(!p.is_null());
                    // SAFETY: `p` has `size` readable bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
                    if let Some(i) = bytes.iter().position(|&b| b != 0) {
                        panic!(
                            "alloc_zeroed({layout:?}) byte {i} is {:#x} (round {round})",
                            bytes[i]
                        );
                    }
                    // SAFETY: as above, writable.
                    unsafe { p.write_bytes(0xFF, size) };
                    zeroed.push((p, layout));
                }
            }
        }
        for (p, layout) in zeroed {
            // SAFETY: allocated above with `layout`.
            unsafe { dealloc(p, layout) };
        }
    }
    // vec![0; n] goes through alloc_zeroed too.
    for _ in 0..200 {
        let mut v = vec![0u8; 300];
        assert!(v.iter().all(|&b| b == 0));
        v.fill(0xEE);
    }
}

#[test]
fn eight_threads_free_each_others_blocks() {
    const THREADS: usize = 8;
    const PER_ROUND: usize = 400;
    const ROUNDS: usize = 10;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..THREADS {
        let (tx, rx) = mpsc::channel::<Vec<Block>>();
        senders.push(tx);
        receivers.push(rx);
    }
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let senders = senders.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(me as u64 + 100);
                let mut freed = 0;
                for round in 0..ROUNDS {
                    let batch: Vec<Block> = (0..PER_ROUND)
                        .map(|i| {
                            let size = rng.range(1, 600);
                            let tag = ((me as u64) << 32) | ((round * PER_ROUND + i) as u64);
                            Block::new(size, 1 << rng.below(5), tag)
                        })
                        .collect();
                    senders[(me + 1 + round % (THREADS - 1)) % THREADS]
                        .send(batch)
                        .unwrap();
                    barrier.wait();
                    while let Ok(batch) = rx.try_recv() {
                        for b in batch {
                            assert_ne!((b.tag >> 32) as usize, me);
                            b.free();
                            freed += 1;
                        }
                    }
                    barrier.wait();
                }
                freed
            })
        })
        .collect();
    drop(senders);
    let freed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(freed, THREADS * PER_ROUND * ROUNDS);
}

#[test]
fn threads_exiting_with_live_blocks_leave_them_usable() {
    let handles: Vec<_> = (0..6u64)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng::new(t);
                (0..2000)
                    .map(|i| Block::new(rng.range(1, 800), 8, (t << 32) | i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Block> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // New threads adopt the exited threads' heaps and allocate from their pools: the live
    // blocks must not be handed out again.
    let fresh: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                (0..3000)
                    .map(|i| Block::new(1 + (i as usize % 500), 8, (99 << 40) | (t << 32) | i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let fresh: Vec<Block> = fresh.into_iter().flat_map(|h| h.join().unwrap()).collect();
    for b in &all {
        b.verify();
    }
    all.extend(fresh);
    for b in all {
        b.free();
    }
}
