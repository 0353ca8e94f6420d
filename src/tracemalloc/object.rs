//! `get_object_traceback`: where the block holding a value was allocated, for a pointer into
//! it or a `Gc` handle of either flavor.

use super::capture::{untraced, MAX_RAW};
use super::frame::Traceback;
use super::symbols::Resolver;
use super::TABLE;
use crate::alloc::block_table::SHARDS;

/// Something whose allocation [`get_object_traceback`] can find: an address inside a block.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     use tracemalloc::Allocation;
///     let b = Box::new([0u8; 64]);
///     let inside: *const u8 = &b[10];
///     assert_eq!(inside.address(), b.address() + 10);
///     // Any address inside the block finds its traceback.
///     assert_eq!(tracemalloc::get_object_traceback(inside), tracemalloc::get_object_traceback(&b));
///     tracemalloc::stop();
/// }
/// ```
pub trait Allocation {
    /// An address inside the allocation (any byte of it).
    fn address(&self) -> usize;
}

impl<T: ?Sized> Allocation for *const T {
    fn address(&self) -> usize {
        self.cast::<u8>() as usize
    }
}

impl<T: ?Sized> Allocation for *mut T {
    fn address(&self) -> usize {
        self.cast::<u8>() as usize
    }
}

impl<T: ?Sized> Allocation for core::ptr::NonNull<T> {
    fn address(&self) -> usize {
        self.as_ptr().cast::<u8>() as usize
    }
}

impl<T: ?Sized> Allocation for Box<T> {
    fn address(&self) -> usize {
        (&**self as *const T).cast::<u8>() as usize
    }
}

// A `Gc`'s value sits after its counts in one allocation: the byte before the value is inside
// it even for a zero-sized value (whose address is one past the counts).
impl<T: ?Sized + crate::GcValue> Allocation for crate::Gc<T> {
    fn address(&self) -> usize {
        (crate::Gc::as_ptr(self).cast::<u8>() as usize) - 1
    }
}

impl<T: ?Sized + crate::GcValue> Allocation for crate::unsync::Gc<T> {
    fn address(&self) -> usize {
        (crate::unsync::Gc::as_ptr(self).cast::<u8>() as usize) - 1
    }
}

impl<A: Allocation + ?Sized> Allocation for &A {
    fn address(&self) -> usize {
        (**self).address()
    }
}

/// Where the block holding `obj` was allocated (Python's `tracemalloc.get_object_traceback`):
/// `obj` is a `Gc` (either flavor), a `Box`, or a pointer to any byte of a block. `None`
/// when the block has no trace (not tracing when it was allocated, or not a block of
/// `PoolAlloc`).
///
/// ```
/// use pyheap::tracemalloc;
/// tracemalloc::start(4);
/// let node = pyheap::unsync::Gc::new(vec![1u8, 2, 3]);
/// let tb = tracemalloc::get_object_traceback(&node);
/// // With PoolAlloc as the global allocator, `tb` is Some: the line of `Gc::new`.
/// # #[cfg(any())]
/// assert_eq!(tb.unwrap().line().unwrap().lineno(), 3);
/// tracemalloc::stop();
/// # drop(tb);
/// ```
///
/// A pointer to the start of a block is found at once; one inside a pool block is found
/// through the block's pool (its size class), one inside a larger block by a walk over the
/// traces (O(traces)).
pub fn get_object_traceback(obj: impl Allocation) -> Option<Traceback> {
    traceback_of_block(obj.address())
}

/// The traceback of the traced block containing `addr`.
pub(crate) fn traceback_of_block(addr: usize) -> Option<Traceback> {
    let mut frames = [0usize; MAX_RAW];
    let (t, n) = find(addr, &mut frames)?;
    Some(untraced(|| {
        Resolver::new().traceback(&frames[..n], usize::from(t.limit))
    }))
}

/// The trace of the block containing `addr`, its frames copied into `out`.
fn find(addr: usize, out: &mut [usize]) -> Option<(super::table::TraceRec, usize)> {
    if let Some(found) = TABLE.lookup(addr, out) {
        return Some(found);
    }
    if let Some(start) = crate::alloc::block_start(addr) {
        if let Some(found) = TABLE.lookup(start, out) {
            return Some(found);
        }
    }
    // A larger block: the one trace whose block contains `addr`.
    let mut key = None;
    for i in 0..SHARDS {
        TABLE.shards.with(i, |s| {
            s.traces.for_each(|k, t| {
                if k <= addr && addr < k + t.size.max(1) {
                    key = Some(k);
                }
            })
        });
        if key.is_some() {
            break;
        }
    }
    TABLE.lookup(key?, out)
}
