//! The `Allocator` trait of the `allocator-api2` crate (its versions 0.2 and 0.4) for
//! `PoolAlloc` and `PoolAllocWith<F>`, on top of their `GlobalAlloc` implementations.

use super::pool_alloc::PoolAlloc;
use super::with_fallback::PoolAllocWith;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

fn dangling(layout: Layout) -> NonNull<[u8]> {
    // An address equal to the alignment is non-null and aligned.
    let p = layout.align() as *mut u8;
    // SAFETY: `align` is non-zero.
    NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(p) }, 0)
}

/// The `Allocator` API's operations on a `GlobalAlloc` (`PoolAlloc`, `PoolAllocWith<F>`),
/// once for every version of the `allocator-api2` crate: `None` stands for `AllocError`.
/// (`PoolAlloc`'s `GlobalAlloc` methods are inline: going through them costs nothing.)
pub(crate) trait BlockApi: GlobalAlloc {
    fn allocate_block(&self, layout: Layout, zeroed: bool) -> Option<NonNull<[u8]>> {
        if layout.size() == 0 {
            return Some(dangling(layout));
        }
        // SAFETY: non-zero size.
        let p = unsafe {
            if zeroed {
                self.alloc_zeroed(layout)
            } else {
                self.alloc(layout)
            }
        };
        NonNull::new(p).map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
    }

    /// # Safety
    /// `ptr` was allocated by `allocate_block` with `layout` and is not used again.
    unsafe fn deallocate_block(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: caller's contract.
            unsafe { self.dealloc(ptr.as_ptr(), layout) }
        }
    }

    /// `grow`/`shrink`: contents kept up to the smaller size, the new tail zeroed if asked.
    ///
    /// # Safety
    /// `ptr` was allocated by `self` with `old`; the caller stops using it on success.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        zero_tail: bool,
    ) -> Option<NonNull<[u8]>> {
        let q = if old.size() == 0 {
            return self.allocate_block(new, zero_tail);
        } else if new.size() == 0 {
            // SAFETY: caller's contract.
            unsafe { self.deallocate_block(ptr, old) };
            return Some(dangling(new));
        } else if old.align() == new.align() {
            // SAFETY: caller's contract; `new.size()` is valid for the alignment.
            let q = unsafe { self.realloc(ptr.as_ptr(), old, new.size()) };
            NonNull::slice_from_raw_parts(NonNull::new(q)?, new.size())
        } else {
            let q = self.allocate_block(new, false)?;
            // SAFETY: distinct live blocks, each at least `min` bytes.
            unsafe {
                ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    q.as_ptr().cast::<u8>(),
                    old.size().min(new.size()),
                );
                self.deallocate_block(ptr, old);
            }
            q
        };
        if zero_tail && new.size() > old.size() {
            // SAFETY: the new block has `new.size()` bytes.
            unsafe {
                ptr::write_bytes(
                    q.as_ptr().cast::<u8>().add(old.size()),
                    0,
                    new.size() - old.size(),
                )
            };
        }
        Some(q)
    }
}

/// `Allocator` for one version of the `allocator-api2` crate (the trait is the same in both).
macro_rules! impl_allocator_api {
    ($api:ident, [$($gen:tt)*], $ty:ty) => {
        // SAFETY: blocks come from the type's `GlobalAlloc` with the same guarantees;
        // zero-size requests get a dangling aligned pointer that `deallocate` ignores;
        // `grow`/`shrink` keep the contents up to the smaller size.
        unsafe impl<$($gen)*> $api::alloc::Allocator for $ty {
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, false)
                    .ok_or($api::alloc::AllocError)
            }

            fn allocate_zeroed(
                &self,
                layout: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, true)
                    .ok_or($api::alloc::AllocError)
            }

            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: forwarded contract.
                unsafe { self.deallocate_block(ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, true) }.ok_or($api::alloc::AllocError)
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                // SAFETY: forwarded contract.
                unsafe { self.resize(ptr, old, new, false) }.ok_or($api::alloc::AllocError)
            }
        }
    };
}

impl BlockApi for PoolAlloc {}
impl<F: GlobalAlloc> BlockApi for PoolAllocWith<F> {}

impl_allocator_api!(allocator_api2, [], PoolAlloc);
impl_allocator_api!(allocator_api2_04, [], PoolAlloc);
impl_allocator_api!(allocator_api2, [F: GlobalAlloc], PoolAllocWith<F>);
impl_allocator_api!(allocator_api2_04, [F: GlobalAlloc], PoolAllocWith<F>);
