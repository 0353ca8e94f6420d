//! Allocation before `main`: a constructor in `.init_array` (as C++ static initializers and
//! crates like `ctor` install) allocates through `PoolAlloc` before Rust's runtime has set up
//! anything; `main` later finds the blocks intact and frees them.
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
    // And from another thread.
    std::thread::spawn(|| {
        let v: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
        assert_eq!(*v[500], 500);
    })
    .join()
    .unwrap();
}
