//! Size classes: which block size serves a request.
//!
//! Class 0 holds 8-byte blocks (8-byte aligned); classes 1 to 32 hold blocks of 16, 32, ...,
//! 512 bytes (16-byte aligned). CPython uses 16-byte steps on 64-bit because its objects need
//! 16-byte alignment; Rust requests carry their alignment, and a `Box<u64>`, an `Rc<()>` or a
//! one-pointer node asks for 8 bytes aligned to 8, so an 8-byte class halves their footprint
//! and fits twice as many in a cache line.

/// Requests larger than this many bytes go to the system allocator (CPython's
/// `SMALL_REQUEST_THRESHOLD`).
pub const SMALL_REQUEST_THRESHOLD: usize = 512;

/// The largest alignment the pools honour. Requests with a larger alignment go to the system
/// allocator. Every block of 16 bytes or more is aligned to it.
pub const BLOCK_ALIGN: usize = 16;

/// Number of size classes: one 8-byte class and 32 classes in 16-byte steps up to 512.
pub const NUM_SIZE_CLASSES: usize = 1 + SMALL_REQUEST_THRESHOLD / BLOCK_ALIGN;

/// Size of a pool: the unit a thread takes from an arena, holding blocks of one size class.
/// A pool is aligned to its size, so the pool of a block is found by masking its address.
pub const POOL_SIZE: usize = 16 * 1024;

/// Size of an arena: the unit mapped from (and returned to) the OS, aligned to its size.
pub const ARENA_SIZE: usize = 1024 * 1024;

/// Pools in one arena.
pub const POOLS_PER_ARENA: usize = ARENA_SIZE / POOL_SIZE;

/// The size class serving a request of `size` bytes aligned to `align`, or `None` when the
/// request goes to the system allocator (too large, or an alignment above [`BLOCK_ALIGN`]).
///
/// A zero size is served like a one-byte request.
///
/// ```
/// use pyheap::alloc::{size_class, class_block_size};
/// assert_eq!(size_class(8, 8).map(class_block_size), Some(8));
/// assert_eq!(size_class(8, 16).map(class_block_size), Some(16));
/// assert_eq!(size_class(100, 4).map(class_block_size), Some(112));
/// assert_eq!(size_class(513, 8), None);
/// assert_eq!(size_class(64, 64), None);
/// ```
#[inline]
pub const fn size_class(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_REQUEST_THRESHOLD || align > BLOCK_ALIGN {
        return None;
    }
    if size <= 8 && align <= 8 {
        Some(0)
    } else {
        // size >= 1 here or align == 16; both map to class >= 1.
        let size = if size == 0 { 1 } else { size };
        Some(size.div_ceil(BLOCK_ALIGN))
    }
}

/// The block size of size class `class` (`class < NUM_SIZE_CLASSES`).
///
/// ```
/// use pyheap::alloc::{class_block_size, NUM_SIZE_CLASSES};
/// assert_eq!(class_block_size(0), 8);
/// assert_eq!(class_block_size(NUM_SIZE_CLASSES - 1), 512);
/// ```
#[inline]
pub const fn class_block_size(class: usize) -> usize {
    if class == 0 {
        8
    } else {
        class * BLOCK_ALIGN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_small_request_fits_its_class() {
        for align in [1, 2, 4, 8, 16] {
            for size in 0..=SMALL_REQUEST_THRESHOLD {
                let class = size_class(size, align).unwrap();
                let block = class_block_size(class);
                assert!(block >= size.max(1), "size {size} align {align}");
                assert_eq!(block % align, 0, "size {size} align {align}");
                if class > 0 {
                    // the next smaller class would not have fitted
                    assert!(class_block_size(class - 1) < size.max(1) || align == 16);
                }
            }
        }
        assert_eq!(size_class(SMALL_REQUEST_THRESHOLD + 1, 1), None);
        assert_eq!(size_class(16, 32), None);
        assert_eq!(size_class(NUM_SIZE_CLASSES * 16, 1), None);
    }
}
