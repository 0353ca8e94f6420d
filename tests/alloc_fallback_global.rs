//! `PoolAllocWith<F>` as the global allocator, with a fallback that knows its own blocks
//! (`common/tagged.rs`): requests above 512 bytes and over-aligned ones reach `F` and only
//! `F`, small ones never do; every block `F` gave comes back to `F` with its layout (realloc
//! across the 512-byte limit both ways, zeroed requests, alignments up to 4096, frees from
//! other threads); `alloc::stats()` counts `F`'s blocks exactly.
//!
//! Run without libtest's harness, so that no other thread allocates while the counts are
//! compared. At its
//! end it runs itself again as a child with the debug allocator (`PYHEAP_MALLOC=debug`),
//! whose larger inner blocks of large requests must come from `F` and go back to it.

#[path = "common/tagged.rs"]
mod tagged;

use pyheap::alloc::stats;
use pyheap::PoolAllocWith;
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::atomic::Ordering::Relaxed;
use tagged::Tagged;

#[global_allocator]
static GLOBAL: PoolAllocWith<Tagged> = PoolAllocWith::new(Tagged::new());

fn tagged() -> &'static Tagged {
    GLOBAL.fallback()
}

fn live() -> usize {
    tagged().live.load(Relaxed)
}

/// `stats()`' fallback counts against `Tagged`'s, as differences from a starting point.
struct Baseline {
    fallback_count: usize,
    fallback_bytes: usize,
    live: usize,
    live_bytes: usize,
}

impl Baseline {
    fn now() -> Baseline {
        let s = stats();
        Baseline {
            fallback_count: s.fallback_count,
            fallback_bytes: s.fallback_bytes,
            live: live(),
            live_bytes: tagged().live_bytes.load(Relaxed),
        }
    }

    /// `stats()` moved exactly as `Tagged` did since `self`, by `blocks` blocks.
    fn assert_moved(&self, blocks: isize, what: &str) {
        let s = stats();
        let d_live = live() as isize - self.live as isize;
        let d_bytes = tagged().live_bytes.load(Relaxed) as isize - self.live_bytes as isize;
        assert_eq!(d_live, blocks, "{what}: Tagged's live blocks");
        assert_eq!(
            s.fallback_count as isize - self.fallback_count as isize,
            d_live,
            "{what}: stats' fallback_count follows Tagged"
        );
        assert_eq!(
            s.fallback_bytes as isize - self.fallback_bytes as isize,
            d_bytes,
            "{what}: stats' fallback_bytes follows Tagged"
        );
    }
}

fn pattern(p: *mut u8, n: usize, seed: u8) {
    for i in 0..n {
        // SAFETY: callers pass a block of at least `n` bytes.
        unsafe {
            p.add(i)
                .write((i as u8).wrapping_mul(31).wrapping_add(seed))
        };
    }
}

fn has_pattern(p: *const u8, n: usize, seed: u8) -> bool {
    // SAFETY: callers pass a block of at least `n` bytes.
    (0..n).all(|i| unsafe { p.add(i).read() } == (i as u8).wrapping_mul(31).wrapping_add(seed))
}

/// In the child (`PYHEAP_MALLOC=debug`): debug blocks whose inner block is the fallback's,
/// across realloc both ways; all back to `F`, none elsewhere.
fn debug_child() {
    assert_eq!(std::env::var("PYHEAP_MALLOC").as_deref(), Ok("debug"));
    let live0 = live();
    unsafe {
        let l = Layout::from_size_align(5_000, 8).unwrap();
        let p = alloc(l);
        pattern(p, 5_000, 5);
        assert_eq!(
            live(),
            live0 + 1,
            "the debug block's inner block is the fallback's"
        );
        let q = realloc(p, l, 100);
        assert!(has_pattern(q, 100, 5));
        assert_eq!(live(), live0, "back to a pool block (inner 140 B)");
        let r = realloc(q, Layout::from_size_align(100, 8).unwrap(), 2_000);
        assert!(has_pattern(r, 100, 5));
        assert_eq!(live(), live0 + 1);
        dealloc(r, Layout::from_size_align(2_000, 8).unwrap());
    }
    assert_eq!(live(), live0);
    assert_eq!(pyheap::alloc::check_heap().map(|_| ()), Some(()));
    assert_eq!(tagged().foreign_frees.load(Relaxed), 0);
}

/// Without libtest's harness (`harness = false` in Cargo.toml): no other thread of the process
/// allocates while the counts are compared.
fn main() {
    fallback_serves_exactly_the_requests_the_pools_do_not();
    println!("fallback_serves_exactly_the_requests_the_pools_do_not: ok");
}

fn fallback_serves_exactly_the_requests_the_pools_do_not() {
    if std::env::var_os("PYHEAP_FALLBACK_CHILD").is_some() {
        debug_child();
        return;
    }
    // Small requests: pools only.
    let base = Baseline::now();
    let small: Vec<Box<[u8; 512]>> = (0..100).map(|i| Box::new([i as u8; 512])).collect();
    base.assert_moved(1, "a Vec of 100 pointers (800 B) and 100 boxes of 512 B");
    drop(small);
    base.assert_moved(0, "freed");

    // Large requests: the fallback, with the size asked for.
    let base = Baseline::now();
    let mut big = Vec::<u8>::with_capacity(10_000);
    big.extend((0..10_000).map(|i| i as u8));
    base.assert_moved(1, "10,000 B");
    assert_eq!(big[9_999], (9_999 % 256) as u8);
    drop(big);
    base.assert_moved(0, "10,000 B freed");

    // realloc from a pool block to a fallback block and back, contents kept.
    let base = Baseline::now();
    unsafe {
        let l = Layout::from_size_align(300, 8).unwrap();
        let p = alloc(l);
        pattern(p, 300, 1);
        let q = realloc(p, l, 5_000);
        assert!(!q.is_null());
        base.assert_moved(1, "realloc 300 -> 5,000");
        assert!(has_pattern(q, 300, 1));
        pattern(q, 5_000, 2);
        let r = realloc(q, Layout::from_size_align(5_000, 8).unwrap(), 200);
        assert!(!r.is_null());
        base.assert_moved(0, "realloc 5,000 -> 200");
        assert!(has_pattern(r, 200, 2));
        // Large to large: the fallback's realloc.
        let s = realloc(r, Layout::from_size_align(200, 8).unwrap(), 513);
        pattern(s, 513, 3);
        let t = realloc(s, Layout::from_size_align(513, 8).unwrap(), 40_000);
        base.assert_moved(1, "realloc 513 -> 40,000");
        assert!(has_pattern(t, 513, 3));
        dealloc(t, Layout::from_size_align(40_000, 8).unwrap());
    }
    base.assert_moved(0, "realloc'd blocks freed");

    // Zeroed large requests are zero, even where a dirty block was just freed.
    let base = Baseline::now();
    unsafe {
        let l = Layout::from_size_align(20_000, 8).unwrap();
        let p = alloc(l);
        std::ptr::write_bytes(p, 0xAA, 20_000);
        dealloc(p, l);
        let z = alloc_zeroed(l);
        assert!((0..20_000).all(|i| z.add(i).read() == 0));
        base.assert_moved(1, "zeroed 20,000 B");
        dealloc(z, l);
        let v = vec![0u64; 4_096];
        assert!(v.iter().all(|&x| x == 0));
        base.assert_moved(1, "vec![0u64; 4096]");
    }
    base.assert_moved(0, "zeroed blocks freed");

    // Alignments above the blocks': the fallback, aligned, small or large; realloc keeps
    // the alignment.
    let base = Baseline::now();
    unsafe {
        for (size, align) in [(8, 32), (64, 4096), (700, 64), (100_000, 4096)] {
            let l = Layout::from_size_align(size, align).unwrap();
            let p = alloc(l);
            assert_eq!(p as usize % align, 0, "{size} B aligned to {align}");
            pattern(p, size, 4);
            base.assert_moved(1, "one over-aligned block");
            let q = realloc(p, l, size * 3);
            assert_eq!(
                q as usize % align,
                0,
                "realloc'd {size} B aligned to {align}"
            );
            assert!(has_pattern(q, size, 4));
            dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
            base.assert_moved(0, "over-aligned block freed");
        }
    }
    assert!(tagged().max_align.load(Relaxed) >= 4096);

    // Other threads: large blocks allocated on one thread and freed on another, mixed with
    // small ones; all counted, all back to the fallback.
    let base = Baseline::now();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..2_000usize {
                    let size = if i % 3 == 0 {
                        600 + (i * 37) % 30_000
                    } else {
                        8 + i % 500
                    };
                    let mut v = vec![t as u8; size];
                    v[size - 1] = 7;
                    if i % 5 == 0 {
                        kept.push(v);
                    }
                }
                kept
            })
        })
        .collect();
    let kept: Vec<Vec<Vec<u8>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(kept
        .iter()
        .enumerate()
        .all(|(t, vs)| vs.iter().all(|v| v[0] == t as u8 && v[v.len() - 1] == 7)));
    drop(kept); // freed on this thread
    base.assert_moved(0, "threads' blocks freed here");

    assert_eq!(
        tagged().foreign_frees.load(Relaxed),
        0,
        "a block went to the wrong allocator"
    );

    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("PYHEAP_FALLBACK_CHILD", "1")
        .env("PYHEAP_MALLOC", "debug")
        .env_remove("PYHEAP_TRACEMALLOC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the debug child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
