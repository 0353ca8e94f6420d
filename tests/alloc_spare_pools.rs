//! The pools a thread's frees empty stay the thread's, up to `SPARE_POOLS`, for its next
//! pools (`Heap`'s spares), with `PoolAlloc` as the global allocator: a LIFO batch of many
//! pools takes the same pools back in its next round; a spare serves another size class
//! with its blocks intact; no more than `SPARE_POOLS` are kept; the spares go back at thread
//! exit and at `purge()`; and a double free into a spare pool still aborts.
//!
//! Users care because the pools a thread keeps are memory it holds: bounded, and given back
//! when the thread ends or asks, or the allocator would leak a little with every thread.
//!
//! The statistics are process-wide, and this binary's tests run on threads of one process:
//! each test takes `SERIAL`, and only these tests allocate blocks of the classes they count.

mod common;

use pyheap::alloc::{class_block_size, size_class, stats, POOL_SIZE, SPARE_POOLS};
use pyheap::PoolAlloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;
use std::thread;

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A layout of `size` bytes, its size class and the blocks a pool of it holds.
fn class_of(size: usize) -> (Layout, usize, usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    let class = size_class(size, 8).unwrap();
    (layout, class, POOL_SIZE / class_block_size(class))
}

/// Pools of `class` held by heaps (spares included).
fn pools_of(class: usize) -> usize {
    stats().classes[class].pools
}

/// `n` blocks of `layout`, each filled with a byte pattern of its own (`tag` and its index).
fn alloc_filled(layout: Layout, n: usize, tag: u8) -> Vec<*mut u8> {
    (0..n)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` holds `layout.size()` bytes.
            unsafe { p.write_bytes(tag ^ i as u8, layout.size()) };
            p
        })
        .collect()
}

/// Check the patterns `alloc_filled` wrote, then free the blocks last first.
fn check_and_free(layout: Layout, blocks: Vec<*mut u8>, tag: u8) {
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: a live block of `layout.size()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
        assert!(
            bytes.iter().all(|&b| b == tag ^ i as u8),
            "block {i} lost its contents"
        );
    }
    for &p in blocks.iter().rev() {
        // SAFETY: allocated with `layout`, freed once.
        unsafe { GLOBAL.dealloc(p, layout) };
    }
}

/// A LIFO batch of 20 pools' worth of 512-byte blocks, three rounds on one thread: after the
/// first round's frees the 20 pools are still the thread's (19 spares and the current one),
/// and the next rounds take no other pool of the class; the other classes' pools do not
/// move (a spare of the class is taken before any other).
#[test]
fn a_lifo_batch_takes_its_emptied_pools_back() {
    let _s = serial();
    let (layout, class, per_pool) = class_of(512);
    thread::spawn(move || {
        let before = pools_of(class);
        for round in 0..3u8 {
            let blocks = alloc_filled(layout, 20 * per_pool, round);
            assert_eq!(pools_of(class), before + 20, "round {round}: pools in use");
            check_and_free(layout, blocks, round);
            assert_eq!(
                pools_of(class),
                before + 20,
                "round {round}: the emptied pools are kept"
            );
        }
        pyheap::alloc::purge();
        assert!(
            pools_of(class) <= before + 1,
            "purge() gave the spares back"
        );
    })
    .join()
    .unwrap();
}

/// Three times `SPARE_POOLS` pools emptied: at most `SPARE_POOLS` are kept (plus the current
/// pool), the rest go back to their arenas at once.
#[test]
fn no_more_than_spare_pools_are_kept() {
    let _s = serial();
    let (layout, class, per_pool) = class_of(496);
    thread::spawn(move || {
        let before = pools_of(class);
        let blocks = alloc_filled(layout, 3 * SPARE_POOLS * per_pool, 7);
        assert_eq!(pools_of(class), before + 3 * SPARE_POOLS);
        check_and_free(layout, blocks, 7);
        assert_eq!(pools_of(class), before + SPARE_POOLS + 1);
    })
    .join()
    .unwrap();
}

/// Spares of one class serve another: after 10 pools of 480-byte blocks are emptied, 10
/// pools' worth of 464-byte blocks take the 9 spares and one pool more (11 pools of the two
/// classes in all, as at the peak of the first batch plus one), and both batches' blocks
/// keep their contents.
#[test]
fn a_spare_serves_another_size_class() {
    let _s = serial();
    let (a, class_a, per_a) = class_of(480);
    let (b, class_b, per_b) = class_of(464);
    thread::spawn(move || {
        let (before_a, before_b) = (pools_of(class_a), pools_of(class_b));
        let blocks = alloc_filled(a, 10 * per_a, 1);
        check_and_free(a, blocks, 1);
        assert_eq!(pools_of(class_a), before_a + 10);
        // 9 spares and the current pool of `a`; `b` takes the 9 spares and one pool more.
        let blocks = alloc_filled(b, 10 * per_b, 2);
        assert_eq!(pools_of(class_a), before_a + 1, "the spares changed class");
        assert_eq!(pools_of(class_b), before_b + 10);
        check_and_free(b, blocks, 2);
    })
    .join()
    .unwrap();
}

/// A thread that exits with spares gives them back: afterwards it holds no pool of the
/// class, and the arenas took them (no pool of the class in use at all).
#[test]
fn an_exiting_thread_gives_its_spares_back() {
    let _s = serial();
    let (layout, class, per_pool) = class_of(448);
    let before = pools_of(class);
    thread::spawn(move || {
        let blocks = alloc_filled(layout, 12 * per_pool, 3);
        check_and_free(layout, blocks, 3);
        assert_eq!(pools_of(class), before + 12);
    })
    .join()
    .unwrap();
    assert_eq!(
        pools_of(class),
        before,
        "the exited thread's spares went back"
    );
}

/// Pools emptied by other threads' frees become spares of their owner too (when the owner
/// takes the blocks back), and serve its next batch: a producer that hands 6 pools' worth of
/// blocks to a consumer, round after round, holds no more pools of the class than one
/// round's worth and its spares.
#[test]
fn pools_emptied_by_remote_frees_are_kept_by_their_owner() {
    let _s = serial();
    let (layout, class, per_pool) = class_of(432);
    let before = pools_of(class);
    thread::spawn(move || {
        for round in 0..4u8 {
            let blocks = alloc_filled(layout, 6 * per_pool, round);
            let addrs: Vec<usize> = blocks.iter().map(|&p| p as usize).collect();
            thread::spawn(move || {
                let blocks = addrs.into_iter().map(|a| a as *mut u8).collect();
                check_and_free(layout, blocks, round);
            })
            .join()
            .unwrap();
            assert!(
                pools_of(class) <= before + 12,
                "round {round}: {} pools",
                pools_of(class) - before
            );
        }
    })
    .join()
    .unwrap();
    assert_eq!(
        pools_of(class),
        before,
        "the producer's exit gave its pools back"
    );
}

/// A block freed twice into a pool its thread keeps as a spare aborts, as it does in any pool
/// of the thread (its pool's count of blocks handed out would go below zero).
#[test]
fn a_double_free_into_a_spare_pool_aborts() {
    let _s = serial();
    fn double_free() {
        let (layout, _, per_pool) = class_of(416);
        let blocks = alloc_filled(layout, 2 * per_pool, 0);
        // SAFETY: the first pool's blocks, each freed once: the pool becomes a spare.
        unsafe {
            for &p in &blocks[..per_pool] {
                GLOBAL.dealloc(p, layout);
            }
        }
        // SAFETY: deliberately freed twice (the abort is the test).
        unsafe { GLOBAL.dealloc(blocks[0], layout) };
    }
    // SAFETY: the child runs only `double_free`, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe; the alarm turns a hang into a death.
        unsafe {
            libc::alarm(60);
            double_free();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT,
        "a double free into a spare pool was not caught (status {status:#x})"
    );
}
