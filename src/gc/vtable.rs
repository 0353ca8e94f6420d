//! Per-type vtables of tracked objects, for either flavor's counts `C`: how the collector
//! traces, drops, finalizes and frees an object it knows only by its [`Links`].

use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

use super::finalize::Finalize;
use super::header::{tracked_layout, GcBox, Links, VTableHead, VTABLE_ALIGN};
use super::trace::{Trace, Tracer};

/// What the collector needs to handle an object without knowing its type. Its head (the box
/// offset) is all the header layer reads (`header::VTableHead`).
#[repr(C, align(64))]
pub(crate) struct VTable {
    /// Where the counts are: bytes from the start of the allocation (the `Links`) to the
    /// `GcBox`.
    pub(crate) head: VTableHead,
    /// Free the whole allocation, from where it starts and with the layout it was made with
    /// (for a slice both depend on its length and the room kept for it in front of the links,
    /// hence a function). Caller: the weak count reached zero and the value is gone.
    pub(crate) free: unsafe fn(*const Links),
    /// Layout of the whole allocation (introspection's sizes). Caller: the header is alive.
    pub(crate) layout: unsafe fn(*const Links) -> Layout,
    /// Report the value's edges. Caller: the value is alive.
    pub(crate) trace: unsafe fn(*const Links, &mut Tracer),
    /// Drop the value in place. Caller: the value is alive, `FLAG_DEAD` is set, and this is
    /// the one call that drops it.
    pub(crate) drop_value: unsafe fn(*const Links),
    /// Run the value's `Finalize::finalize`, for values created by `Gc::new_finalized`.
    pub(crate) finalize: Option<unsafe fn(*const Links)>,
    /// The value's type, for introspection (`gc::get_objects`, `GcAny::downcast`, `census`).
    pub(crate) type_info: fn() -> TypeInfo,
}

/// A tracked value's type, as introspection sees it.
#[derive(Clone, Copy)]
pub(crate) struct TypeInfo {
    pub(crate) id: core::any::TypeId,
    pub(crate) name: &'static str,
}

/// [`TypeInfo`] of `T`.
pub(crate) fn type_info<T: ?Sized + 'static>() -> TypeInfo {
    TypeInfo {
        id: core::any::TypeId::of::<T>(),
        name: core::any::type_name::<T>(),
    }
}

const _: () = assert!(core::mem::align_of::<VTable>() == VTABLE_ALIGN);

impl VTable {
    /// The head to store in a new object's links (`Links::write_new`): a pointer to the
    /// whole vtable (its first field, `repr(C)`), so that `Links::vtable` may read all of it
    /// through the pointer (`&self.head` would only cover the head: Miri's Stacked Borrows
    /// rejects the later read of the functions through it).
    pub(crate) fn head_ptr(&'static self) -> *const VTableHead {
        core::ptr::from_ref(self).cast::<VTableHead>()
    }
}

impl Links {
    /// The object's vtable.
    #[inline]
    pub(crate) fn vtable(&self) -> &'static VTable {
        // SAFETY: for objects, the pointer is to the head of a `&'static VTable`, its first
        // field (`repr(C)`), derived from the whole `&'static VTable` (`head_ptr`) and moved
        // back to it by `vtable_ptr` with its provenance.
        unsafe { &*self.vtable_ptr().cast::<VTable>() }
    }

    /// The object's vtable, read with `Acquire`: for readers that hold no lock of the space
    /// and may read the value as the vtable's type (`GcAny`; see `Links::vtable`).
    #[inline]
    pub(crate) fn vtable_acquire(&self) -> &'static VTable {
        // SAFETY: as in `vtable`.
        unsafe { &*self.vtable_ptr_acquire().cast::<VTable>() }
    }
}

/// The vtables of a sized tracked `T` with counts `C`.
pub(crate) struct VTables<C, T>(PhantomData<(C, T)>);

impl<C: 'static, T: Trace + 'static> VTables<C, T> {
    /// Without a finalizer.
    pub(crate) const PLAIN: VTable = VTable {
        head: VTableHead {
            box_offset: tracked_layout::<C, T>().0,
        },
        free: free_sized::<C, T>,
        layout: layout_sized::<C, T>,
        trace: trace_erased::<C, T>,
        drop_value: drop_erased::<C, T>,
        finalize: None,
        type_info: type_info::<T>,
    };
}

impl<C: 'static, T: Trace + 'static> VTables<C, T> {
    /// For `Gc::pin`: as `PLAIN`, with a type introspection cannot name (`Pinned<T>`), so it
    /// never hands out a typed handle to a pinned value (`gc::std_api`).
    pub(crate) const PINNED: VTable = VTable {
        type_info: type_info::<Pinned<T>>,
        ..Self::PLAIN
    };
}

/// The type introspection sees for a value of type `T` pinned by `Gc::pin`: private, so no
/// caller of `gc::get_objects::<U>()` or `GcAny::downcast::<U>()` can ask for it.
pub(crate) struct Pinned<T: ?Sized>(PhantomData<T>);

impl<C: 'static, T: Trace + Finalize + 'static> VTables<C, T> {
    /// With `T`'s `Finalize::finalize`.
    pub(crate) const FINALIZED: VTable = VTable {
        finalize: Some(finalize_erased::<C, T>),
        ..Self::PLAIN
    };
}

/// The box of a tracked sized allocation, from its links.
///
/// # Safety
/// `l` is the links of a tracked `GcBox<C, T>` allocation laid out by `tracked_layout`, with
/// the provenance of the whole allocation.
#[inline]
pub(crate) unsafe fn box_of<C, T: Trace + 'static>(l: *const Links) -> *const GcBox<C, T> {
    // SAFETY: per the caller the box sits `box_offset` after the links.
    unsafe {
        l.cast::<u8>()
            .add(tracked_layout::<C, T>().0)
            .cast::<GcBox<C, T>>()
    }
}

/// # Safety
/// As `VTable::trace`: the value is alive and not mutably borrowed.
unsafe fn trace_erased<C, T: Trace + 'static>(l: *const Links, tracer: &mut Tracer) {
    // SAFETY: per the caller the value is initialised; no one holds `&mut` to it (an object
    // whose `get_mut` borrow may still live is in no generation list, so no pass reaches it:
    // see `FLAG_UNIQUE`).
    unsafe { (*(*box_of::<C, T>(l)).value.get()).trace(tracer) }
}

/// # Safety
/// As `VTable::drop_value`.
unsafe fn drop_erased<C, T: Trace + 'static>(l: *const Links) {
    // SAFETY: per the caller this is the one drop of an initialised value nobody references.
    unsafe { ManuallyDrop::drop(&mut *(*box_of::<C, T>(l)).value.get()) }
}

/// As `VTable::layout` for a sized `T`: a constant.
unsafe fn layout_sized<C, T: Trace + 'static>(_: *const Links) -> Layout {
    tracked_layout::<C, T>().1
}

/// # Safety
/// As `VTable::free` for a sized `T`: the allocation starts at the links, its layout is a
/// constant.
unsafe fn free_sized<C, T: Trace + 'static>(l: *const Links) {
    // SAFETY: per the caller nobody references the allocation any more; `allocate` made it
    // with this layout, starting at the links.
    unsafe { std::alloc::dealloc(l.cast::<u8>().cast_mut(), tracked_layout::<C, T>().1) }
}

/// # Safety
/// As `VTable::finalize`: the value is alive.
unsafe fn finalize_erased<C, T: Trace + Finalize + 'static>(l: *const Links) {
    // SAFETY: per the caller the value is initialised; only shared references are made.
    unsafe { (*(*box_of::<C, T>(l)).value.get()).finalize() }
}
