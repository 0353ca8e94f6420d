//! `Block`: one raw heap block of a given size, straight through the global allocator.
//!
//! The workloads use raw blocks rather than `Box<[u8]>`/`Vec<u8>` so that what is timed is
//! the allocator and not a `memset` of up to 512 bytes: a block is touched with one byte
//! write (as any real use would touch it) and otherwise left alone.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// The alignment of every block: what most Rust allocations (`Box<u64>`, `String`, `Vec` of
/// pointers, nodes) ask for.
pub const ALIGN: usize = 8;

/// An owned heap block of `size` bytes, aligned to [`ALIGN`]; freed on drop.
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: a `Block` uniquely owns its allocation, like a `Box<[u8]>`.
unsafe impl Send for Block {}

impl Block {
    /// Allocate `size` (>= 1) bytes and write the first one.
    #[inline]
    pub fn new(size: usize) -> Block {
        let layout = match Layout::from_size_align(size, ALIGN) {
            Ok(l) if size > 0 => l,
            _ => panic!("bad block size {size}"),
        };
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `p` points to at least `size >= 1` writable bytes.
        unsafe { p.write(size as u8) };
        Block { ptr, size }
    }
}

impl Drop for Block {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout, freed once.
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.size, ALIGN),
            )
        }
    }
}
