//! `PoolAlloc` through the `allocator_api2::alloc::Allocator` API, *without* being the global
//! allocator (this binary uses the system allocator globally): `allocator_api2`'s `Vec` and
//! `Box` in `PoolAlloc`, zero-size layouts (allocate, deallocate, grow from zero, shrink to
//! zero), `grow`/`grow_zeroed`/`shrink` across size classes and alignments, and sizes near
//! `isize::MAX` that must fail with `AllocError` rather than crash.
//!
//! Users care because the allocator is advertised for per-collection use; and since only
//! these tests use `PoolAlloc` here, its stats are exact once the tests are serialized.

mod common;

use allocator_api2::alloc::{AllocError, Allocator};
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use common::{fill, first_mismatch};
use pyheap::alloc::stats;
use pyheap::PoolAlloc;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

/// Serializes the tests: they assert on `PoolAlloc`'s process-wide stats, and only they use
/// `PoolAlloc` in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn vec_and_box_in_pool_alloc_work_and_are_counted() {
    let _g = serial();
    let base = stats();
    let mut outer: AVec<AVec<u32, PoolAlloc>, PoolAlloc> = AVec::new_in(PoolAlloc);
    for i in 0..500u32 {
        let mut inner = AVec::new_in(PoolAlloc);
        for j in 0..(i % 200) {
            inner.push(i * 1000 + j);
        }
        outer.push(inner);
    }
    let boxes: AVec<ABox<[u64; 4], PoolAlloc>, PoolAlloc> = (0..300u64)
        .map(|i| ABox::new_in([i; 4], PoolAlloc))
        .fold(AVec::new_in(PoolAlloc), |mut v, b| {
            v.push(b);
            v
        });
    let during = stats();
    assert!(
        during.blocks_in_use() >= base.blocks_in_use() + 300,
        "boxes are pool blocks"
    );
    for (i, inner) in outer.iter().enumerate() {
        assert_eq!(inner.len(), i % 200);
        assert!(inner
            .iter()
            .enumerate()
            .all(|(j, &x)| x == i as u32 * 1000 + j as u32));
    }
    assert!(boxes.iter().enumerate().all(|(i, b)| **b == [i as u64; 4]));
    outer.truncate(3);
    outer.shrink_to_fit();
    drop(outer);
    drop(boxes);
    let after = stats();
    assert_eq!(after.blocks_in_use(), base.blocks_in_use());
    assert_eq!(after.fallback_count, base.fallback_count);
}

#[test]
fn zero_size_layouts_through_the_allocator_api() {
    let _g = serial();
    let base = stats();
    for align in [1usize, 2, 8, 16, 64, 4096] {
        let zero = Layout::from_size_align(0, align).unwrap();
        let p = PoolAlloc.allocate(zero).expect("zero-size allocate");
        assert_eq!(p.len(), 0);
        assert_eq!(p.cast::<u8>().as_ptr() as usize % align, 0);
        let z = PoolAlloc
            .allocate_zeroed(zero)
            .expect("zero-size allocate_zeroed");
        // SAFETY: both from `allocate*` with `zero`.
        unsafe {
            PoolAlloc.deallocate(p.cast(), zero);
            PoolAlloc.deallocate(z.cast(), zero);
        }
        for size in [1usize, 8, 100, 512, 513, 5000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let p = PoolAlloc.allocate(zero).unwrap().cast::<u8>();
            // SAFETY: `p` is from `allocate(zero)`; grow to a larger layout of the same
            // alignment, then shrink back to zero; each result replaces the previous pointer.
            unsafe {
                let g = PoolAlloc.grow(p, zero, layout).expect("grow from zero");
                assert!(g.len() >= size);
                assert_eq!(g.cast::<u8>().as_ptr() as usize % align, 0);
                fill(g.cast::<u8>().as_ptr(), size, size as u64);
                let s = PoolAlloc
                    .shrink(g.cast(), layout, zero)
                    .expect("shrink to zero");
                assert_eq!(s.cast::<u8>().as_ptr() as usize % align, 0);
                PoolAlloc.deallocate(s.cast(), zero);

                let gz = PoolAlloc
                    .grow_zeroed(PoolAlloc.allocate(zero).unwrap().cast(), zero, layout)
                    .expect("grow_zeroed from zero");
                let bytes = std::slice::from_raw_parts(gz.cast::<u8>().as_ptr(), size);
                assert!(
                    bytes.iter().all(|&b| b == 0),
                    "grow_zeroed from zero not zero"
                );
                PoolAlloc.deallocate(gz.cast(), layout);
            }
        }
    }
    let after = stats();
    assert_eq!(
        after.blocks_in_use(),
        base.blocks_in_use(),
        "zero-size paths leaked"
    );
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "zero-size paths leaked"
    );
}

#[test]
fn grow_and_shrink_keep_contents_across_classes_and_alignments() {
    let _g = serial();
    let base = stats();
    let sizes = [1usize, 8, 9, 16, 17, 64, 500, 512, 513, 1024, 4097];
    let aligns = [1usize, 8, 16, 32, 4096];
    for &from in &sizes {
        for &to in &sizes {
            for &a1 in &aligns {
                for &a2 in &aligns {
                    let old = Layout::from_size_align(from, a1).unwrap();
                    let new = Layout::from_size_align(to, a2).unwrap();
                    let tag = (from * 7 + to * 13 + a1 + a2) as u64;
                    let p = PoolAlloc.allocate(old).unwrap().cast::<u8>();
                    // SAFETY: `p` has `from` bytes; grow/shrink chosen by size as their
                    // contracts require; the result is freed with `new`.
                    unsafe {
                        fill(p.as_ptr(), from, tag);
                        let q = if to >= from {
                            if (from + to) % 2 == 0 {
                                PoolAlloc.grow_zeroed(p, old, new)
                            } else {
                                PoolAlloc.grow(p, old, new)
                            }
                        } else {
                            PoolAlloc.shrink(p, old, new)
                        }
                        .expect("resize");
                        let q = q.cast::<u8>().as_ptr();
                        assert_eq!(q as usize % a2, 0, "{old:?} -> {new:?} misaligned");
                        assert_eq!(
                            first_mismatch(q, from.min(to), tag),
                            None,
                            "{old:?} -> {new:?} lost contents"
                        );
                        if to > from && (from + to) % 2 == 0 {
                            let tail = std::slice::from_raw_parts(q.add(from), to - from);
                            assert!(tail.iter().all(|&b| b == 0), "{old:?} -> {new:?} tail");
                        }
                        PoolAlloc.deallocate(NonNull::new_unchecked(q), new);
                    }
                }
            }
        }
    }
    let after = stats();
    assert_eq!(after.blocks_in_use(), base.blocks_in_use());
    assert_eq!(after.fallback_count, base.fallback_count);
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
}

#[test]
fn sizes_near_isize_max_fail_with_alloc_error() {
    let _g = serial();
    let base = stats();
    let max = isize::MAX as usize;
    for align in [1usize, 8, 16, 64, 4096] {
        for size in [max - (align - 1), max / 2, max / 2 + 1, 1 << 48] {
            let Ok(layout) = Layout::from_size_align(size, align) else {
                continue;
            };
            assert_eq!(PoolAlloc.allocate(layout), Err(AllocError), "{layout:?}");
            assert_eq!(
                PoolAlloc.allocate_zeroed(layout),
                Err(AllocError),
                "{layout:?}"
            );
            // Growing a live block to an impossible size fails and leaves it intact.
            for start in [16usize, 600] {
                let small = Layout::from_size_align(start, align).unwrap();
                let p = PoolAlloc.allocate(small).unwrap().cast::<u8>();
                // SAFETY: `p` has `start` bytes; on failure it stays ours and is freed with
                // `small`.
                unsafe {
                    fill(p.as_ptr(), start, 5);
                    assert!(
                        PoolAlloc.grow(p, small, layout).is_err(),
                        "{small:?} -> {layout:?}"
                    );
                    assert!(PoolAlloc.grow_zeroed(p, small, layout).is_err());
                    assert_eq!(first_mismatch(p.as_ptr(), start, 5), None);
                    PoolAlloc.deallocate(p, small);
                }
            }
        }
    }
    let after = stats();
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "failed requests counted as live"
    );
    assert_eq!(after.blocks_in_use(), base.blocks_in_use());
}

#[test]
fn pool_alloc_works_on_many_threads_without_being_global() {
    let _g = serial();
    let base = stats();
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut v = AVec::new_in(PoolAlloc);
                for i in 0..20_000u32 {
                    v.push(t * 100_000 + i);
                }
                let boxes: Vec<ABox<u64, PoolAlloc>> = (0..1000)
                    .map(|i| ABox::new_in(i as u64, PoolAlloc))
                    .collect();
                (v, boxes)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (t, (v, boxes)) in results.iter().enumerate() {
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, &x)| x == t as u32 * 100_000 + i as u32));
        assert!(boxes.iter().enumerate().all(|(i, b)| **b == i as u64));
    }
    // Freed here, by the main thread, after the threads exited.
    drop(results);
    let after = stats();
    assert_eq!(after.blocks_in_use(), base.blocks_in_use());
    assert_eq!(after.fallback_count, base.fallback_count);
}

#[test]
fn hashbrown_maps_and_sets_in_pool_alloc() {
    let _g = serial();
    let base = stats();
    let mut map = hashbrown::HashMap::new_in(PoolAlloc);
    let mut set = hashbrown::HashSet::new_in(PoolAlloc);
    for i in 0..20_000u64 {
        map.insert(i, i * 3);
        set.insert(i % 7_000);
    }
    assert_eq!(map.len(), 20_000);
    assert_eq!(set.len(), 7_000);
    assert!((0..20_000u64).all(|i| map[&i] == i * 3));
    map.retain(|k, _| k % 2 == 0);
    assert_eq!(map.len(), 10_000);
    map.shrink_to_fit();
    assert!((0..20_000u64).step_by(2).all(|i| map[&i] == i * 3));
    drop(map);
    drop(set);
    let after = stats();
    assert_eq!(after.blocks_in_use(), base.blocks_in_use());
    assert_eq!(after.fallback_count, base.fallback_count);
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
}

#[test]
fn the_allocator_api2_0_4_trait_is_implemented_too() {
    // The newest allocator-api2 is a dev-dependency under another name through pyheap's own
    // dependency; call its trait through a generic bound so the impl is what is tested.
    fn roundtrip<A: Fn(Layout) -> Option<NonNull<[u8]>>>(
        alloc: A,
        layout: Layout,
    ) -> NonNull<[u8]> {
        alloc(layout).expect("allocation")
    }
    let _g = serial();
    let base = stats();
    let layout = Layout::from_size_align(40, 8).unwrap();
    let p = roundtrip(|l| Allocator::allocate(&PoolAlloc, l).ok(), layout);
    assert_eq!(p.len(), 40);
    // SAFETY: allocated just above with `layout`.
    unsafe { Allocator::deallocate(&PoolAlloc, p.cast(), layout) };
    assert_eq!(stats().blocks_in_use(), base.blocks_in_use());
}
