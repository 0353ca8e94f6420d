//! A counting global allocator (the system allocator underneath): it counts the live
//! allocations whose size falls in the window of the fuzzer's nodes (their padding gives them
//! a size nothing else in the process asks for). At the end of a program every node's memory
//! must have been returned: "every object freed" means memory too, not only `Drop`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use crate::objects::{SNode, UNode};

pub struct Counting;

static LIVE_NODES: AtomicIsize = AtomicIsize::new(0);

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Node allocations: the value plus a header of at most 256 bytes.
const LO: usize = min(size_of::<UNode>(), size_of::<SNode>());
const HI: usize = max(size_of::<UNode>(), size_of::<SNode>()) + 256;

fn in_window(size: usize) -> bool {
    (LO..HI).contains(&size)
}

/// Node allocations currently live.
pub fn live_nodes() -> isize {
    LIVE_NODES.load(Relaxed)
}

// SAFETY: forwards to the system allocator; the counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() && in_window(l.size()) {
            LIVE_NODES.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if in_window(l.size()) {
            LIVE_NODES.fetch_sub(1, Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() && in_window(l.size()) {
            LIVE_NODES.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if in_window(l.size()) {
                LIVE_NODES.fetch_sub(1, Relaxed);
            }
            if in_window(new) {
                LIVE_NODES.fetch_add(1, Relaxed);
            }
        }
        q
    }
}
