//! Allocation before `main`: a constructor in `.init_array` (as C++ static initializers and
//! crates like `ctor` install) allocates through `PoolAlloc` before Rust's runtime has set up
//! anything; `main` later finds the blocks intact and frees them. And after `main`: a
//! destructor in `.fini_array` runs after the main thread's thread-locals are gone, frees a
//! block the test left for it and allocates again (a crash there fails the test binary).
//!
//! Users care because the global allocator serves every allocation of the process, including
//! those of constructors that run before `main`, when thread-locals and std are not ready.

mod common;

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const SMALL: usize = 48;
const LARGE: usize = 3000;
static EARLY_SMALL: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static EARLY_LARGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static EARLY_ZEROED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static EARLY_VEC: AtomicPtr<Vec<String>> = AtomicPtr::new(std::ptr::null_mut());
static RAN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn before_main() {
    // SAFETY: non-zero sizes; each block is filled within its size and stored for main.
    unsafe {
        let s = alloc(Layout::from_size_align(SMALL, 8).unwrap());
        if !s.is_null() {
            common::fill(s, SMALL, 1);
        }
        EARLY_SMALL.store(s, Ordering::SeqCst);
        let l = alloc(Layout::from_size_align(LARGE, 8).unwrap());
        if !l.is_null() {
            common::fill(l, LARGE, 2);
        }
        EARLY_LARGE.store(l, Ordering::SeqCst);
        EARLY_ZEROED.store(
            alloc_zeroed(Layout::from_size_align(SMALL, 16).unwrap()),
            Ordering::SeqCst,
        );
    }
    // std collections too.
    let v: Vec<String> = (0..100).map(|i| format!("early {i}")).collect();
    EARLY_VEC.store(Box::into_raw(Box::new(v)), Ordering::SeqCst);
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = before_main;

/// A pool block and a large block left by the test for `after_main` to check and free.
static FOR_FINI: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static FOR_FINI_LARGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn after_main() {
    let fail = |msg: &str| {
        // SAFETY: write(2) reads `msg.len()` bytes of a valid slice; _exit never returns.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(70);
        }
    };
    // SAFETY: blocks left by the test with these layouts, taken once; new blocks are written
    // within their size and freed with their layout.
    unsafe {
        for (slot, size, tag) in [(&FOR_FINI, SMALL, 3), (&FOR_FINI_LARGE, LARGE, 4)] {
            let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
            if p.is_null() {
                continue; // the test did not run (filtered out)
            }
            if common::first_mismatch(p, size, tag).is_some() {
                fail("after main: block corrupted\n");
            }
            dealloc(p, Layout::from_size_align(size, 8).unwrap());
        }
        for size in [8usize, 100, 512, 4000] {
            let l = Layout::from_size_align(size, 8).unwrap();
            let p = alloc(l);
            if p.is_null() {
                fail("after main: allocation failed\n");
            }
            common::fill(p, size, 5);
            dealloc(p, l);
        }
    }
    let v: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    if v[49] != "49" {
        fail("after main: Vec corrupted\n");
    }
}

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = after_main;

#[test]
fn blocks_allocated_before_main_are_intact_and_freeable() {
    assert_eq!(RAN.load(Ordering::SeqCst), 1, "the constructor did not run");
    let s = EARLY_SMALL.swap(std::ptr::null_mut(), Ordering::SeqCst);
    let l = EARLY_LARGE.swap(std::ptr::null_mut(), Ordering::SeqCst);
    let z = EARLY_ZEROED.swap(std::ptr::null_mut(), Ordering::SeqCst);
    let v = EARLY_VEC.swap(std::ptr::null_mut(), Ordering::SeqCst);
    assert!(!s.is_null() && !l.is_null() && !z.is_null() && !v.is_null());
    // SAFETY: the blocks were allocated by `before_main` with these layouts and handed over
    // through the statics, taken exactly once here; `v` came from `Box::into_raw`.
    unsafe {
        assert_eq!(common::first_mismatch(s, SMALL, 1), None);
        assert_eq!(common::first_mismatch(l, LARGE, 2), None);
        assert!(std::slice::from_raw_parts(z, SMALL).iter().all(|&b| b == 0));
        let v = Box::from_raw(v);
        assert_eq!(v.len(), 100);
        assert_eq!(v[99], "early 99");
        // Work in main, from the same thread, while the early blocks are alive.
        let later: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert_eq!(later[999], "999");
        dealloc(s, Layout::from_size_align(SMALL, 8).unwrap());
        dealloc(l, Layout::from_size_align(LARGE, 8).unwrap());
        dealloc(z, Layout::from_size_align(SMALL, 16).unwrap());
        drop(v);
    }
    // Blocks for the destructor that runs after main.
    for (slot, size, tag) in [(&FOR_FINI, SMALL, 3), (&FOR_FINI_LARGE, LARGE, 4)] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size; filled within its size.
        unsafe {
            let p = alloc(layout);
            assert!(!p.is_null());
            common::fill(p, size, tag);
            slot.store(p, Ordering::SeqCst);
        }
    }
    // And from another thread.
    std::thread::spawn(|| {
        let v: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
        assert_eq!(*v[500], 500);
    })
    .join()
    .unwrap();
}
