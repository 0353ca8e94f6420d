//! Requests the allocator must refuse gracefully, with `PoolAlloc` as the global allocator:
//! sizes near `isize::MAX` (`GlobalAlloc` returns null, `Vec::try_reserve` reports an error,
//! `realloc` to such a size returns null and keeps the old block), and real memory exhaustion
//! (address-space limit in a child process): `alloc` returns null, never unwinds nor aborts,
//! and the allocator works again once memory is freed.
//!
//! Users care because `try_reserve` and `handle_alloc_error` rely on null: an allocator that
//! panics or aborts on exhaustion takes the decision away from the program.

mod common;

use pyheap::PoolAlloc;
use std::alloc::{GlobalAlloc, Layout};
use std::panic::{catch_unwind, AssertUnwindSafe};

#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

#[test]
fn sizes_near_isize_max_return_null() {
    let max = isize::MAX as usize;
    for align in [1usize, 8, 16, 32, 4096] {
        for size in [max - (align - 1), max / 2 + 1, 1 << 47] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; a non-null result would be freed at once.
            let (p, z) = unsafe { (GLOBAL.alloc(layout), GLOBAL.alloc_zeroed(layout)) };
            assert!(p.is_null(), "{layout:?} succeeded");
            assert!(z.is_null(), "zeroed {layout:?} succeeded");
            for start in [8usize, 100, 512, 513, 4096] {
                let old = Layout::from_size_align(start, align).unwrap();
                // SAFETY: `old` is non-zero; realloc's new size is valid for `align` because
                // `layout` exists; on null the old block is still ours.
                unsafe {
                    let p = GLOBAL.alloc(old);
                    assert!(!p.is_null());
                    common::fill(p, start, 9);
                    assert!(GLOBAL.realloc(p, old, size).is_null(), "realloc to {size}");
                    assert_eq!(common::first_mismatch(p, start, 9), None);
                    GLOBAL.dealloc(p, old);
                }
            }
        }
    }
}

#[test]
fn try_reserve_reports_capacity_overflow_and_alloc_errors() {
    let mut v: Vec<u8> = vec![1, 2, 3];
    assert!(v.try_reserve(usize::MAX).is_err());
    assert!(v.try_reserve(isize::MAX as usize - 100).is_err());
    assert!(v.try_reserve_exact(1 << 46).is_err());
    let mut s = String::from("abc");
    assert!(s.try_reserve(isize::MAX as usize).is_err());
    assert_eq!(v, [1, 2, 3]);
    assert_eq!(s, "abc");
    v.try_reserve(1000).unwrap();
    v.extend(std::iter::repeat_n(7u8, 1000));
    assert_eq!(v.len(), 1003);
}

/// In a forked child: limit the address space, then allocate small and large blocks until the
/// allocator returns null. Exit status: 0 when null came back (and the allocator recovered
/// after freeing), 2 if `alloc` unwound, 3 if memory never ran out, 4 if it did not recover.
fn exhaust_in_child() -> i32 {
    // Current virtual size, before the limit: the child may map 32 MiB more.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let limit = pages * page + (32 << 20);
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) } != 0 {
        return 5;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // Blocks are chained through their first word: no other allocation needed.
        let mut outcome = 0;
        for (size, cap) in [
            (64usize, 10_000_000usize),
            (200_000, 100_000),
            (48, 10_000_000),
        ] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let mut head: *mut u8 = std::ptr::null_mut();
            let mut n = 0;
            loop {
                // SAFETY: non-zero size.
                let p = unsafe { GLOBAL.alloc(layout) };
                if p.is_null() {
                    break;
                }
                // SAFETY: `p` has at least 8 bytes, 8-aligned.
                unsafe { p.cast::<*mut u8>().write(head) };
                head = p;
                n += 1;
                if n == cap {
                    return 3;
                }
            }
            if n == 0 && size != 48 {
                outcome = 3;
            }
            // Free everything, then the allocator must serve again.
            while !head.is_null() {
                // SAFETY: a block allocated above with `layout`, whose first word links on.
                unsafe {
                    let next = head.cast::<*mut u8>().read();
                    GLOBAL.dealloc(head, layout);
                    head = next;
                }
            }
            // SAFETY: non-zero size; freed at once.
            unsafe {
                let p = GLOBAL.alloc(layout);
                if p.is_null() {
                    return 4;
                }
                GLOBAL.dealloc(p, layout);
            }
        }
        outcome
    }));
    result.unwrap_or(2)
}

#[test]
fn exhaustion_returns_null_without_unwinding_or_aborting() {
    // SAFETY: the child runs only `exhaust_in_child`, then `_exit`s without running the
    // parent's destructors or at-exit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe; the alarm turns a hang into a death.
        unsafe {
            libc::alarm(60);
            libc::_exit(exhaust_in_child());
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "child died of signal {} (abort or crash on exhaustion)",
        libc::WTERMSIG(status)
    );
    let code = libc::WEXITSTATUS(status);
    assert_eq!(
        code,
        0,
        "{}",
        match code {
            2 => "alloc unwound",
            3 => "memory never ran out",
            4 => "allocator did not recover after freeing",
            5 => "setrlimit failed",
            _ => "unexpected exit",
        }
    );
}
