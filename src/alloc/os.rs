//! The OS layer: mapping and unmapping aligned regions, and the system allocator used for
//! requests the pools do not serve.
//!
//! Nothing here allocates through Rust's global allocator.
//!
//! Unix only (`mmap`, `malloc` and `posix_memalign` through `libc`). Elsewhere `PoolAlloc`
//! forwards every request to `std::alloc::System` before it reaches the pools
//! ([`system_alloc`], [`system_dealloc`], [`system_realloc`]), and this module's Unix
//! functions are replaced by stand-ins that are never reached (see `portable`).

#![cfg_attr(loom, allow(dead_code))] // the system allocator is used by `PoolAlloc` only

#[cfg(unix)]
use core::ptr;

/// Map `size` bytes aligned to `align` (both powers of two, `align >= page size`), readable and
/// writable, zero-filled. Returns null when the OS refuses.
#[cfg(unix)]
pub(crate) fn map_aligned(size: usize, align: usize) -> *mut u8 {
    let Some(span) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let raw = map(span);
    if raw.is_null() {
        return raw;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = span - head - size;
    if head > 0 {
        unmap(raw, head);
    }
    if tail > 0 {
        unmap((aligned + size) as *mut u8, tail);
    }
    aligned as *mut u8
}

/// Map `size` bytes of zeroed, readable and writable memory. Returns null on failure.
#[cfg(unix)]
pub(crate) fn map(size: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANON;
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Return `size` bytes at `p` (a range this module mapped) to the OS.
#[cfg(unix)]
pub(crate) fn unmap(p: *mut u8, size: usize) {
    // SAFETY: callers pass a range they own that was mapped by `map`; nothing refers to it
    // any more. A failure leaves the range mapped (a leak, not unsoundness).
    unsafe {
        libc::munmap(p.cast(), size);
    }
}

/// Give the physical memory of `size` bytes at `p` (page-aligned, inside a range this module
/// mapped) back to the OS, keeping the addresses: the next touch faults in a fresh page
/// (zero on Linux; the callers do not rely on the contents either way). Returns whether the
/// OS accepted (a refusal leaves the memory resident: a cost, not unsoundness).
#[cfg(unix)]
pub(crate) fn purge(p: *mut u8, size: usize) -> bool {
    // SAFETY: the range is mapped and ours (callers pass free pools of a mapped arena, which
    // nothing reads or writes until they are handed out again). `MADV_DONTNEED` only drops
    // the pages' contents.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_DONTNEED) == 0 }
}

/// A monotonic clock in milliseconds, read without allocating (a vDSO call on Linux). Under
/// loom it stands still at 0: models must replay the same steps in every execution, so no
/// decision in them may depend on time.
#[cfg(unix)]
pub(crate) fn now_ms() -> u64 {
    if cfg!(loom) {
        return 0;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = libc::CLOCK_MONOTONIC;
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is supported on this target.
    unsafe { libc::clock_gettime(clock, &mut t) };
    (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000
}

/// Make a mapped range inaccessible without giving its addresses back, so that any later
/// touch faults at once. Used under loom in place of `unmap`, so that a model which touches a
/// released arena crashes instead of reading an address the OS already handed out again.
#[cfg(loom)]
pub(crate) fn protect_none(p: *mut u8, size: usize) {
    // SAFETY: as for `unmap`: the range is ours and unreferenced.
    unsafe {
        libc::mprotect(p.cast(), size, libc::PROT_NONE);
    }
}

/// The alignment the system `malloc` guarantees for every request.
#[cfg(unix)]
const MALLOC_ALIGN: usize = 16;

/// Allocate from the system allocator. Returns null on failure.
///
/// # Safety
/// `align` is a power of two and `size` rounded up to `align` does not overflow `isize`.
#[cfg(unix)]
pub(crate) unsafe fn sys_alloc(size: usize, align: usize) -> *mut u8 {
    if align <= MALLOC_ALIGN {
        // SAFETY: malloc accepts any size; it returns null on failure.
        unsafe { libc::malloc(size.max(1)).cast() }
    } else {
        sys_alloc_aligned(size, align)
    }
}

#[cfg(unix)]
fn sys_alloc_aligned(size: usize, align: usize) -> *mut u8 {
    let mut out = ptr::null_mut();
    let align = align.max(core::mem::size_of::<usize>());
    // SAFETY: `align` is a power of two and a multiple of the pointer size, as posix_memalign
    // requires; on failure `out` stays null.
    let rc = unsafe { libc::posix_memalign(&mut out, align, size.max(1)) };
    if rc == 0 {
        out.cast()
    } else {
        ptr::null_mut()
    }
}

/// Allocate zeroed memory from the system allocator. Returns null on failure.
///
/// # Safety
/// As for [`sys_alloc`].
#[cfg(unix)]
pub(crate) unsafe fn sys_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    if align <= MALLOC_ALIGN {
        // SAFETY: calloc accepts any size; it returns null on failure.
        unsafe { libc::calloc(1, size.max(1)).cast() }
    } else {
        let p = sys_alloc_aligned(size, align);
        if !p.is_null() {
            // SAFETY: `p` points to at least `size` writable bytes just allocated.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    }
}

/// Resize a system allocation, keeping its alignment. Returns null on failure (the old block
/// is then untouched).
///
/// # Safety
/// `p` came from [`sys_alloc`] or [`sys_alloc_zeroed`] with alignment `align` and size
/// `old_size`, and is not used again unless null is returned.
#[cfg(unix)]
pub(crate) unsafe fn sys_realloc(
    p: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if align <= MALLOC_ALIGN {
        // SAFETY: `p` is a live malloc block (caller's contract).
        unsafe { libc::realloc(p.cast(), new_size.max(1)).cast() }
    } else {
        let q = sys_alloc_aligned(new_size, align);
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct, each at least `min` bytes long.
            unsafe {
                ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
                libc::free(p.cast());
            }
        }
        q
    }
}

/// Free a block of the system allocator.
///
/// # Safety
/// `p` came from one of the `sys_*` functions above and is not used again.
#[cfg(unix)]
pub(crate) unsafe fn sys_free(p: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { libc::free(p.cast()) }
}

/// Write `msg` to standard error and abort the process. Used where the allocator finds its
/// own invariants broken by the caller (a pointer freed with the wrong layout): it cannot
/// panic, since a panic allocates.
#[cold]
#[cfg(unix)]
pub(crate) fn fatal(msg: &str) -> ! {
    // SAFETY: write(2) reads `msg.len()` bytes from a valid slice; abort never returns.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::abort()
    }
}

/// Requests of every size, when `PoolAlloc` forwards to the system allocator (not on Unix).
///
/// # Safety
/// As for `GlobalAlloc::alloc` (`layout` of non-zero size).
#[inline]
pub(crate) unsafe fn system_alloc(layout: core::alloc::Layout, zeroed: bool) -> *mut u8 {
    use core::alloc::GlobalAlloc;
    // SAFETY: forwarded contract.
    unsafe {
        if zeroed {
            std::alloc::System.alloc_zeroed(layout)
        } else {
            std::alloc::System.alloc(layout)
        }
    }
}

/// Free a block [`system_alloc`] or [`system_realloc`] gave.
///
/// # Safety
/// As for `GlobalAlloc::dealloc`, for a block of `std::alloc::System`.
#[inline]
pub(crate) unsafe fn system_dealloc(p: *mut u8, layout: core::alloc::Layout) {
    use core::alloc::GlobalAlloc;
    // SAFETY: forwarded contract.
    unsafe { std::alloc::System.dealloc(p, layout) }
}

/// Resize a block [`system_alloc`] or [`system_realloc`] gave.
///
/// # Safety
/// As for `GlobalAlloc::realloc`, for a block of `std::alloc::System`.
#[inline]
pub(crate) unsafe fn system_realloc(
    p: *mut u8,
    layout: core::alloc::Layout,
    new_size: usize,
) -> *mut u8 {
    use core::alloc::GlobalAlloc;
    // SAFETY: forwarded contract.
    unsafe { std::alloc::System.realloc(p, layout, new_size) }
}

#[cfg(not(unix))]
pub(crate) use portable::*;

/// Stand-ins for the Unix functions above, so that the pools compile everywhere. None is
/// reached: off Unix, `PoolAlloc`'s entry points forward every request to the system
/// allocator before any pool, arena or heap is touched (so `map` is never asked, and would
/// answer "refused"), and `fatal` is the only one with a real body.
#[cfg(not(unix))]
mod portable {
    /// The OS refuses (never asked, see the module).
    pub(crate) fn map_aligned(_size: usize, _align: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// The OS refuses (never asked, see the module).
    pub(crate) fn map(_size: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// Nothing was mapped, so nothing is returned.
    pub(crate) fn unmap(_p: *mut u8, _size: usize) {}

    /// Nothing was mapped, so nothing is purged.
    pub(crate) fn purge(_p: *mut u8, _size: usize) -> bool {
        false
    }

    /// Never asked (see the module).
    pub(crate) fn now_ms() -> u64 {
        0
    }

    /// Never asked (see the module): refuses.
    ///
    /// # Safety
    /// None needed; `unsafe` to keep the Unix signature.
    pub(crate) unsafe fn sys_alloc(_size: usize, _align: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// Never asked (see the module): refuses.
    ///
    /// # Safety
    /// None needed; `unsafe` to keep the Unix signature.
    pub(crate) unsafe fn sys_alloc_zeroed(_size: usize, _align: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// Never asked (see the module): refuses, leaving the block as it is.
    ///
    /// # Safety
    /// None needed; `unsafe` to keep the Unix signature.
    pub(crate) unsafe fn sys_realloc(
        _p: *mut u8,
        _old_size: usize,
        _align: usize,
        _new_size: usize,
    ) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// No block of this module's exists to be freed (`sys_alloc` never gives one).
    ///
    /// # Safety
    /// None needed; `unsafe` to keep the Unix signature.
    pub(crate) unsafe fn sys_free(_p: *mut u8) {
        fatal("pyheap: sys_free of a block the system stand-ins never gave");
    }

    /// Write `msg` to standard error and abort (as the Unix `fatal`, without `libc`). Standard
    /// error is unbuffered: the write does not allocate.
    #[cold]
    pub(crate) fn fatal(msg: &str) -> ! {
        use std::io::Write;
        let mut e = std::io::stderr();
        let _ = e.write_all(msg.as_bytes());
        let _ = e.write_all(b"\n");
        std::process::abort()
    }
}
