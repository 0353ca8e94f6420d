//! Thread-locals and the allocator: a `thread_local!` whose destructor runs *after* the
//! thread's allocator state is gone (it was registered before the thread's first allocation,
//! and destructors run in reverse order) still allocates small and large blocks, reallocates,
//! and frees blocks the thread allocated earlier and blocks other threads allocated; one whose
//! destructor runs before the teardown does the same; and a `thread_local!` with an allocating
//! lazy initializer works, including as the very first allocation of a thread.
//!
//! Users care because thread-local caches, loggers and pools commonly free (and allocate) in
//! their destructors, and the global allocator cannot choose when those run.
//!
//! One test in this binary (the scenarios run in sequence): they assert on process-wide
//! stats, which a test thread starting in parallel would disturb.

mod common;

use common::Block;
use pyheap::alloc::stats;
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Bits set by the destructors, read by the test after the thread is joined.
static DONE: AtomicUsize = AtomicUsize::new(0);
const D_RAN: usize = 1;
const D_OWN_FREED: usize = 2;
const D_OTHERS_FREED: usize = 4;
const D_ALLOCS_OK: usize = 8;
const D_WENT_TO_SYSTEM: usize = 16;
/// Blocks allocated inside destructors (one slot per destructor), freed by the main thread
/// afterwards.
static HANDED_OUT: [AtomicPtr<u8>; 2] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 2];
const HANDED_SIZE: usize = 40;

/// What a destructor frees: blocks its own thread allocated, and blocks other threads did.
struct Frees {
    slot: usize,
    own: Vec<Block>,
    others: Vec<Block>,
}

struct Late(RefCell<Option<Frees>>);

impl Drop for Late {
    fn drop(&mut self) {
        let Some(frees) = self.0.borrow_mut().take() else {
            return;
        };
        destructor_work(frees);
    }
}

/// Allocate, reallocate and free of every kind, from inside a thread-local destructor.
fn destructor_work(frees: Frees) {
    let mut flags = D_RAN;
    // Small allocations now: with no heap left, they go to the system allocator.
    let before = stats().fallback_total;
    let mut ok = true;
    // SAFETY: non-zero sizes; every block is written within its size and freed with the
    // layout it has at that point.
    unsafe {
        let l = Layout::from_size_align(24, 8).unwrap();
        let p = alloc(l);
        ok &= !p.is_null();
        common::fill(p, 24, 77);
        if stats().fallback_total > before {
            flags |= D_WENT_TO_SYSTEM;
        }
        // Realloc across classes and across the small/large boundary.
        let q = realloc(p, l, 300);
        ok &= !q.is_null() && common::first_mismatch(q, 24, 77).is_none();
        common::fill(q, 300, 78);
        let r = realloc(q, Layout::from_size_align(300, 8).unwrap(), 5000);
        ok &= !r.is_null() && common::first_mismatch(r, 300, 78).is_none();
        let s = realloc(r, Layout::from_size_align(5000, 8).unwrap(), 8);
        ok &= !s.is_null() && common::first_mismatch(s, 8, 78).is_none();
        dealloc(s, Layout::from_size_align(8, 8).unwrap());
        for (size, align) in [(1, 1), (8, 8), (16, 16), (512, 16), (513, 8), (100, 64)] {
            let l = Layout::from_size_align(size, align).unwrap();
            let z = alloc_zeroed(l);
            ok &= !z.is_null() && z as usize % align == 0;
            ok &= std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0);
            dealloc(z, l);
        }
        let h = alloc(Layout::from_size_align(HANDED_SIZE, 8).unwrap());
        ok &= !h.is_null();
        common::fill(h, HANDED_SIZE, 55);
        HANDED_OUT[frees.slot].store(h, Ordering::SeqCst);
    }
    // std collections.
    let v: Vec<String> = (0..200).map(|i| format!("late {i}")).collect();
    ok &= v[199] == "late 199";
    drop(v);
    if ok {
        flags |= D_ALLOCS_OK;
    }
    // Blocks this thread allocated while it had its heap.
    for b in frees.own {
        b.free();
    }
    flags |= D_OWN_FREED;
    for b in frees.others {
        b.free();
    }
    flags |= D_OTHERS_FREED;
    DONE.fetch_or(flags, Ordering::SeqCst);
}

thread_local! {
    static LATE: Late = const { Late(RefCell::new(None)) };
    static EARLY: Late = const { Late(RefCell::new(None)) };
}

fn blocks(n: u64, tag: u64) -> Vec<Block> {
    (0..n)
        .map(|i| Block::new(1 + (i as usize * 37) % 1500, 8, (tag << 32) | i))
        .collect()
}

/// A raw pthread (no Rust runtime set-up that could allocate first): it registers `LATE`
/// before its first allocation, so `LATE`'s destructor runs after the allocator's own.
extern "C" fn late_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    LATE.with(|_| ()); // register the destructor before anything allocates
                       // SAFETY: `arg` is the `Box<Vec<Block>>` leaked by the spawner for us.
    let others = unsafe { Box::from_raw(arg.cast::<Vec<Block>>()) };
    let own = blocks(300, 2);
    LATE.with(|l| {
        *l.0.borrow_mut() = Some(Frees {
            slot: 0,
            own,
            others: *others,
        })
    });
    std::ptr::null_mut()
}

/// Free the blocks the first `n` destructor slots handed out, checking their contents.
fn free_handed_out(n: usize) {
    for slot in &HANDED_OUT[..n] {
        let h = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        assert!(!h.is_null(), "a destructor did not hand out its block");
        // SAFETY: allocated by a destructor with this layout, handed over once.
        unsafe {
            assert_eq!(common::first_mismatch(h, HANDED_SIZE, 55), None);
            dealloc(h, Layout::from_size_align(HANDED_SIZE, 8).unwrap());
        }
    }
}

fn run_pthread(f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void, arg: *mut u8) {
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `f` is a valid thread function; `arg` is what it expects; the thread is joined.
    unsafe {
        assert_eq!(
            libc::pthread_create(&mut tid, std::ptr::null(), f, arg.cast()),
            0
        );
        assert_eq!(libc::pthread_join(tid, std::ptr::null_mut()), 0);
    }
}

fn destructor_after_heap_teardown_allocates_and_frees() {
    let base = stats();
    DONE.store(0, Ordering::SeqCst);
    let others = Box::new(blocks(300, 1));
    run_pthread(late_thread, Box::into_raw(others).cast());
    let done = DONE.load(Ordering::SeqCst);
    assert_ne!(done & D_RAN, 0, "the destructor did not run");
    assert_ne!(
        done & D_WENT_TO_SYSTEM,
        0,
        "the destructor ran while the heap was still bound: test set-up is wrong"
    );
    assert_ne!(
        done & D_ALLOCS_OK,
        0,
        "allocations in the late destructor failed"
    );
    assert_ne!(done & D_OWN_FREED, 0);
    assert_ne!(done & D_OTHERS_FREED, 0);
    free_handed_out(1);
    let after = stats();
    assert_eq!(
        after.blocks_in_use(),
        base.blocks_in_use(),
        "blocks leaked:\n{base}\n{after}"
    );
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "system blocks leaked"
    );
}

fn destructors_before_and_after_teardown_on_std_threads() {
    let base = stats();
    DONE.store(0, Ordering::SeqCst);
    let others = blocks(200, 3);
    std::thread::spawn(move || {
        LATE.with(|_| ()); // as early as a std thread allows
        let own = blocks(200, 4);
        let own2 = blocks(100, 5);
        LATE.with(|l| {
            *l.0.borrow_mut() = Some(Frees {
                slot: 0,
                own,
                others,
            })
        });
        // Registered after the allocator's: runs first, with the heap still bound.
        EARLY.with(|l| {
            *l.0.borrow_mut() = Some(Frees {
                slot: 1,
                own: own2,
                others: Vec::new(),
            })
        });
    })
    .join()
    .unwrap();
    let done = DONE.load(Ordering::SeqCst);
    assert_ne!(done & D_ALLOCS_OK, 0);
    assert_ne!(done & D_OWN_FREED, 0);
    assert_ne!(done & D_OTHERS_FREED, 0);
    free_handed_out(2);
    let after = stats();
    assert_eq!(after.blocks_in_use(), base.blocks_in_use(), "blocks leaked");
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "system blocks leaked"
    );
}

thread_local! {
    static NAMES: RefCell<Vec<String>> =
        RefCell::new((0..300).map(|i| format!("name-{i}")).collect());
}

extern "C" fn lazy_first_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    // The lazy initializer is this thread's very first allocation.
    let n = NAMES.with(|n| n.borrow().len());
    let ok = n == 300 && NAMES.with(|n| n.borrow()[299] == "name-299");
    NAMES.with(|n| n.borrow_mut().push("more".repeat(200)));
    if ok {
        DONE.fetch_or(D_ALLOCS_OK, Ordering::SeqCst);
    }
    std::ptr::null_mut()
}

fn thread_local_with_allocating_lazy_initializer_works() {
    NAMES.with(|n| assert_eq!(n.borrow()[7], "name-7"));
    DONE.store(0, Ordering::SeqCst);
    run_pthread(lazy_first_thread, std::ptr::null_mut());
    assert_ne!(DONE.load(Ordering::SeqCst) & D_ALLOCS_OK, 0);
    let hs: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                NAMES.with(|n| {
                    let mut n = n.borrow_mut();
                    n.push(format!("thread {t}"));
                    n.len()
                })
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 301);
    }
}

#[test]
fn thread_local_destructors_and_lazy_initializers_allocate_and_free() {
    common::wait_for_harness_idle();
    // Warm up the main thread's own thread-locals (NAMES) before any baseline.
    thread_local_with_allocating_lazy_initializer_works();
    destructor_after_heap_teardown_allocates_and_frees();
    destructors_before_and_after_teardown_on_std_threads();
}
