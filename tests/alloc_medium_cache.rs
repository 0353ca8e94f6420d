//! `PoolAlloc`'s medium cache (requests of 513 B to 32 KiB, served by pyheap's medium spans up
//! to 4 KiB and by `malloc` above, and kept per thread for reuse): a request that finds its
//! span bin empty takes a batch of 16 KiB worth of blocks into the cache; a freed block serves
//! the next request of its size bin, on the thread that freed it, whichever thread allocated
//! it; `realloc` within a bin keeps the block and
//! its bytes; a zeroed request served from the cache is zeroed; the bounds (1,024 blocks per
//! bin, 4 MiB per thread) hold, a full bin giving its older half back; unused bins are
//! trimmed; `purge()` empties the caller's cache at once and another thread's at its next
//! medium free; a thread's exit empties its cache; `stats()` counts cached blocks apart from
//! live ones; a forked child reuses the blocks its parent's thread cached. Then a generated
//! mix of requests of every kind (small, medium, large, zeroed, resized across every
//! boundary, freed and resized on another thread) checks every block's bytes, for several
//! seeds (`PYHEAP_MEDIUM_SEEDS=1,2,...` to choose them).
//!
//! Run without libtest's harness, so that no other thread allocates while the counts are
//! compared.

use pyheap::alloc::{purge, stats};
use pyheap::PoolAlloc;
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

const MAX_PER_BIN: usize = 1024;
const MAX_BYTES: usize = 4 << 20;

fn cached() -> (usize, usize) {
    let s = stats();
    (s.medium_cached_blocks, s.medium_cached_bytes)
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// The size every block of `size`'s bin holds (eight bins per doubling above 512 bytes).
fn bin_size(size: usize) -> usize {
    let n = size - 1;
    let shift = n.ilog2() - 3;
    ((n >> shift) + 1) << shift
}

/// How many blocks a request of `size` that finds its bin empty brings into the thread's
/// cache, itself included: a batch of 16 KiB worth from the spans up to 4 KiB, else one block
/// from `malloc`.
fn batch(size: usize) -> usize {
    let b = bin_size(size);
    if b <= 4096 {
        (16 * 1024 / b).max(1)
    } else {
        1
    }
}

/// A freed medium block comes back for the next request of its bin (not of another bin),
/// and `stats()` counts it while it is cached.
fn reuse_within_a_bin() {
    purge();
    assert_eq!(cached(), (0, 0), "purge() leaves the caller's cache empty");
    let live_before = stats().fallback_count;
    // SAFETY (all blocks below): non-zero sizes; each block freed once with its layout.
    unsafe {
        let a = alloc(layout(600));
        assert!(!a.is_null());
        assert_eq!(stats().fallback_count, live_before + 1);
        // 600 B is in the bin of 577-640 B: 25 blocks a batch, one handed out.
        let rest = batch(600) - 1;
        assert_eq!(rest, 24);
        assert_eq!(
            cached(),
            (rest, rest * 640),
            "the rest of the batch is cached"
        );
        dealloc(a, layout(600));
        assert_eq!(cached(), (rest + 1, (rest + 1) * 640));
        assert_eq!(
            stats().fallback_count,
            live_before,
            "a cached block is not live"
        );
        let other_bin = alloc(layout(700));
        assert_ne!(other_bin, a, "a block of another bin was reused");
        let b = alloc(layout(640));
        assert_eq!(b, a, "the cached block serves the next request of its bin");
        let rest_704 = batch(700) - 1;
        assert_eq!(cached(), (rest + rest_704, rest * 640 + rest_704 * 704));
        // The whole bin's size is usable.
        b.write_bytes(0xAB, 640);
        dealloc(b, layout(640));
        dealloc(other_bin, layout(700));
    }
    purge();
}

/// `realloc` within a bin returns the block itself with its bytes; across bins and out of the
/// medium range the bytes move with it.
fn realloc_keeps_bytes() {
    // The previous scenario's own vectors may have been freed into the cache.
    purge();
    // SAFETY: as above; `realloc` with the block's current layout.
    unsafe {
        let p = alloc(layout(513));
        for i in 0..513 {
            *p.add(i) = i as u8;
        }
        let q = realloc(p, layout(513), 576);
        assert_eq!(q, p, "513 and 576 B share a bin: the block is kept");
        let r = realloc(q, layout(576), 5000);
        let s = realloc(r, layout(5000), 100_000);
        let t = realloc(s, layout(100_000), 20_000);
        let u = realloc(t, layout(20_000), 1000);
        for i in 0..513 {
            assert_eq!(*u.add(i), i as u8, "byte {i} lost by realloc");
        }
        dealloc(u, layout(1000));
    }
    purge();
}

/// A zeroed request served from the cache is zeroed, and the block was the cached one.
fn zeroed_from_the_cache() {
    // The previous scenario's own vectors may have been freed into the cache.
    purge();
    // SAFETY: as above.
    unsafe {
        let p = alloc(layout(3000));
        p.write_bytes(0xFF, 3000);
        dealloc(p, layout(3000));
        let q = alloc_zeroed(layout(3000));
        assert_eq!(q, p, "the zeroed request was served from the cache");
        assert!(
            (0..3000).all(|i| *q.add(i) == 0),
            "a cached block came back dirty"
        );
        dealloc(q, layout(3000));
    }
    purge();
}

/// At most 1,024 blocks per bin, at most 4 MiB per thread; a full bin gives its older half
/// back to `free`.
fn bounds_hold() {
    // The previous scenario's own vectors may have been freed into the cache.
    purge();
    let mut blocks: Vec<*mut u8> = (0..1100)
        // SAFETY: non-zero size.
        .map(|_| unsafe { alloc(layout(600)) })
        .collect();
    for &p in &blocks {
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(p, layout(600)) };
    }
    let blocks_last = *blocks.last().unwrap();
    blocks.clear();
    // A free into a full bin gives its older half back: 1,024, then 513..1,024.
    let n = cached().0;
    assert!(
        (MAX_PER_BIN / 2 + 1..=MAX_PER_BIN).contains(&n),
        "one bin holds at most 1,024 blocks, at least 513 once filled: {n}"
    );
    // The newest block freed is kept: the next request gets it.
    // SAFETY: non-zero size; freed at once with its layout.
    unsafe {
        let q = alloc(layout(600));
        assert_eq!(q, blocks_last, "the most recent free was not kept");
        dealloc(q, layout(600));
    }
    purge();
    // 7.4 MiB of blocks in the top four bins, freed bin after bin.
    let sizes = [26_000, 28_000, 30_000, 32_768];
    let mut held = Vec::new();
    for &size in &sizes {
        for _ in 0..64 {
            // SAFETY: non-zero size.
            held.push((unsafe { alloc(layout(size)) }, size));
        }
    }
    for &(p, size) in &held {
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(p, layout(size)) };
    }
    let (n, bytes) = cached();
    assert!(bytes <= MAX_BYTES, "{bytes} bytes cached, more than 4 MiB");
    assert!(
        bytes >= MAX_BYTES / 2,
        "the cache stopped short: {bytes} bytes"
    );
    assert!(n < 256, "{n} blocks cached");
    purge();
    assert_eq!(cached(), (0, 0));
}

/// A bin the program stopped using empties over a few trims (every 1,024 frees into the
/// cache); a bin it keeps reusing keeps its block.
fn unused_bins_are_trimmed() {
    // The previous scenario's own vectors may have been freed into the cache.
    purge();
    let blocks: Vec<*mut u8> = (0..64)
        // SAFETY: non-zero size.
        .map(|_| unsafe { alloc(layout(2000)) })
        .collect();
    for &p in &blocks {
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(p, layout(2000)) };
    }
    assert_eq!(cached().0, 64);
    let churn = |n: usize| {
        for _ in 0..n {
            // SAFETY: non-zero size; freed at once with its layout. (`black_box`: the
            // compiler may remove an allocation nobody uses.)
            unsafe { dealloc(black_box(alloc(layout(9000))), layout(9000)) };
        }
    };
    churn(2 * 1024 + 10);
    let after_two = cached().0;
    assert!(
        after_two <= 1 + 32,
        "after two trims the unused bin still holds {after_two} blocks"
    );
    assert!(after_two >= 2, "the trims took the bin in use too");
    churn(20 * 1024);
    assert_eq!(
        cached().0,
        1,
        "the unused bin is empty, the used one keeps its block"
    );
    purge();
}

/// A block another thread allocated, freed here, serves this thread's next request of its
/// bin; `purge()` empties another thread's cache at that thread's next medium free; a
/// thread's exit empties its cache.
fn threads() {
    // The previous scenario's own vectors may have been freed into the cache.
    purge();
    // SAFETY: non-zero size.
    let addr = thread::spawn(|| unsafe { alloc(layout(4000)) } as usize)
        .join()
        .unwrap();
    // SAFETY: the other thread's block, freed once here with its layout.
    unsafe {
        dealloc(addr as *mut u8, layout(4000));
        let again = alloc(layout(4096));
        assert_eq!(again as usize, addr, "a block freed here is reused here");
        dealloc(again, layout(4096));
    }
    purge();

    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        for size in [700, 1500, 3000, 6000, 12_000] {
            // SAFETY: non-zero size; freed at once with its layout.
            unsafe { dealloc(black_box(alloc(layout(size))), layout(size)) };
        }
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        // The first medium free after a purge empties the cache, then caches this block.
        // SAFETY: as above.
        unsafe { dealloc(black_box(alloc(layout(20_000))), layout(20_000)) };
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    done_rx.recv().unwrap();
    // Each of the five requests found its bin empty: a batch, all cached again after the free.
    let worker_blocks: usize = [700, 1500, 3000, 6000, 12_000].map(batch).iter().sum();
    assert_eq!(worker_blocks, 23 + 10 + 5 + 1 + 1);
    assert_eq!(
        cached().0,
        worker_blocks,
        "the worker caches its five blocks and their batches"
    );
    purge();
    assert_eq!(
        cached().0,
        worker_blocks,
        "another thread's cache is emptied at its next free"
    );
    go_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    assert_eq!(
        cached(),
        (1, 20_480),
        "the worker emptied its cache, then kept one block"
    );
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    assert_eq!(cached(), (0, 0), "a thread's exit empties its cache");
}

/// A child forked while this thread's cache holds blocks reuses them, frees, purges and
/// allocates from a new thread; the parent's cache is as it was.
fn fork_with_a_full_cache() {
    purge();
    let sizes = [700, 5000, 30_000];
    let blocks: Vec<(usize, usize)> = sizes
        .iter()
        // SAFETY: non-zero sizes.
        .map(|&size| (unsafe { alloc(layout(size)) } as usize, size))
        .collect();
    for &(p, size) in &blocks {
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(p as *mut u8, layout(size)) };
    }
    let before = cached();
    assert_eq!(before.0, sizes.map(batch).iter().sum::<usize>());
    // SAFETY: fork in a program whose other threads have all been joined; the child only
    // allocates, frees and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            for &(p, size) in &blocks {
                // SAFETY: non-zero size; freed below with its layout.
                let q = unsafe { alloc(layout(size)) };
                assert_eq!(q as usize, p, "the child reuses the inherited cache");
                // SAFETY: `size` bytes are ours.
                unsafe {
                    q.write_bytes(1, size);
                    dealloc(q, layout(size));
                }
            }
            purge();
            assert_eq!(cached(), (0, 0));
            thread::spawn(|| {
                let v: Vec<u8> = vec![7; 10_000];
                assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 70_000);
            })
            .join()
            .unwrap();
        })
        .is_ok();
        // SAFETY: leave the child at once, without the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status}"
    );
    assert_eq!(cached(), before, "the parent's cache changed");
    drop(blocks);
    purge();
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A size of every kind: small, around the 512-byte limit, medium (bin edges included),
    /// around 32 KiB, large.
    fn size(&mut self) -> usize {
        match self.below(8) {
            0 => 1 + self.below(512) as usize,
            1 => 500 + self.below(30) as usize,
            2 => 513 + self.below(32_768 - 512) as usize,
            3 => {
                // A bin edge: the bin's size or one more.
                let shift = 6 + self.below(6) as u32;
                let edge = ((8 + self.below(8) as usize + 1) << shift).min(32_768);
                edge + self.below(2) as usize
            }
            4 => 32_700 + self.below(100) as usize,
            5 => 32_769 + self.below(100_000) as usize,
            _ => 600 + self.below(4000) as usize,
        }
    }
}

/// A live block: address, size, alignment, the byte it is filled with.
struct Live {
    addr: usize,
    size: usize,
    align: usize,
    fill: u8,
}

impl Live {
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).unwrap()
    }
    fn check(&self) {
        let p = self.addr as *const u8;
        // SAFETY: a live block of `size` bytes, filled with `fill`.
        let ok = (0..self.size).all(|i| unsafe { *p.add(i) } == self.fill);
        assert!(ok, "block of {} B lost its bytes", self.size);
    }
}

/// The generated mix on this thread; blocks go to `peer` to be freed there, and blocks from
/// `inbox` are freed here. Returns the blocks still live.
fn mix(seed: u64, peer: mpsc::Sender<Live>, inbox: mpsc::Receiver<Live>) {
    let mut rng = Rng(seed);
    let mut live: Vec<Live> = Vec::new();
    for step in 0..20_000u32 {
        while let Ok(mut b) = inbox.try_recv() {
            b.check();
            if rng.below(2) == 0 {
                // Resize the other thread's block here (its old block freed remotely).
                let new_size = rng.size();
                // SAFETY: a live block of this layout; a non-zero new size.
                let q = unsafe { realloc(b.addr as *mut u8, b.layout(), new_size) };
                assert!(!q.is_null());
                let kept = b.size.min(new_size);
                // SAFETY: `kept` bytes moved.
                assert!(
                    (0..kept).all(|j| unsafe { *q.add(j) } == b.fill),
                    "realloc lost bytes"
                );
                // SAFETY: `new_size` bytes are ours.
                unsafe { q.write_bytes(b.fill, new_size) };
                b.addr = q as usize;
                b.size = new_size;
            }
            // SAFETY: a live block of this layout, freed once.
            unsafe { dealloc(b.addr as *mut u8, b.layout()) };
        }
        let fill = (step % 251) as u8 + 1;
        match rng.below(10) {
            0..=3 => {
                let size = rng.size();
                let align = [8, 16, 64][rng.below(3) as usize];
                let l = Layout::from_size_align(size, align).unwrap();
                let zeroed = rng.below(4) == 0;
                // SAFETY: non-zero size.
                let p = unsafe {
                    if zeroed {
                        alloc_zeroed(l)
                    } else {
                        alloc(l)
                    }
                };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                if zeroed {
                    // SAFETY: `size` bytes just allocated.
                    assert!((0..size).all(|i| unsafe { *p.add(i) } == 0), "not zeroed");
                }
                // SAFETY: as above.
                unsafe { p.write_bytes(fill, size) };
                live.push(Live {
                    addr: p as usize,
                    size,
                    align,
                    fill,
                });
            }
            4..=5 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let b = live.swap_remove(i);
                b.check();
                // SAFETY: a live block of this layout, freed once.
                unsafe { dealloc(b.addr as *mut u8, b.layout()) };
            }
            6..=7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let b = &mut live[i];
                b.check();
                let new_size = rng.size();
                // SAFETY: a live block of this layout; a non-zero new size.
                let q = unsafe { realloc(b.addr as *mut u8, b.layout(), new_size) };
                assert!(!q.is_null());
                let kept = b.size.min(new_size);
                // SAFETY: `kept` bytes moved; `new_size` bytes are ours.
                unsafe {
                    assert!((0..kept).all(|j| *q.add(j) == b.fill), "realloc lost bytes");
                    q.write_bytes(fill, new_size);
                }
                *b = Live {
                    addr: q as usize,
                    size: new_size,
                    align: b.align,
                    fill,
                };
            }
            8 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let b = live.swap_remove(i);
                let _ = peer.send(b);
            }
            _ => {}
        }
    }
    for b in live {
        b.check();
        // SAFETY: a live block of this layout, freed once.
        unsafe { dealloc(b.addr as *mut u8, b.layout()) };
    }
    drop(peer);
    for b in inbox {
        b.check();
        // SAFETY: as above.
        unsafe { dealloc(b.addr as *mut u8, b.layout()) };
    }
}

fn generated_mixes() {
    let seeds: Vec<u64> = match std::env::var("PYHEAP_MEDIUM_SEEDS") {
        Ok(v) => v.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        // Regression seeds first, then a few more.
        Err(_) => vec![1, 2, 3, 0xDEAD_BEEF],
    };
    let live_before = stats().fallback_count;
    for seed in seeds {
        let (to_b, inbox_b) = mpsc::channel();
        let (to_a, inbox_a) = mpsc::channel();
        let b = thread::spawn(move || mix(seed.wrapping_mul(31) | 1, to_a, inbox_b));
        mix(seed | 1, to_b, inbox_a);
        b.join().unwrap();
    }
    purge();
    assert_eq!(
        stats().fallback_count,
        live_before,
        "the mixes left fallback blocks live"
    );
    assert_eq!(cached(), (0, 0));
}

fn main() {
    reuse_within_a_bin();
    realloc_keeps_bytes();
    zeroed_from_the_cache();
    bounds_hold();
    unused_bins_are_trimmed();
    threads();
    fork_with_a_full_cache();
    generated_mixes();
    println!("alloc_medium_cache: 8 scenarios passed");
}
