//! The allocator's hooks: the debug allocator (`PYHEAP_MALLOC=debug`, `debug.rs`) and
//! tracemalloc (`crate::tracemalloc`), on every block `PoolAlloc` (or a `PoolAllocWith`) serves.
//! They take the fallback allocator of the entry point that called them (`fallback.rs`), for
//! the blocks the pools do not serve.
//!
//! # What they cost while off
//!
//! The allocation fast path looks up the request's size class in its own copy of the class
//! table, [`alloc_class`]; while a hook is on, every entry of that copy reads `HOOKED`, so the
//! one test the hooks add is a compare of the byte the lookup loaded anyway, and a predicted
//! branch (a request that finds `HOOKED` goes to `alloc_cold`, which looks at [`mode`] first).
//! A separate flag cost two more instructions per allocation on random sizes (the load of its
//! address and of the flag); with a constant size, whose class the compiler used to fold, the
//! table's load is the same two. The free fast path already tests one word, `Global::free_flags` ("was a small request ever
//! served by the system allocator?"); a second bit of it, `FREE_HOOKS`, sends frees to the
//! hooks: no new instruction there. `realloc` tests the mode on entry. (Tried and measured:
//! comparing the bound heap's pointer with a bound in memory instead of a constant, which
//! costs no instruction at all, ran the LIFO benchmark 4-9% slower than the flag.)
//!
//! Why a free of a traced block sees `FREE_HOOKS`: `tracemalloc::start` sets it (here)
//! before it lets the trace table record (a `Release` store of the table's `tracing`, which
//! a recording loads with `Acquire`: `tracemalloc/table.rs`), so a recorded trace happens
//! after the bit was set, and the thread that frees the block received it after that. (If
//! the free sees the bit cleared again, a `stop` cleared it after emptying the traces, and
//! the trace, recorded before that emptying, is gone.) The debug allocator sets the bits for
//! good before the first block is handed out.
//!
//! # The first allocation reads the environment
//!
//! Until then the table reads `HOOKED`, `FREE_HOOKS` is set and the mode says `UNINIT`, so the first request of the
//! process (or any request made while the first one is reading) comes here: it reads
//! `PYHEAP_MALLOC` and `PYHEAP_TRACEMALLOC` with `getenv` (no allocation), turns the debug
//! allocator on for the life of the process, starts tracing, or fills the table and clears
//! the bit (their normal state). The debug allocator changes every block's layout, so it can only be chosen
//! before the first block is handed out: hence the environment, as CPython's `PYTHONMALLOC`.
//!
//! Tracing starts and stops at any time (`tracemalloc::start`/`stop`): a request that read
//! the old table entry just before a change is served as if the change came after it. Whether a
//! block gets a trace is decided under its trace shard's lock (`crate::tracemalloc`).

use super::debug;
use super::fallback::Fallback;
use super::global::{FREE_HOOKS, GLOBAL};
use super::pool_alloc::PoolAlloc;
use super::size_class::{class_by_eighths, class_table_index, CLASS_TABLE_LEN, NUM_SIZE_CLASSES};
use crate::sync::unmodelled::{AtomicU8, Ordering};
use core::alloc::Layout;

/// The allocation fast path's class table: `size_class`'s table (`size_class.rs`) while no
/// hook is on; every entry `HOOKED` while one is, and before the first allocation has read
/// the environment. Written only by `set_alloc_hooked`.
static ALLOC_CLASSES: [AtomicU8; CLASS_TABLE_LEN] =
    [const { AtomicU8::new(HOOKED) }; CLASS_TABLE_LEN];

/// The entry of `ALLOC_CLASSES` that sends a request to the hooks (no class is that large).
const HOOKED: u8 = u8::MAX;
const _: () = assert!(NUM_SIZE_CLASSES < HOOKED as usize);

/// Send every allocation to the hooks (`true`, a `Release` store of each entry: a request
/// that reads `HOOKED` and then an `Acquire` fence sees what was set before) or to the pools
/// again. Callers serialize (`init`, `set_tracing`).
fn set_alloc_hooked(on: bool) {
    for (n, entry) in ALLOC_CLASSES.iter().enumerate() {
        if on {
            entry.store(HOOKED, Ordering::Release);
        } else {
            entry.store(class_by_eighths(n), Ordering::Relaxed);
        }
    }
}

/// What is on (bits below); 0: nothing.
static MODE: AtomicU8 = AtomicU8::new(UNINIT);
/// The environment was not read yet.
pub(crate) const UNINIT: u8 = 1;
/// The debug allocator is on (for the life of the process).
pub(crate) const DEBUG: u8 = 2;
/// tracemalloc may be tracing.
pub(crate) const TRACING: u8 = 4;

/// Reading the environment: 0 not started, 1 under way, 2 done.
static INIT: AtomicU8 = AtomicU8::new(0);

/// The size class of an allocation the fast path may serve: `None` when the pools do not
/// serve it (too large or too aligned) or while a hook is on (the fast path's one test).
#[inline(always)]
pub(crate) fn alloc_class(size: usize, align: usize) -> Option<usize> {
    let n = class_table_index(size, align)?;
    // SAFETY: `class_table_index` returns an index below `CLASS_TABLE_LEN`.
    let class = unsafe { ALLOC_CLASSES.get_unchecked(n) }.load(Ordering::Relaxed);
    if class == HOOKED {
        None
    } else {
        Some(usize::from(class))
    }
}

/// What is on now (0: nothing).
#[inline(always)]
pub(crate) fn mode() -> u8 {
    MODE.load(Ordering::Relaxed)
}

/// [`mode`] as a function of this crate, for generic code (which may be compiled in another
/// crate): if such code read `MODE` itself, every reader would reach it through the GOT, this
/// crate's too (`pool_alloc.rs`, `entry_points!`).
#[inline(never)]
pub(crate) fn mode_out_of_line() -> u8 {
    mode()
}

/// Whether the debug allocator is on (reads the environment first if no allocation did).
pub(crate) fn debug_on() -> bool {
    let mut m = mode();
    if m & UNINIT != 0 {
        m = init();
    }
    m & DEBUG != 0
}

/// Read the environment if no allocation did yet. `tracemalloc::start` and `stop` call it
/// before they take their lock, which `PYHEAP_TRACEMALLOC` takes too.
pub(crate) fn ensure_init() {
    if mode() & UNINIT != 0 {
        init();
    }
}

/// Turn the tracing hooks on or off (tracemalloc's start and stop, which serialize their
/// calls). Debug mode keeps the table on `HOOKED` and the bit set whatever tracing does.
pub(crate) fn set_tracing(on: bool) {
    if mode() & UNINIT != 0 {
        init();
    }
    if on {
        MODE.fetch_or(TRACING, Ordering::Relaxed);
        GLOBAL.free_flags.fetch_or(FREE_HOOKS, Ordering::Relaxed);
        set_alloc_hooked(true);
    } else {
        let m = MODE.fetch_and(!TRACING, Ordering::Relaxed) & !TRACING;
        if m == 0 {
            set_alloc_hooked(false);
            GLOBAL.free_flags.fetch_and(!FREE_HOOKS, Ordering::Relaxed);
        }
    }
}

/// Read the environment (once; a thread arriving meanwhile waits, so that no block is handed
/// out before the debug allocator is decided). Returns the mode.
#[cold]
#[inline(never)]
fn init() -> u8 {
    if INIT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        let mut m = 0;
        if env_is(c"PYHEAP_MALLOC", b"debug") {
            m |= DEBUG;
        }
        MODE.store(m, Ordering::Relaxed);
        if m == 0 {
            set_alloc_hooked(false);
            GLOBAL.free_flags.fetch_and(!FREE_HOOKS, Ordering::Relaxed);
        }
        INIT.store(2, Ordering::Release);
        if let Some(n) = env_number(c"PYHEAP_TRACEMALLOC") {
            if n > 0 {
                crate::tracemalloc::start_from_env(n);
            }
        }
    } else {
        let mut round = 0;
        while INIT.load(Ordering::Acquire) != 2 {
            crate::sync::spin_wait(round);
            round = round.saturating_add(1);
        }
    }
    mode()
}

/// `getenv(name)` as bytes, without allocating. (Not on Unix the hooks are never reached:
/// `PoolAlloc` forwards every request to the system allocator there.)
fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: read once, at the first allocation, and used at once: nobody changes the
    // environment before the first allocation returns.
    unsafe { super::os::getenv(name) }
}

fn env_is(name: &core::ffi::CStr, value: &[u8]) -> bool {
    getenv(name).is_some_and(|v| v.eq_ignore_ascii_case(value))
}

fn env_number(name: &core::ffi::CStr) -> Option<usize> {
    let v = getenv(name)?;
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0')))
}

/// Allocation with the hooks (`mode != 0`); `marker` is a stack address of the entry point
/// (`tracemalloc::stack_marker`), which tracemalloc skips the frames below.
#[cold]
#[inline(never)]
pub(crate) fn alloc<A: Fallback>(
    f: A,
    layout: Layout,
    zeroed: bool,
    mut mode: u8,
    marker: usize,
) -> *mut u8 {
    if mode & UNINIT != 0 {
        mode = init();
    }
    let p = if mode & DEBUG != 0 {
        debug::alloc(f, layout, zeroed)
    } else {
        // SAFETY: `layout` is valid with a non-zero size (`GlobalAlloc`'s contract).
        unsafe { PoolAlloc::alloc_raw(f, layout, zeroed) }
    };
    if mode & TRACING != 0 && !p.is_null() {
        crate::tracemalloc::record(p, layout.size(), marker);
    }
    p
}

/// Freeing with the hooks (`mode != 0`).
///
/// # Safety
/// `GlobalAlloc::dealloc`'s contract (the debug allocator reports a caller that breaks it).
#[cold]
#[inline(never)]
pub(crate) unsafe fn dealloc<A: Fallback>(f: A, ptr: *mut u8, layout: Layout, mut mode: u8) {
    if mode & UNINIT != 0 {
        mode = init();
    }
    if mode & DEBUG != 0 {
        // SAFETY: forwarded contract; the debug allocator forgets the trace itself, after
        // its checks (a report shows the trace).
        unsafe { debug::dealloc(f, ptr, layout) };
        return;
    }
    if mode & TRACING != 0 {
        // Before the block is freed: once it is, another thread may get the address and
        // trace it.
        crate::tracemalloc::forget(ptr);
    }
    // SAFETY: forwarded contract.
    unsafe { PoolAlloc::dealloc_raw(f, ptr, layout) }
}

/// `realloc` with the hooks (`mode != 0`).
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
#[cold]
#[inline(never)]
pub(crate) unsafe fn realloc<A: Fallback>(
    f: A,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
    mut mode: u8,
    marker: usize,
) -> *mut u8 {
    if mode & UNINIT != 0 {
        mode = init();
    }
    let tracing = mode & TRACING != 0;
    if mode & DEBUG != 0 {
        // SAFETY: forwarded contract (the old block's trace is forgotten when it is freed).
        let q = unsafe { debug::realloc(f, ptr, layout, new_size) };
        if tracing && !q.is_null() {
            crate::tracemalloc::record(q, new_size, marker);
        }
        return q;
    }
    if tracing {
        crate::tracemalloc::forget(ptr);
    }
    // SAFETY: forwarded contract.
    let q = unsafe { PoolAlloc::realloc_raw(f, ptr, layout, new_size) };
    if tracing {
        if q.is_null() {
            crate::tracemalloc::record(ptr, layout.size(), marker);
        } else {
            crate::tracemalloc::record(q, new_size, marker);
        }
    }
    q
}
