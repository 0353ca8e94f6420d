//! `PoolAllocWith<F>`: pyheap's pools in front of an allocator of your choice.

use super::pool_alloc::PoolAlloc;
use core::alloc::{GlobalAlloc, Layout};

/// [`PoolAlloc`]'s pools in front of the allocator `F`: requests of at most
/// [`SMALL_REQUEST_THRESHOLD`](super::SMALL_REQUEST_THRESHOLD) bytes (alignment at most
/// [`BLOCK_ALIGN`](super::BLOCK_ALIGN)) come from pyheap's per-thread pools, as with
/// `PoolAlloc`; every other request goes to `F`, the *fallback*. `PoolAlloc` is the same
/// with `std::alloc::System` as the fallback, except that it tunes glibc's `malloc` on Linux
/// ([`glibc_tuned`](super::glibc_tuned)); `PoolAllocWith` never changes its fallback's
/// settings, `PoolAllocWith::new(System)` included.
///
/// Choose a fallback that is faster than the system allocator on the sizes your program asks
/// for above 512 bytes. On glibc, requests of 1-32 KiB can cost many times what they cost
/// with `mimalloc` or `jemalloc` (glibc grows and trims its heap with a system call around
/// them; see BENCHMARKS.md, "Requests above 512 bytes", where pyheap over mimalloc is within
/// noise of mimalloc on such sizes).
///
/// As the global allocator (here with `System`, the default's fallback; with mimalloc it reads
/// `PoolAllocWith::new(mimalloc::MiMalloc)`):
///
/// ```
/// use std::alloc::System;
///
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAllocWith<System> = pyheap::PoolAllocWith::new(System);
///
/// fn main() {
///     let small: Vec<u8> = vec![1; 100]; // from a pool
///     let large: Vec<u8> = vec![2; 10_000]; // from the fallback
///     assert_eq!(small[99] + large[9_999], 3);
///     assert!(pyheap::alloc::stats().fallback_count >= 1);
/// }
/// ```
///
/// Or for one collection, through the `Allocator` trait of `allocator-api2` (0.2 and 0.4):
///
/// ```
/// use allocator_api2::vec::Vec;
/// let alloc = pyheap::PoolAllocWith::new(std::alloc::System);
/// let mut v = Vec::new_in(&alloc);
/// v.extend(0..10_000u32); // grows from the pools into the fallback
/// assert_eq!(v.iter().sum::<u32>(), 49_995_000);
/// ```
///
/// What goes where:
///
/// * Every block `F` returns is freed by `F`, with the layout `F` was asked for, and never
///   reaches the pools; a pool block never reaches `F`. `realloc` across the 512-byte limit
///   (either way) allocates from the other side, copies and frees the old block where it
///   came from; `realloc` from large to large is `F`'s `realloc`.
/// * Small requests the pools cannot serve (no arena could be mapped, or the calling
///   thread's heap is gone at thread exit) go to `F` too, as a block of the size class's
///   size with alignment 16.
/// * [`stats`](super::stats) counts `F`'s blocks as its "system allocator" (fallback)
///   lines, together with those of `PoolAlloc` and every other `PoolAllocWith`.
/// * The debug allocator (`PYHEAP_MALLOC=debug`) and tracemalloc see `F`'s blocks as they see
///   the system allocator's under `PoolAlloc`: the debug allocator's larger inner block of a
///   large request comes from `F`.
/// * Not on Unix every request goes to `F`.
///
/// Blocks must be freed by the same `PoolAllocWith` value (Rust's allocator contract): a
/// block of one `PoolAllocWith<F>` may be freed by another only if their `F`s can free each
/// other's blocks (true of unit-struct allocators such as `System` or `MiMalloc`).
/// `alloc` never panics and never unwinds unless `F`'s does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PoolAllocWith<F> {
    fallback: F,
}

impl<F> PoolAllocWith<F> {
    /// Pyheap's pools in front of `fallback`. A `const fn`, so that it can initialize the
    /// `static` of `#[global_allocator]`.
    ///
    /// ```
    /// use std::alloc::System;
    /// static A: pyheap::PoolAllocWith<System> = pyheap::PoolAllocWith::new(System);
    /// let v = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(4096, &A);
    /// assert!(v.capacity() >= 4096);
    /// ```
    pub const fn new(fallback: F) -> Self {
        PoolAllocWith { fallback }
    }

    /// The fallback allocator.
    ///
    /// ```
    /// let a = pyheap::PoolAllocWith::new(std::alloc::System);
    /// let _system: &std::alloc::System = a.fallback();
    /// ```
    pub const fn fallback(&self) -> &F {
        &self.fallback
    }
}

// SAFETY: `PoolAlloc`'s guarantees, with `F` in place of the system allocator: the shared
// paths hand `F` exactly the requests they gave the system allocator, and free `F`'s blocks
// through `F` with the layout it was asked for (`fallback.rs`); `F` keeps `GlobalAlloc`'s
// contract (its own `unsafe impl`).
unsafe impl<F: GlobalAlloc> GlobalAlloc for PoolAllocWith<F> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { PoolAlloc::alloc_impl(&self.fallback, layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { PoolAlloc::alloc_impl(&self.fallback, layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { PoolAlloc::dealloc_impl(&self.fallback, ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let mode = super::hooks::mode_out_of_line();
        // SAFETY: forwarded contract.
        unsafe { PoolAlloc::realloc_impl(&self.fallback, ptr, layout, new_size, mode) }
    }
}
