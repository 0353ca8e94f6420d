//! The allocation of slice objects (`Gc<[T]>`, and `Gc<str>` through `[u8]`) for either
//! flavor's counts `C`: the layout, the per-element-type vtables of tracked slices, and the
//! element-by-element construction with its clean-up on panic.
//!
//! A tracked slice's allocation is `[pad][len: usize][Links][pad][GcBox<C, [T]>]` (see
//! `header::base_to_links`): the collector only has the links, so the erased functions read
//! the length back from the header to rebuild the fat pointer (CPython's `PyVarObject` keeps
//! `ob_size` in its header the same way). The links are where they would be for any other
//! object with the same box alignment (`header::links_to_box`), so handles find them without
//! knowing the object is a slice. An untracked slice is just the box.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::{self, NonNull};

use super::header::{alloc_layout, base_to_links, links_to_box, Counts, GcBox, Links, VTableHead};
use super::trace::{Trace, Tracer};
use super::vtable::VTable;

/// Per-element-type vtables of tracked slices with counts `C`.
pub(crate) struct SliceVTables<C, T>(PhantomData<(C, T)>);

impl<C: 'static, T: Trace + 'static> SliceVTables<C, T> {
    /// Alignment of `GcBox<C, [T]>`: that of its fields (`repr(C)`).
    const BOX_ALIGN: usize = if core::mem::align_of::<T>() > core::mem::align_of::<C>() {
        core::mem::align_of::<T>()
    } else {
        core::mem::align_of::<C>()
    };
    /// Bytes from the links to the box.
    pub(crate) const OFFSET: usize = links_to_box(Self::BOX_ALIGN);
    /// Bytes from the start of the allocation to the links (the length is right before them).
    pub(crate) const LINKS_OFFSET: usize = base_to_links(Self::BOX_ALIGN, true);
    /// The vtable.
    pub(crate) const VTABLE: VTable = VTable {
        head: VTableHead {
            box_offset: Self::OFFSET,
        },
        free: free_slice::<C, T>,
        layout: layout_slice::<C, T>,
        trace: trace_slice::<C, T>,
        drop_value: drop_slice::<C, T>,
        finalize: None,
        type_info: super::vtable::type_info::<[T]>,
    };
}

/// The layout of `GcBox<C, [T]>` holding `len` elements; panics if it overflows `isize`.
pub(crate) fn slice_box_layout<C, T>(len: usize) -> Layout {
    Layout::array::<T>(len)
        .and_then(|v| Layout::new::<C>().extend(v))
        .map(|(l, _)| l.pad_to_align())
        .unwrap_or_else(|_| panic!("pyheap: Gc<[T]> of {len} elements is too large"))
}

/// The box of a tracked slice, as a fat pointer rebuilt from the length in the header.
///
/// # Safety
/// `l` is the links of a live tracked `GcBox<C, [T]>` allocation made by [`allocate_slice`],
/// with the provenance of the whole allocation.
#[inline]
unsafe fn slice_box<C: 'static, T: Trace + 'static>(l: *const Links) -> *mut GcBox<C, [T]> {
    let off = SliceVTables::<C, T>::OFFSET;
    // SAFETY: per the caller, `allocate_slice` wrote the length in the `usize` right before
    // the links and the box starts `off` bytes after them, in the same allocation.
    unsafe {
        let links = l.cast::<u8>().cast_mut();
        let len = links
            .sub(core::mem::size_of::<usize>())
            .cast::<usize>()
            .read();
        ptr::slice_from_raw_parts_mut(links.add(off), len) as *mut GcBox<C, [T]>
    }
}

/// # Safety
/// As `VTable::layout`: the header of a tracked slice is alive.
unsafe fn layout_slice<C: 'static, T: Trace + 'static>(l: *const Links) -> Layout {
    // SAFETY: per the caller; only the stored length is read.
    let len = unsafe { (*slice_box::<C, T>(l)).value.get() as *const [T] }.len();
    alloc_layout(true, true, slice_box_layout::<C, T>(len)).1
}

/// # Safety
/// As `VTable::free`: the header of a tracked slice is alive, nobody references it any more,
/// the elements are gone.
unsafe fn free_slice<C: 'static, T: Trace + 'static>(l: *const Links) {
    // SAFETY: per the caller; the allocation, which `allocate_slice` made with this layout
    // `LINKS_OFFSET` bytes before the links, is freed.
    unsafe {
        let layout = layout_slice::<C, T>(l);
        let base = l
            .cast::<u8>()
            .cast_mut()
            .sub(SliceVTables::<C, T>::LINKS_OFFSET);
        std::alloc::dealloc(base, layout);
    }
}

/// # Safety
/// As `VTable::trace`: the elements are alive and not mutably borrowed.
unsafe fn trace_slice<C: 'static, T: Trace + 'static>(l: *const Links, tracer: &mut Tracer) {
    // SAFETY: per the caller: initialised elements, no `&mut` to them exists.
    unsafe { (*(*slice_box::<C, T>(l)).value.get()).trace(tracer) }
}

/// # Safety
/// As `VTable::drop_value`.
unsafe fn drop_slice<C: 'static, T: Trace + 'static>(l: *const Links) {
    // SAFETY: per the caller this is the one drop of initialised elements nobody references.
    unsafe { ManuallyDrop::drop(&mut *(*slice_box::<C, T>(l)).value.get()) }
}

/// Allocate the header of a slice object of `len` elements with the counts of a new live
/// object and the elements uninitialised; tracked element types get links (in no list), the
/// slice vtable and the stored length. The caller initialises every element, then tracks the
/// object (or frees it with [`free_partial`]).
pub(crate) fn allocate_slice<C: Counts, T: Trace + 'static>(len: usize) -> NonNull<GcBox<C, [T]>> {
    let (offset, layout) = alloc_layout(T::MAY_CONTAIN_GC, true, slice_box_layout::<C, T>(len));
    // SAFETY: the layout has non-zero size (it contains the counts).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    if T::MAY_CONTAIN_GC {
        let to_links = SliceVTables::<C, T>::LINKS_OFFSET;
        debug_assert_eq!(offset, to_links + SliceVTables::<C, T>::OFFSET);
        // SAFETY: the links start `to_links` bytes into the allocation (at least one `usize`
        // in, and 8-aligned: `base_to_links`), the length slot is the `usize` before them;
        // both inside the fresh allocation.
        unsafe {
            let links = base.add(to_links);
            Links::write_new(
                links.cast::<Links>(),
                SliceVTables::<C, T>::VTABLE.head_ptr(),
            );
            links
                .sub(core::mem::size_of::<usize>())
                .cast::<usize>()
                .write(len);
        }
    }
    // SAFETY: `offset` is within the allocation and aligned for the box; the fat pointer
    // carries `len`, the number of elements the layout was computed for.
    let b = unsafe { ptr::slice_from_raw_parts_mut(base.add(offset), len) } as *mut GcBox<C, [T]>;
    // SAFETY: as above; the elements stay uninitialised until the caller writes them.
    unsafe { ptr::addr_of_mut!((*b).counts).write(C::new_live(T::MAY_CONTAIN_GC)) };
    // SAFETY: `base` is non-null, so is `b`.
    unsafe { NonNull::new_unchecked(b) }
}

/// Drop the first `done` elements of an object from [`allocate_slice`] that was never
/// tracked nor handed out, and free it.
///
/// # Safety
/// As said: `b` came from `allocate_slice::<C, T>`, its first `done` elements are initialised,
/// nobody else knows it.
pub(crate) unsafe fn free_partial<C: Counts, T: Trace + 'static>(
    b: NonNull<GcBox<C, [T]>>,
    done: usize,
) {
    let len = (b.as_ptr() as *const [()]).len();
    let (offset, layout) = alloc_layout(T::MAY_CONTAIN_GC, true, slice_box_layout::<C, T>(len));
    // SAFETY: per the caller; the allocation was made with this very layout, `offset` bytes
    // before the box.
    unsafe {
        let elems = (*b.as_ptr()).value.get() as *mut T;
        ptr::drop_in_place(ptr::slice_from_raw_parts_mut(elems, done));
        std::alloc::dealloc(b.as_ptr().cast::<u8>().sub(offset), layout);
    }
}

/// Clone the elements of `v` into the uninitialised elements of `b` (from `allocate_slice`
/// with `v.len()` elements). If a `clone` panics, the clones made so far are dropped and `b`
/// is freed before the panic goes on.
///
/// # Safety
/// `b` came from `allocate_slice::<C, T>(v.len())` and nobody else knows it.
pub(crate) unsafe fn clone_into<C: Counts, T: Trace + Clone + 'static>(
    b: NonNull<GcBox<C, [T]>>,
    v: &[T],
) {
    struct Partial<C: Counts, T: Trace + 'static> {
        b: NonNull<GcBox<C, [T]>>,
        done: usize,
    }
    impl<C: Counts, T: Trace + 'static> Drop for Partial<C, T> {
        fn drop(&mut self) {
            // SAFETY: the first `done` elements are initialised; the object is ours alone.
            unsafe { free_partial(self.b, self.done) }
        }
    }
    let mut partial = Partial { b, done: 0 };
    // SAFETY: `b` has room for `v.len()` elements; each is written once, in order.
    let elems = unsafe { (*b.as_ptr()).value.get() as *mut T };
    for x in v {
        // `clone` may run any code: the object is in no list yet.
        let c = x.clone();
        // SAFETY: `done < v.len()`: in bounds and not yet written.
        unsafe { elems.add(partial.done).write(c) };
        partial.done += 1;
    }
    core::mem::forget(partial);
}

/// Move `len` elements from `src` into the uninitialised elements of `b`.
///
/// # Safety
/// `b` came from `allocate_slice::<C, T>(len)`; `src` points at `len` initialised elements
/// whose ownership passes to `b` (the caller must not drop them), or `T: Copy`.
pub(crate) unsafe fn move_into<C, T>(b: NonNull<GcBox<C, [T]>>, src: *const T, len: usize) {
    // SAFETY: per the caller; the destination is disjoint from `src`.
    unsafe { ptr::copy_nonoverlapping(src, (*b.as_ptr()).value.get() as *mut T, len) };
}
