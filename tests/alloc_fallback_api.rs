//! `PoolAllocWith<F>` through `allocator_api2`'s `Allocator`, not as the global allocator
//! (this binary's is the system allocator): collections in it, `grow`/`grow_zeroed`/`shrink`
//! across the 512-byte limit both ways and with a change of alignment, every fallback block
//! back to `F` with its layout (`common/tagged.rs`), stats counted exactly.

#[path = "common/tagged.rs"]
mod tagged;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as AVec;
use pyheap::alloc::stats;
use pyheap::PoolAllocWith;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard};
use tagged::Tagged;

static ALLOC: PoolAllocWith<Tagged> = PoolAllocWith::new(Tagged::new());

/// Serializes the tests: they compare process-wide stats, and only they use pyheap here.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn live() -> usize {
    ALLOC.fallback().live.load(Relaxed)
}

fn fill(p: NonNull<[u8]>, n: usize, seed: u8) {
    let p = p.as_ptr().cast::<u8>();
    for i in 0..n {
        // SAFETY: callers pass a block of at least `n` bytes.
        unsafe { p.add(i).write((i as u8) ^ seed) };
    }
}

fn check(p: NonNull<[u8]>, n: usize, seed: u8) -> bool {
    let p = p.as_ptr().cast::<u8>();
    // SAFETY: callers pass a block of at least `n` bytes.
    (0..n).all(|i| unsafe { p.add(i).read() } == (i as u8) ^ seed)
}

#[test]
fn collections_in_pool_alloc_with() {
    let _g = serial();
    let base = stats();
    let live0 = live();
    let mut v: AVec<u32, &PoolAllocWith<Tagged>> = AVec::new_in(&ALLOC);
    for i in 0..200u32 {
        v.push(i); // grows from pool blocks (up to 512 B) into the fallback (1,024 B)
    }
    assert_eq!(live(), live0 + 1, "one fallback block of 1,024 B");
    assert_eq!(stats().fallback_count, base.fallback_count + 1);
    v.truncate(10);
    v.shrink_to_fit(); // back into a pool block
    assert_eq!(live(), live0);
    assert_eq!(v.iter().sum::<u32>(), 45);
    drop(v);

    let mut m = hashbrown::HashMap::new_in(&ALLOC);
    for i in 0..10_000u64 {
        m.insert(i, i * 2);
    }
    assert!(live() > live0, "a large table comes from the fallback");
    assert_eq!(m[&9_999], 19_998);
    drop(m);
    assert_eq!(live(), live0);
    let after = stats();
    assert_eq!(after.fallback_count, base.fallback_count);
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
    assert_eq!(ALLOC.fallback().foreign_frees.load(Relaxed), 0);
}

#[test]
fn grow_and_shrink_across_the_limit_keep_contents_and_owners() {
    let _g = serial();
    let base = stats();
    let live0 = live();
    let a = &ALLOC;
    unsafe {
        let l100 = Layout::from_size_align(100, 8).unwrap();
        let p = a.allocate(l100).unwrap();
        fill(p, 100, 1);
        assert_eq!(live(), live0, "100 B from a pool");
        let l3k = Layout::from_size_align(3_000, 8).unwrap();
        let q = a.grow_zeroed(p.cast(), l100, l3k).unwrap();
        assert!(check(q, 100, 1));
        let tail = q.as_ptr().cast::<u8>().add(100);
        assert!(
            (0..2_900).all(|i| tail.add(i).read() == 0),
            "the grown tail is zeroed"
        );
        assert_eq!(live(), live0 + 1, "3,000 B from the fallback");
        assert_eq!(stats().fallback_bytes, base.fallback_bytes + 3_000);
        fill(q, 3_000, 2);
        // Shrink into a pool block, with a larger alignment (allocate, copy, free).
        let l256 = Layout::from_size_align(256, 16).unwrap();
        let r = a.shrink(q.cast(), l3k, l256).unwrap();
        assert!(check(r, 256, 2));
        assert_eq!(
            live(),
            live0,
            "the fallback block went back to the fallback"
        );
        // Grow with an alignment the pools do not serve.
        let l64k = Layout::from_size_align(65_536, 4096).unwrap();
        let s = a.grow(r.cast(), l256, l64k).unwrap();
        assert_eq!(s.as_ptr().cast::<u8>() as usize % 4096, 0);
        assert!(check(s, 256, 2));
        assert_eq!(live(), live0 + 1);
        a.deallocate(s.cast(), l64k);
        // Zero-sized requests touch nothing.
        let z = a
            .allocate(Layout::from_size_align(0, 4096).unwrap())
            .unwrap();
        a.deallocate(z.cast(), Layout::from_size_align(0, 4096).unwrap());
        // Zeroed large request.
        let l = Layout::from_size_align(50_000, 8).unwrap();
        let zz = a.allocate_zeroed(l).unwrap();
        let zp = zz.as_ptr().cast::<u8>();
        assert!((0..50_000).all(|i| zp.add(i).read() == 0));
        a.deallocate(zz.cast(), l);
    }
    assert_eq!(live(), live0);
    let after = stats();
    assert_eq!(after.fallback_count, base.fallback_count);
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
    assert_eq!(ALLOC.fallback().foreign_frees.load(Relaxed), 0);
}
