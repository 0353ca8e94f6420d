//! Size classes: which block size serves a request.
//!
//! 35 classes: 8, 16, 32, 40, 48, 56 and 64 bytes, then 16-byte steps up to 512 (80, 96, ...,
//! 512).
//!
//! **Why 8-byte steps below 64 bytes** when CPython steps by 16: CPython's objects all need
//! 16-byte alignment, but a Rust request states its own alignment, and most small Rust
//! allocations ask for 8. Below 64 bytes a 16-byte step wastes up to a fifth of a block (a
//! 40-byte request in a 48-byte block). Above 64 bytes a 16-byte step wastes at most 15/80 of a
//! block and keeps the class count (and so the pools a thread keeps half-used, one per class)
//! low.
//!
//! **Why no 24-byte class** (there was one until stop 23): a 24-byte block sits at every
//! multiple of 8, and a quarter of them (those at byte 48 or 56 of a line) straddle two cache
//! lines, where a 32-byte block never does. A short `String` (a 20-byte key) compared on every
//! search of a `BTreeMap` then costs two misses instead of one: with 17-24-byte requests in
//! 32-byte blocks, the `btree` workload's `memcmp` time fell to mimalloc's (perf samples over
//! five runs 4,488 → 3,917, mimalloc 3,796) and its time by 2-3% (BENCHMARKS.md, stop 23).
//! mimalloc's bins (16-byte steps from 16, its default), jemalloc's and glibc's have no
//! 24-byte size either. The 40- and 56-byte classes stay: a 40-byte block straddles as often
//! as a 48-byte one would, and rounding 49-56 bytes up to 64 (which never straddles) cost
//! 3.3 MiB on the `fragmentation` workload (24-64-byte objects) for no measured gain.
//! Dropping the 24-byte class cost 0.3 MiB there (112.1 → 112.4).
//!
//! A request aligned to 16 is rounded up to a multiple of 16 first, and every block whose
//! size is a multiple of 16 is 16-aligned, because pools are and their first block is.

/// Requests larger than this many bytes go to the system allocator (CPython's
/// `SMALL_REQUEST_THRESHOLD`).
pub const SMALL_REQUEST_THRESHOLD: usize = 512;

/// The largest alignment the pools honour. Requests with a larger alignment go to the system
/// allocator. Every block of 16 bytes or more is aligned to it.
pub const BLOCK_ALIGN: usize = 16;

/// The block sizes of the classes up to 64 bytes (8-byte steps but for the missing 24: see
/// the module doc); above, 16-byte steps.
const SMALL_BLOCKS: [usize; 7] = [8, 16, 32, 40, 48, 56, 64];

/// Number of size classes.
pub const NUM_SIZE_CLASSES: usize = SMALL_BLOCKS.len() + (SMALL_REQUEST_THRESHOLD - 64) / 16;

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
/// assert_eq!(size_class(40, 8).map(class_block_size), Some(40));
/// assert_eq!(size_class(40, 16).map(class_block_size), Some(48));
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

/// The size classes of two requests of one alignment (`realloc`'s old and new sizes), each
/// `None` when the pools do not serve it: `(size_class(a, align), size_class(b, align))`, with
/// the alignment's test and rounding mask worked out once.
#[cfg_attr(loom, allow(dead_code))] // `PoolAlloc`'s, not built under loom
#[inline(always)]
pub(crate) fn size_classes_of_two(
    a: usize,
    b: usize,
    align: usize,
) -> (Option<usize>, Option<usize>) {
    if align > BLOCK_ALIGN {
        return (None, None);
    }
    let mask = if align <= 8 { 7 } else { 15 };
    let class = |size: usize| {
        (size <= SMALL_REQUEST_THRESHOLD).then(|| {
            // `size <= 512` rounds up to at most 512, an index below `CLASS_TABLE_LEN`. (Not
            // `rounded_eighths`: with it the compiler works the alignment test out three times
            // over in `realloc`, seven instructions more per call on `btree`.)
            let eighths = ((size + mask) & !mask) / 8;
            // SAFETY: `eighths < CLASS_TABLE_LEN`, as above.
            (unsafe { *CLASS_BY_EIGHTHS.get_unchecked(eighths) }) as usize
        })
    };
    (class(a), class(b))
}

/// The index into a class table (`CLASS_BY_EIGHTHS`, or the allocation fast path's copy in
/// `hooks.rs`) of a request, or `None` if the pools do not serve it. Always below
/// `CLASS_TABLE_LEN`.
#[inline(always)]
pub(crate) fn class_table_index(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_REQUEST_THRESHOLD || align > BLOCK_ALIGN {
        return None;
    }
    Some(rounded_eighths(size, usize::from(align > 8)))
}

/// `size` (at most [`SMALL_REQUEST_THRESHOLD`]) rounded up to a multiple of 8, or of 16 when
/// `wide` is 1 (an alignment of 16), in eighths: `(size + 7) / 8`, or `(size + 15) / 8`
/// rounded down to even. At most 64 (`size <= 512` rounds up to at most 512), so an index
/// below `CLASS_TABLE_LEN`. Branch-free on the size (random sizes would mispredict a
/// `<= 64` test) and on the alignment: eight instructions as compiled for x86-64, one fewer
/// than masking with 7 or 15 (`serde_json`'s 6.3 million allocations: 5.7 million fewer).
#[inline(always)]
fn rounded_eighths(size: usize, wide: usize) -> usize {
    ((size + 7 + 8 * wide) >> 3) & !wide
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
    let mut table = [1u8; CLASS_TABLE_LEN];
    // `8 * n` bytes: the smallest class whose blocks hold them.
    let mut n = 1;
    let mut class = 0;
    while n < table.len() {
        while class_block_size(class) < n * 8 {
            class += 1;
        }
        table[n] = class as u8;
        n += 1;
    }
    table
};

/// How far below its class's block size a request may be and still be of that class when
/// its alignment is at most 8: the class's step, the difference from the block size of the
/// class below (8 bytes for the 8-byte class). A request of `size` bytes aligned to at most 8
/// is of class `class` exactly when `class_block_size(class) - size < class_step(class)`
/// (unsigned), which is the test the free fast path makes instead of computing the class
/// (`Pool::fits`). A request aligned to 16 is rounded up to a multiple of 16 first, so a few of
/// them fail that test while being of the class (they go the slow way), and a few pass it for
/// a pool of the class below theirs (never a block they were allocated from: see
/// `Pool::fits`).
#[inline]
pub(crate) const fn class_step(class: usize) -> usize {
    if class == 0 {
        8
    } else {
        class_block_size(class) - class_block_size(class - 1)
    }
}

/// The block size of size class `class` (`class < NUM_SIZE_CLASSES`).
///
/// ```
/// use pyheap::alloc::{class_block_size, NUM_SIZE_CLASSES};
/// assert_eq!(class_block_size(0), 8);
/// assert_eq!(class_block_size(1), 16);
/// assert_eq!(class_block_size(2), 32);
/// assert_eq!(class_block_size(6), 64);
/// assert_eq!(class_block_size(7), 80);
/// assert_eq!(class_block_size(NUM_SIZE_CLASSES - 1), 512);
/// ```
///
/// Unsafe code relies on this: every block size is a multiple of 8 (checked below at compile
/// time), and a request's class has a block at least the request's size. So a pool block
/// holds its request rounded up to 8, which `realloc`'s inline copy (`copy_short` in
/// `pool_alloc.rs`) reads and writes whole.
#[inline]
pub const fn class_block_size(class: usize) -> usize {
    if class < SMALL_BLOCKS.len() {
        SMALL_BLOCKS[class]
    } else {
        64 + (class + 1 - SMALL_BLOCKS.len()) * 16
    }
}

const _: () = {
    let mut class = 0;
    while class < NUM_SIZE_CLASSES {
        assert!(class_block_size(class) % 8 == 0);
        class += 1;
    }
};

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
    fn the_classes_of_two_sizes_are_each_ones_class() {
        const EDGES: [usize; 14] = [
            0,
            1,
            7,
            8,
            9,
            24,
            64,
            65,
            496,
            511,
            512,
            513,
            100_000,
            usize::MAX,
        ];
        for align in [1, 2, 4, 8, 16, 32, 4096] {
            for a in (0..=SMALL_REQUEST_THRESHOLD + 16).chain([usize::MAX / 2, usize::MAX]) {
                for b in EDGES {
                    assert_eq!(
                        size_classes_of_two(a, b, align),
                        (size_class(a, align), size_class(b, align)),
                        "{a} {b} {align}"
                    );
                }
            }
        }
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
