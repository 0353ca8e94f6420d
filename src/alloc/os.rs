//! The OS layer: mapping and unmapping aligned regions. (The requests the pools do not serve
//! go to the fallback allocator, `std::alloc::System` by default: `fallback.rs`.)
//!
//! Nothing here allocates through Rust's global allocator.
//!
//! Unix only (`mmap` through `libc`). Elsewhere `PoolAlloc` forwards every request to its
//! fallback allocator before it reaches the pools (`pool_alloc.rs`), and this module's Unix
//! functions are replaced by stand-ins that are never reached (see `portable`).

#[cfg(unix)]
use core::ptr;

/// Map `size` bytes aligned to `align` (both powers of two, `align >= page size`), readable and
/// writable, zero-filled. Returns null when the OS refuses.
///
/// Reserved inaccessible first ([`reserve_aligned`]), then made accessible ([`commit`]): the
/// alignment needs `size + align` bytes of address space for a moment, and a program that
/// called `mlockall(MCL_FUTURE)` has every accessible mapping populated in full when it is
/// made, so mapping those bytes accessible at once would fault in and zero twice the memory
/// asked for, then unmap half of it.
#[cfg(unix)]
pub(crate) fn map_aligned(size: usize, align: usize) -> *mut u8 {
    let p = reserve_aligned(size, align);
    if !p.is_null() && !commit(p, size) {
        unmap(p, size);
        return ptr::null_mut();
    }
    p
}

/// Reserve `size` bytes of address space aligned to `align` (both powers of two, `align >=
/// page size`), inaccessible (`PROT_NONE`): the OS backs none of it, even in a program that
/// locks its memory (`mlockall(MCL_CURRENT | MCL_FUTURE)` populates every new mapping that
/// can be read). [`commit`] makes parts of it readable and writable, zero-filled. Returns
/// null when the OS refuses.
#[cfg(unix)]
pub(crate) fn reserve_aligned(size: usize, align: usize) -> *mut u8 {
    let Some(span) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let raw = map_with(span, libc::PROT_NONE);
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

/// Make the `size` bytes at `p` (page-aligned, inside a reservation of ours that nothing
/// uses yet, or already committed) readable and writable. Pages never touched read as zero.
/// Returns whether the OS did it: it refuses when the process has too many mappings
/// (`vm.max_map_count`: a commit may split a reservation in two) or, with strict overcommit
/// accounting, too little memory to promise. In a program that locks its memory the pages
/// are populated (and locked) here.
#[cfg(unix)]
pub(crate) fn commit(p: *mut u8, size: usize) -> bool {
    // SAFETY: the range is ours (caller); making it accessible changes no byte of it.
    unsafe { libc::mprotect(p.cast(), size, libc::PROT_READ | libc::PROT_WRITE) == 0 }
}

/// Map `size` bytes of zeroed, readable and writable memory. Returns null on failure.
#[cfg(unix)]
pub(crate) fn map(size: usize) -> *mut u8 {
    map_with(size, libc::PROT_READ | libc::PROT_WRITE)
}

/// Map `size` bytes of zeroed memory that can only be read until parts of it are made
/// writable ([`commit`]). Reading a page never written costs no memory (the OS maps its
/// shared zero page), and nor does it in a program that locks its memory: that is what it
/// is for. Returns null on failure.
#[cfg(unix)]
pub(crate) fn map_read_only(size: usize) -> *mut u8 {
    map_with(size, libc::PROT_READ)
}

/// An anonymous private mapping of `size` bytes with protection `prot`, its pages never
/// counted against the commit limit until written (`MAP_NORESERVE`, Linux). Null on failure.
#[cfg(unix)]
fn map_with(size: usize, prot: libc::c_int) -> *mut u8 {
    #[cfg(target_os = "linux")]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANON;
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let p = unsafe { libc::mmap(ptr::null_mut(), size, prot, flags, -1, 0) };
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

/// Move the `size` bytes mapped at `from` to `to`, replacing whatever was mapped there (Linux's
/// `mremap` with `MREMAP_FIXED`): the pages move with their contents, resident ones stay
/// resident, and nothing is copied or faulted in; `from` is left unmapped. Both addresses are
/// page-aligned. Returns whether the OS did it: on failure both ranges are as they were.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
pub(crate) fn remap_fixed(from: *mut u8, size: usize, to: *mut u8) -> bool {
    // SAFETY: callers own both ranges (mapped by this module) and nothing refers to `from`'s
    // contents by its old address any more; `to`'s old contents are theirs to drop.
    let p = unsafe {
        libc::mremap(
            from.cast(),
            size,
            size,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to.cast::<libc::c_void>(),
        )
    };
    p != libc::MAP_FAILED
}

/// Move the `size` bytes mapped at `from` to `to` as [`remap_fixed`] does, but leave `from`
/// mapped, empty (Linux's `MREMAP_DONTUNMAP`, from 5.7; for any private anonymous mapping
/// from 5.13): the next touch there faults in a zero page, as after [`purge`]. Returns whether
/// the OS did it (an older kernel refuses the flag): on failure both ranges are as they were.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
pub(crate) fn remap_keep(from: *mut u8, size: usize, to: *mut u8) -> bool {
    // SAFETY: as for `remap_fixed`; `from` stays mapped to the caller, its contents gone.
    let p = unsafe {
        libc::mremap(
            from.cast(),
            size,
            size,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
            to.cast::<libc::c_void>(),
        )
    };
    p != libc::MAP_FAILED
}

/// Ask the OS never to back `size` bytes at `p` (a range this module mapped) with huge pages
/// (`MADV_NOHUGEPAGE`), whatever the system's transparent huge page setting. A refusal
/// changes only how the range is backed.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
pub(crate) fn no_huge_pages(p: *mut u8, size: usize) {
    // SAFETY: an advice on a mapped range of ours; it changes no contents.
    unsafe {
        libc::madvise(p.cast(), size, libc::MADV_NOHUGEPAGE);
    }
}

/// Give the physical memory of `size` bytes at `p` (page-aligned, inside a range this module
/// mapped, the caller's alone) back to the OS, keeping the addresses. On Linux the range
/// then reads as zero (`MADV_DONTNEED` on private anonymous memory), and the Linux-only code
/// relies on it: a purged place or pool a large block or a fresh arena reuses is not zeroed
/// again (`alloc_zeroed`); elsewhere nothing does (other systems may keep the bytes).
/// Returns whether the OS took the memory back.
///
/// The OS may refuse: Linux refuses `MADV_DONTNEED` on locked pages (a program that called
/// `mlockall`), and then the bytes stay. So on a refusal the range is zeroed by hand (it
/// stays resident: a cost, in a program that asked to keep its memory resident anyway).
/// Before session 33 a refusal left the old bytes in memory taken for zero, and
/// `alloc_zeroed` handed them out (`tests/alloc_mlocked.rs`).
#[cfg(unix)]
pub(crate) fn purge(p: *mut u8, size: usize) -> bool {
    // SAFETY: the range is mapped and ours (callers pass free pools of a mapped arena, or
    // vacant places, which nothing reads or writes until they are handed out again).
    // `MADV_DONTNEED` only drops the pages' contents.
    let purged = unsafe { libc::madvise(p.cast(), size, libc::MADV_DONTNEED) == 0 };
    if !purged {
        // SAFETY: as above: mapped, writable, ours alone.
        unsafe { zero_by_hand(p, size) };
    }
    purged
}

/// `purge`'s fallback, out of its way: the OS refused.
///
/// # Safety
/// The `size` bytes at `p` are mapped, writable, and the caller's alone.
#[cfg(unix)]
#[cold]
#[inline(never)]
unsafe fn zero_by_hand(p: *mut u8, size: usize) {
    // SAFETY: caller's contract.
    unsafe { ptr::write_bytes(p, 0, size) };
}

/// A monotonic clock in milliseconds, read without allocating (a vDSO call on Linux). Not
/// under loom: models must replay the same steps in every execution, so the arena manager
/// reads a clock only the model moves there (`ArenaManager::now_ms`).
#[cfg(all(unix, not(loom)))]
pub(crate) fn now_ms() -> u64 {
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

    /// The OS refuses (never asked, see the module).
    pub(crate) fn map_read_only(_size: usize) -> *mut u8 {
        core::ptr::null_mut()
    }

    /// The OS refuses (never asked, see the module).
    pub(crate) fn commit(_p: *mut u8, _size: usize) -> bool {
        false
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

/// `getenv(name)` as bytes, without allocating (the allocator reads its settings before any
/// allocation can be served). `None` off Unix.
///
/// # Safety
/// The environment is not changed (`setenv`, `putenv`, `std::env::set_var`) while the returned
/// bytes are used: they point into the environment itself.
#[cfg(unix)]
#[cfg_attr(loom, allow(dead_code))] // its readers (`glibc_tuning`, the hooks) are not built under loom
pub(crate) unsafe fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; getenv returns null or a NUL-terminated string, which
    // stays valid while the environment is not changed (the caller's contract).
    unsafe {
        let v = libc::getenv(name.as_ptr());
        (!v.is_null()).then(|| core::ffi::CStr::from_ptr(v).to_bytes())
    }
}

/// See the Unix version.
///
/// # Safety
/// None needed here.
#[cfg(not(unix))]
pub(crate) unsafe fn getenv(_name: &core::ffi::CStr) -> Option<&'static [u8]> {
    None
}
