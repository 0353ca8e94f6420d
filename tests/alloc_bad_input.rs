//! Requests the allocator must refuse gracefully, with `PoolAlloc` as the global allocator:
//! sizes near `isize::MAX` (`GlobalAlloc` returns null, `Vec::try_reserve` reports an error,
//! `realloc` to such a size returns null and keeps the old block), and real memory exhaustion
//! (address-space limit in a child process): `alloc` returns null, never unwinds nor aborts,
//! and the allocator works again once memory is freed. A block freed with the layout of
//! another size class than it was allocated with aborts with a message instead of going onto
//! the wrong free list.
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

/// In a forked child: limit the address space, then allocate small, large and medium-span
/// blocks until the allocator returns null. Exit status: 0 when null came back (and the allocator recovered
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
            // A medium span bin: the spans run out (a failed map leaves the refill short).
            (1000, 1_000_000),
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

/// In a forked child: run `f`, then exit 0 if it returned; the parent gets the child's status.
fn in_child(f: fn()) -> libc::c_int {
    // SAFETY: the child runs only `f`, then `_exit`s without running the parent's destructors
    // or at-exit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe; the alarm turns a hang into a death.
        unsafe {
            libc::alarm(60);
            f();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

fn aborted(status: libc::c_int) -> bool {
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGABRT
}

/// Freeing a pool block with the layout of another size class is caught (an abort with a
/// message), whether the block is of this thread's pools (the free fast path, which compares
/// the size with the pool's blocks instead of computing the class) or of another thread's
/// (the remote-free path); so is a medium span block (513 B to 4 KiB) freed with the layout of
/// another size bin, on its thread or another, and a medium span block freed twice once both
/// frees reach its span (the span's bitmap of free slots has the slot free already); a block
/// freed with its own layout, 16-aligned sizes that round up included, is not.
#[test]
fn dealloc_with_a_layout_of_another_size_class_aborts() {
    fn own_pool() {
        let a = Layout::from_size_align(8, 8).unwrap();
        // SAFETY: deliberately wrong: the layout of another class (the abort is the test).
        unsafe { GLOBAL.dealloc(GLOBAL.alloc(a), Layout::from_size_align(100, 8).unwrap()) };
    }
    fn smaller_class() {
        let a = Layout::from_size_align(200, 8).unwrap();
        // SAFETY: deliberately wrong, as above.
        unsafe { GLOBAL.dealloc(GLOBAL.alloc(a), Layout::from_size_align(40, 8).unwrap()) };
    }
    fn other_thread() {
        let a = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: a non-null block of `a`, sent to another thread as an address.
        let p = unsafe { GLOBAL.alloc(a) } as usize;
        assert_ne!(p, 0);
        std::thread::spawn(move || {
            // SAFETY: deliberately wrong, as above.
            unsafe { GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(300, 8).unwrap()) };
        })
        .join()
        .unwrap();
    }
    fn medium_other_bin() {
        let a = Layout::from_size_align(600, 8).unwrap();
        // SAFETY: deliberately wrong: a span block (577-640 B bin) freed with the layout of
        // the 961-1,024 B bin (the abort is the test).
        unsafe { GLOBAL.dealloc(GLOBAL.alloc(a), Layout::from_size_align(1000, 8).unwrap()) };
    }
    fn medium_other_thread() {
        let a = Layout::from_size_align(3000, 16).unwrap();
        // SAFETY: a non-null span block of `a`, sent to another thread as an address.
        let p = unsafe { GLOBAL.alloc(a) } as usize;
        assert_ne!(p, 0);
        std::thread::spawn(move || {
            // SAFETY: deliberately wrong, as above (the 2,049-2,304 B bin).
            unsafe { GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(2100, 16).unwrap()) };
        })
        .join()
        .unwrap();
    }
    fn medium_freed_twice() {
        let a = Layout::from_size_align(600, 8).unwrap();
        // A span block allocated and freed on a thread that exits (its medium cache gives the
        // block back to its span), then freed again on another that exits too.
        let p = std::thread::spawn(move || {
            // SAFETY: a non-zero size; freed with its layout.
            unsafe {
                let p = GLOBAL.alloc(a);
                assert!(!p.is_null());
                GLOBAL.dealloc(p, a);
                p as usize
            }
        })
        .join()
        .unwrap();
        std::thread::spawn(move || {
            // SAFETY: deliberately wrong: a second free of the same block (the abort is the
            // test).
            unsafe { GLOBAL.dealloc(p as *mut u8, a) };
        })
        .join()
        .unwrap();
    }
    fn own_layouts() {
        // The pools' sizes with every alignment they serve, then the medium spans' sizes.
        let ranges: [(&[usize], core::ops::RangeInclusive<usize>, u8); 2] = [
            (&[1, 2, 4, 8, 16], 1..=512, 0xA5),
            (&[8, 16], 513..=4200, 0x5A),
        ];
        for (aligns, sizes, byte) in ranges {
            for &align in aligns {
                for size in sizes.clone() {
                    let l = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: freed with the layout it was allocated with.
                    unsafe {
                        let p = GLOBAL.alloc(l);
                        assert!(!p.is_null());
                        p.write_bytes(byte, size);
                        GLOBAL.dealloc(p, l);
                    }
                }
            }
        }
    }
    for (f, name) in [
        (own_pool as fn(), "own pool"),
        (smaller_class, "own pool, smaller class"),
        (other_thread, "another thread's pool"),
        (medium_other_bin, "medium span block, another bin"),
        (
            medium_other_thread,
            "medium span block, another bin, another thread",
        ),
        (medium_freed_twice, "medium span block freed twice"),
    ] {
        let status = in_child(f);
        assert!(
            aborted(status),
            "{name}: status {status:#x}, expected an abort"
        );
    }
    let status = in_child(own_layouts);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "own layouts: status {status:#x}"
    );
}
