//! The OS layer: mapping and unmapping aligned regions, and the system allocator used for
//! requests the pools do not serve.
//!
//! Nothing here allocates through Rust's global allocator.

#![cfg_attr(loom, allow(dead_code))] // the system allocator is used by `PoolAlloc` only

use core::ptr;

/// Map `size` bytes aligned to `align` (both powers of two, `align >= page size`), readable and
/// writable, zero-filled. Returns null when the OS refuses.
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
pub(crate) fn unmap(p: *mut u8, size: usize) {
    // SAFETY: callers pass a range they own that was mapped by `map`; nothing refers to it
    // any more. A failure leaves the range mapped (a leak, not unsoundness).
    unsafe {
        libc::munmap(p.cast(), size);
    }
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
const MALLOC_ALIGN: usize = 16;

/// Allocate from the system allocator. Returns null on failure.
///
/// # Safety
/// `align` is a power of two and `size` rounded up to `align` does not overflow `isize`.
pub(crate) unsafe fn sys_alloc(size: usize, align: usize) -> *mut u8 {
    if align <= MALLOC_ALIGN {
        // SAFETY: malloc accepts any size; it returns null on failure.
        unsafe { libc::malloc(size.max(1)).cast() }
    } else {
        sys_alloc_aligned(size, align)
    }
}

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
pub(crate) unsafe fn sys_free(p: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { libc::free(p.cast()) }
}

/// Write `msg` to standard error and abort the process. Used where the allocator finds its
/// own invariants broken by the caller (a pointer freed with the wrong layout): it cannot
/// panic, since a panic allocates.
#[cold]
pub(crate) fn fatal(msg: &str) -> ! {
    // SAFETY: write(2) reads `msg.len()` bytes from a valid slice; abort never returns.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
        libc::abort()
    }
}
