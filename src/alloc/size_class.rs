//! Size classes: which block size serves a request.
//!
//! 33 classes: 8 bytes, then 16-byte steps up to 512 (16, 32, 48, ..., 512): CPython's
//! classes (its `ALIGNMENT` is 16 on 64-bit targets) with one 8-byte class below them.
//!
//! **Why 16-byte steps.** A block whose size is a multiple of 16 starts at a multiple of 16,
//! so a 32- or 64-byte block never straddles two cache lines, and a 16-byte one never does.
//! Until stop 23 the classes below 64 bytes stepped by 8 (24, 40 and 56 bytes as well), for
//! density; but a 24-byte block sits at every multiple of 8, and a quarter of them (those at
//! 48 and 56 in their line) cross into the next line. A short `String` (a 20-byte key) read by
//! a comparison then costs two cache misses instead of one: in the `btree` workload
//! (`BTreeMap<String, _>`, 20-byte keys compared by `memcmp` on every search), the 16-byte
//! steps took 3% off the time (median of 15 alternated runs, 199.7 → 190.2 ms with huge pages
//! off and on; see BENCHMARKS.md, stop 23). mimalloc's bins (`MI_ALIGN2W`, its default with a
//! 16-byte `max_align_t`), jemalloc's, glibc's chunks, rpmalloc's and snmalloc's all step by 16
//! in this range too. The cost is memory: a 17-24-byte request takes 32 bytes, a 33-40-byte one
//! 48, a 49-56-byte one 64 (peak RSS of the real-crate workloads +0.3 to +0.7 MiB, 1-3%).
//! The 8-byte class stays: its blocks never straddle a line, and `Box<u64>`, `Rc<()>` and
//! the like ask for 8.
//!
//! Every block of 16 bytes or more is 16-aligned, because pools are and their first block is,
//! so a request aligned to 16 takes the same class as one aligned to 8 (a request of at most
//! 8 bytes aligned to 16 takes the 16-byte class).

/// Requests larger than this many bytes go to the system allocator (CPython's
/// `SMALL_REQUEST_THRESHOLD`).
pub const SMALL_REQUEST_THRESHOLD: usize = 512;

/// The largest alignment the pools honour. Requests with a larger alignment go to the system
/// allocator. Every block of 16 bytes or more is aligned to it.
pub const BLOCK_ALIGN: usize = 16;

/// Number of size classes: the 8-byte class, then 32 in 16-byte steps up to 512.
pub const NUM_SIZE_CLASSES: usize = 1 + SMALL_REQUEST_THRESHOLD / 16;

/// Size of a pool: the unit a thread takes from an arena, holding blocks of one size class.
/// A pool is aligned to its size; the header of a block's pool is found from the block's
/// address by masking (the arena) and indexing (the pool's header in the arena's first pool).
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
/// assert_eq!(size_class(20, 8).map(class_block_size), Some(32));
/// assert_eq!(size_class(20, 16).map(class_block_size), Some(32));
/// assert_eq!(size_class(8, 16).map(class_block_size), Some(16));
/// assert_eq!(size_class(100, 4).map(class_block_size), Some(112));
/// assert_eq!(size_class(513, 8), None);
/// assert_eq!(size_class(64, 64), None);
/// ```
#[inline]
pub fn size_class(size: usize, align: usize) -> Option<usize> {
    let eighths = class_table_index(size, align)?;
    // SAFETY: `class_table_index` returns an index below `CLASS_TABLE_LEN`.
    Some(unsafe { *CLASS_BY_EIGHTHS.get_unchecked(eighths) } as usize)
}

/// The index into a class table (`CLASS_BY_EIGHTHS`, or the allocation fast path's copy in
/// `hooks.rs`) of a request, or `None` if the pools do not serve it. Always below
/// `CLASS_TABLE_LEN`.
#[inline(always)]
pub(crate) fn class_table_index(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_REQUEST_THRESHOLD || align > BLOCK_ALIGN {
        return None;
    }
    // Branch-free on the size: random sizes would mispredict a `<= 64` test.
    let mask = if align <= 8 { 7 } else { 15 };
    // `size <= 512` rounds up to at most 512, so this is at most 64.
    Some(((size + mask) & !mask) / 8)
}

/// The length of a class table: one entry per multiple of 8 bytes up to the threshold.
pub(crate) const CLASS_TABLE_LEN: usize = SMALL_REQUEST_THRESHOLD / 8 + 1;

/// The class of the request of `8 * n` bytes (`n < CLASS_TABLE_LEN`).
#[cfg_attr(loom, allow(dead_code))] // for the hooks (`hooks.rs`), not built under loom
pub(crate) fn class_by_eighths(n: usize) -> u8 {
    CLASS_BY_EIGHTHS[n]
}

/// `CLASS_BY_EIGHTHS[n]`: the class of a request of `8 * n` bytes. Entry 0 (a zero-size
/// request) is the 16-byte class, which serves any alignment up to 16.
static CLASS_BY_EIGHTHS: [u8; CLASS_TABLE_LEN] = {
    let mut table = [1u8; SMALL_REQUEST_THRESHOLD / 8 + 1];
    // 8 bytes: the 8-byte class; `8 * n` bytes above that: the class of `n.div_ceil(2)`
    // 16-byte steps.
    table[1] = 0;
    let mut n = 2;
    while n < table.len() {
        table[n] = n.div_ceil(2) as u8;
        n += 1;
    }
    table
};

/// How far below its class's block size a request may be and still be of that class when
/// its alignment is at most 8: the class's step (8 bytes for the 8- and 16-byte classes,
/// 16 above). A request of
/// `size` bytes aligned to at most 8 is of class `class` exactly when
/// `class_block_size(class) - size < class_step(class)` (unsigned), which is the test the free
/// fast path makes instead of computing the class (`Pool::fits`). A request aligned to 16 is
/// rounded up to a multiple of 16 first, so one of at most 8 bytes fails that test for the
/// 16-byte class while being of it (it goes the slow way), and passes it for the 8-byte class
/// (never a block it was allocated from: see `Pool::fits`).
#[inline]
pub(crate) const fn class_step(class: usize) -> usize {
    if class < 2 {
        8
    } else {
        16
    }
}

/// The block size of size class `class` (`class < NUM_SIZE_CLASSES`).
///
/// ```
/// use pyheap::alloc::{class_block_size, NUM_SIZE_CLASSES};
/// assert_eq!(class_block_size(0), 8);
/// assert_eq!(class_block_size(1), 16);
/// assert_eq!(class_block_size(2), 32);
/// assert_eq!(class_block_size(NUM_SIZE_CLASSES - 1), 512);
/// ```
#[inline]
pub const fn class_block_size(class: usize) -> usize {
    if class == 0 {
        8
    } else {
        class * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_small_request_gets_the_smallest_fitting_aligned_class() {
        for align in [1, 2, 4, 8, 16] {
            // A zero-size request gets the 16-byte class whatever its alignment.
            assert_eq!(size_class(0, align).map(class_block_size), Some(16));
            for size in 1..=SMALL_REQUEST_THRESHOLD {
                let class = size_class(size, align).unwrap();
                assert!(class < NUM_SIZE_CLASSES);
                let block = class_block_size(class);
                assert!(block >= size, "size {size} align {align}");
                assert_eq!(block % align, 0, "size {size} align {align}");
                // No smaller class would have fitted with the alignment.
                for smaller in 0..class {
                    let b = class_block_size(smaller);
                    assert!(b < size || b % align != 0, "size {size} align {align}");
                }
            }
        }
        assert_eq!(size_class(SMALL_REQUEST_THRESHOLD + 1, 1), None);
        assert_eq!(size_class(16, 32), None);
    }

    #[test]
    fn the_step_test_is_the_class_for_requests_aligned_to_8_or_less() {
        for class in 0..NUM_SIZE_CLASSES {
            let block = class_block_size(class);
            for size in 1..=SMALL_REQUEST_THRESHOLD {
                let fits = block.wrapping_sub(size) < class_step(class);
                for align in [1, 2, 4, 8] {
                    assert_eq!(
                        fits,
                        size_class(size, align) == Some(class),
                        "{size} {class}"
                    );
                }
                // Aligned to 16: a request that passes the test for a class whose block size
                // is a multiple of 16 is of that class; one that passes it for another class
                // still fits the block (`Pool::fits`).
                if fits {
                    assert!(size <= block);
                    if block % 16 == 0 {
                        assert_eq!(size_class(size, 16), Some(class), "{size} {class}");
                    }
                }
            }
        }
    }

    #[test]
    fn classes_increase_and_end_at_the_threshold() {
        for c in 1..NUM_SIZE_CLASSES {
            assert!(class_block_size(c) > class_block_size(c - 1));
            assert_eq!(size_class(class_block_size(c), 8), Some(c));
        }
        assert_eq!(
            class_block_size(NUM_SIZE_CLASSES - 1),
            SMALL_REQUEST_THRESHOLD
        );
    }
}
