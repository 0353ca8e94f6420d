//! The object header: the collector's links and flags, the counts, and the per-type vtable.
//!
//! # Layout
//!
//! A `Gc<T>` points at a [`GcBox`]: the counts followed by the value. A *tracked* object
//! (`T::MAY_CONTAIN_GC == true`) has, in front of its `GcBox`, the collector's [`Links`]:
//!
//! ```text
//!  tracked:    [ next | prev/refs | vtable+flags ][ strong:u32 | weak:u32 ][ value ]
//!               \______________ Links ____________/ \______ LocalCounts ______/
//!  untracked:                                        [ strong:u32 | weak:u32 ][ value ]
//! ```
//!
//! On 64-bit targets the header is **32 bytes** for a tracked object (24 of links, 8 of counts;
//! CPython pays 16 for its gc links plus 16 for refcount and type pointer) and **8 bytes** for
//! an untracked one (std's `Rc` pays 16). A value aligned above 8 adds padding between the
//! links and the box. `tests/gc_layout.rs` asserts these numbers.
//!
//! Slices and `str` (`Gc<[T]>`, `Gc<str>`) are handled by fat pointers to a `GcBox<C, [T]>`,
//! as std's `Rc<[T]>` does: the handle carries the length, the layout is computed from it. An
//! untracked slice (`Gc<str>`, `Gc<[u8]>`) has the same 8-byte header; a tracked one
//! (`Gc<[Gc<Node>]>`) also stores its length in the header for the collector (40 bytes,
//! like CPython's variable-size objects, which add `ob_size`), in *front* of its links, so
//! that the links are always the same distance before the box whatever the kind of value
//! (see [`links_to_box`]): a handle finds them from the box and the value's alignment alone,
//! which is what lets a `Gc<[T; N]>` become a `Gc<[T]>` and back, and a `Gc<T>` a
//! `Gc<dyn Trait>`, without knowing how the object was allocated.
//!
//! Trait objects (`Gc<dyn Trait>`, `gc::value`) point at the `GcBox` of a sized value with
//! the trait's vtable as metadata; whether that object has links is a bit of its counts
//! ([`Counts::has_links`]), set at creation for every object.
//!
//! # Invariants (kept by `gc::local`, `gc::shared`, `gc::collect` and `gc::finalize`)
//!
//! * `strong` is the number of live `Gc` handles, plus one *pin* per object while the
//!   collector tears down a garbage set containing it.
//! * `weak` is the number of live `Weak` handles plus one *token* that stands for the value:
//!   the token is released once the value has been dropped (or moved out by `try_unwrap`) and
//!   no strong handle remains. The allocation is freed exactly when `weak` reaches zero.
//! * The value is initialised iff the token is held and [`FLAG_DEAD`] is clear; once
//!   `FLAG_DEAD` is set nobody creates a reference to the value again (`Deref` panics,
//!   `try_deref` gives `None`, `Weak::upgrade` gives `None`).
//! * A tracked object is linked into exactly one generation list of its object space (its
//!   thread's space; for `pyheap::Gc`, its shard of the shared space) iff it is alive, not
//!   part of a garbage set being torn down, and not [`FLAG_UNIQUE`] (a `&mut` from
//!   `Gc::get_mut` may be live: no collection may read the value); otherwise its links are a
//!   self-loop, so unlinking it again is a harmless no-op. Its links are only read or written
//!   by the owner of that list (the thread, or the holder of the shard's lock). (The
//!   single-thread flavor's lists are its three generations, the permanent one of
//!   `gc.freeze()`, and the touched list, which is part of the oldest generation.)
//! * Single-thread flavor (`gc::local::old_touched`): [`FLAG_OLD`] is set iff the object is linked
//!   in the oldest generation's list or the touched list, or a running generation-1 scan
//!   took it from one of them; [`STRONG_WATCH`], in its strong count, iff it is linked in the
//!   oldest generation's own list (so a `Gc::drop` that leaves handles moves it to the touched
//!   list). Neither is set on a garbage set's members (the commit clears them), on frozen
//!   objects, nor on an object `get_mut` took out.
//! * `FLAG_CONDEMNED` exists only in the thread-safe flavor's count word (see
//!   `gc::shared::counts`), where all the flags live; the single-thread flavor keeps them in
//!   the low bits of the vtable word. [`Counts::flags`] and friends hide the difference.
//! * A tracked slice (`Gc<[T]>`) stores its length in the `usize` just before its links;
//!   its vtable's functions rebuild the fat pointer from it (see [`base_to_links`]).
//! * **Links are [`links_to_box`] bytes before the box**, for every kind of value: a
//!   function of the box's alignment only. The allocation starts at the links, or, for a
//!   tracked slice, [`base_to_links`] bytes before them; so an allocation is freed through
//!   its vtable's `free` (`gc::destroy::free_tracked`) by a handle whose type may be a view
//!   of it (`[T]` of an array object, a trait object). A *sized* handle type is always the
//!   type the object was allocated as (the one conversion that could break this,
//!   `Gc<[T]>` to `Gc<[T; N]>`, exists only for untracked `T`), so it may free statically.
//! * **`has_links` is constant**: set at creation, for every object, iff the allocation has
//!   links (the value's type may hold a `Gc`); never changed ([`Counts::has_links`]).
//! * Outside a collection `Links::prev` holds a pointer (low bits zero); during one it holds
//!   `refs << 2 | PREV_COLLECTING | PREV_REACHABLE` for the objects being collected (a count
//!   of references, as CPython reuses `_gc_prev` for `gc_refs`), and in a concurrent scan
//!   also the start of the object's edge run above bit 32 (see `gc::collect`); in the
//!   single-thread scan's tentatively unreachable list, a real pointer with both low bits
//!   set ([`PREV_TENTATIVE`]: links are at least 4-aligned, so the bits are free). No user
//!   code runs while any `prev` holds collection bits, and code outside the scan never reads
//!   the `prev` of an object it does not own (a concurrent scan may be writing it).
//!
//! # Provenance
//!
//! The header never turns an integer into a pointer (it passes Miri's
//! `-Zmiri-strict-provenance`): `prev` and the tagged vtable word are stored as pointers;
//! flag bits (and `PREV_TENTATIVE` in `prev`) are added and removed with
//! `wrapping_add`/`wrapping_sub` on the pointer itself
//! (the `map_addr` of Rust 1.84, kept to this crate's MSRV of 1.82), and the collection bits are
//! stored as a pointer without provenance that is only ever read back as an integer. The list code
//! restores real pointers into `prev` before any of them is dereferenced again.

use core::alloc::Layout;
use core::cell::{Cell, UnsafeCell};
use core::mem::ManuallyDrop;
// Not `crate::sync`'s: loom need not model this word (see `Links::vtable`).
use core::sync::atomic::{
    AtomicPtr,
    Ordering::{Acquire, Relaxed, Release},
};

/// The finalizer of this object has run (or is running); it never runs again.
pub(crate) const FLAG_FINALIZED: usize = 0b001;
/// The value has been (or is being) dropped; no reference to it may be created.
pub(crate) const FLAG_DEAD: usize = 0b010;
/// Weak handles no longer upgrade (set on a garbage set before its finalizers run).
pub(crate) const FLAG_WEAKS_CLEARED: usize = 0b100;
/// `Gc::get_mut` handed out a `&mut` to the value: the object left its generation (it is in
/// no list, so no collection reads the value while that borrow may live) until the borrow is
/// proven over and it is put back: by the next shared use of its handle (`Gc::try_deref` and
/// friends), or by a collection whose traced values report a handle to it (read through a
/// shared reference, so not mutably borrowed: the only handle, from which the `&mut` came).
pub(crate) const FLAG_UNIQUE: usize = 0b1000;
/// Single-thread flavor only: the object belongs to the oldest generation (it is linked in
/// that generation's list or in the list of old objects that lost a reference, or a
/// generation-1 scan took it from either). See `gc::local::old_touched`.
pub(crate) const FLAG_OLD: usize = 0b10_0000;
/// The flag bits kept in the low bits of the vtable word (which is 64-aligned).
/// `FLAG_CONDEMNED` (`0b1_0000`) is not among them: it lives in the other flavor's count word.
const FLAG_MASK: usize = 0b10_1111;
/// Thread-safe flavor only (the flag lives in its count word): the collector is deciding
/// whether the object is garbage; `Weak::upgrade` waits until the decision is made.
pub(crate) const FLAG_CONDEMNED: usize = 0b1_0000;

/// In `prev` during a collection: the object belongs to the generation being collected.
pub(crate) const PREV_COLLECTING: usize = 0b01;
/// In `prev` during a collection: the object was found reachable from a root.
pub(crate) const PREV_REACHABLE: usize = 0b10;
/// In `prev` during the single-thread scan's `move_unreachable` (`gc::collect`): the object
/// is in the tentatively unreachable list, and `prev` is a real pointer to its predecessor
/// there, moved forward by these two bits ([`Links::set_prev_tagged`]). Its reference count
/// is zero and not stored. (That scan never marks `PREV_REACHABLE` otherwise.)
pub(crate) const PREV_TENTATIVE: usize = PREV_COLLECTING | PREV_REACHABLE;
/// The internal-reference count is stored above the two collection bits.
pub(crate) const REFS_SHIFT: u32 = 2;
pub(crate) const REFS_ONE: usize = 1 << REFS_SHIFT;

/// How one flavor keeps an object's strong and weak counts. The collector core
/// (`gc::collect`, `gc::finalize`) is generic over it, so the thread-safe flavor reuses the
/// algorithm and the teardown with its own (atomic, versioned) counts.
///
/// # Safety
///
/// Implementations must behave as plain counters with the semantics documented on each
/// method; the collector's soundness rests on reading exact counts.
pub(crate) unsafe trait Counts: Sized + 'static {
    /// Whether these are the thread-safe flavor's counts (its objects' death notices are
    /// process-wide, `gc::watch`).
    const SHARED: bool;
    /// Counts of a freshly created live object: one strong handle, the value's weak token;
    /// `has_links` says whether the allocation has links (constant for its life).
    fn new_live(has_links: bool) -> Self;
    /// Counts of an object under `new_cyclic` construction: no strong handle, the value's
    /// token and the one `Weak` handed to the constructor.
    fn new_constructing(has_links: bool) -> Self;
    /// Whether the allocation has links (the value's type may hold a `Gc`): what
    /// `new_live`/`new_constructing` were told. Read by handles whose type does not say
    /// (trait objects, `gc::value`).
    fn has_links(&self) -> bool;
    /// The current strong count.
    fn strong(&self) -> usize;
    /// Set the strong count (used only while no handle exists: construction, `try_unwrap`).
    fn set_strong(&self, n: usize);
    /// Add one strong reference; aborts on overflow like `Rc`.
    fn inc_strong(&self);
    /// Remove one strong reference and return the new count.
    fn dec_strong(&self) -> usize;
    /// The current weak count, including the value's token.
    fn weak(&self) -> usize;
    /// Add one weak reference; aborts on overflow.
    fn inc_weak(&self);
    /// Remove one weak reference (a `Weak` handle's, or the value's token); true if it was
    /// the last one: nobody references the allocation any more, which may be freed.
    /// `has_links` must be what the counts were created with (`Counts::has_links`; the
    /// caller usually knows it as a constant of the type, which makes the test one
    /// comparison).
    fn release_weak(&self, has_links: bool) -> bool;

    /// The `FLAG_*` bits of the object whose links are at `links`. The single-thread flavor
    /// keeps them in the vtable word of the links; the thread-safe one in its count word.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object with counts of this type.
    #[inline]
    unsafe fn flags(links: *const Links) -> usize {
        // SAFETY: per the caller the links are alive.
        unsafe { (*links).flags() }
    }
    /// Set `flag` (one of `FLAG_*`). Same contract as [`Counts::flags`].
    ///
    /// # Safety
    /// As [`Counts::flags`].
    #[inline]
    unsafe fn set_flag(links: *const Links, flag: usize) {
        // SAFETY: per the caller the links are alive.
        unsafe { (*links).set_flag(flag) }
    }
    /// Clear `flag`. Same contract as [`Counts::flags`].
    ///
    /// # Safety
    /// As [`Counts::flags`].
    #[inline]
    unsafe fn clear_flag(links: *const Links, flag: usize) {
        // SAFETY: per the caller the links are alive.
        unsafe { (*links).clear_flag(flag) }
    }

    /// The collector's reading of the counts: the strong count and, for the thread-safe
    /// flavor, the version and flags sharing its word, to validate the reading later with
    /// [`Counts::try_condemn`].
    #[inline]
    fn snapshot(&self) -> u64 {
        self.strong() as u64
    }
    /// The strong count recorded in a [`Counts::snapshot`].
    #[inline]
    fn strong_of(snapshot: u64) -> usize {
        snapshot as usize
    }
    /// The collector's reading of the counts in a scan, under the lock every scan holds: a
    /// [`Counts::snapshot`] that [`Counts::try_condemn`] can validate. The thread-safe flavor
    /// first clears its version's top bit there (`gc::shared::counts`, I8).
    #[inline]
    fn scan_snapshot(&self) -> u64 {
        self.snapshot()
    }
    /// Condemn the object iff its counts still equal `snapshot` (no handle was created or
    /// dropped since). Only flavors whose mutators run during a scan need this.
    #[inline]
    fn try_condemn(&self, _snapshot: u64) -> bool {
        true
    }
    /// Take back a condemnation (the object turned out reachable).
    #[inline]
    fn uncondemn(&self) {}
    /// Whether the object is condemned.
    #[inline]
    fn is_condemned(&self) -> bool {
        false
    }
    /// The collector commits to destroying the object: one strong reference (the *pin*) is
    /// added, weak handles stop upgrading, the value is marked dead (the teardown takes the
    /// mark off again while finalizers run), and a condemnation ends; one step, so that no
    /// observer sees the object condemned but upgradable.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object with counts of this type, found
    /// unreachable (and condemned, for a concurrent flavor) by the collector.
    #[inline]
    unsafe fn commit_garbage(links: *const Links) {
        // SAFETY: per the caller.
        unsafe {
            counts_of::<Self>(links).inc_strong();
            Self::set_flag(links, FLAG_WEAKS_CLEARED | FLAG_DEAD);
        }
    }
}

/// The single-thread flavor's counts: two plain `u32`s (8 bytes). Overflow aborts the
/// process, as std's `Rc` does (past 2^31 - 1 strong or weak handles, which no realistic
/// program holds).
///
/// The top bit of `strong` is not part of the count: it is [`STRONG_WATCH`] (see the module's
/// invariants), so that `Gc::drop` tells "last handle" and "old object that lost a handle"
/// from the one word it writes anyway, with one comparison. The top bit of `weak` is not
/// either: it is [`WEAK_LINKS`], the constant `has_links` (kept off the strong word, whose
/// drop test must stay one comparison; weak counts change off the hot paths).
// `pub` (in a crate-private module: unreachable from outside) only because `unsize!`'s hidden
// step names `GcBox<LocalCounts, T>` in a public signature (`gc::unsize`).
#[repr(C)]
pub struct LocalCounts {
    strong: Cell<u32>,
    weak: Cell<u32>,
}

/// In `LocalCounts::strong`: the object is linked in its space's oldest generation's own
/// list (`gc::local::old_touched`).
pub(crate) const STRONG_WATCH: u32 = 1 << 31;
/// The count part of `LocalCounts::strong`.
pub(crate) const STRONG_COUNT: u32 = STRONG_WATCH - 1;
/// In `LocalCounts::weak`: the allocation has links (`Counts::has_links`), set at creation.
pub(crate) const WEAK_LINKS: u32 = 1 << 31;
/// The count part of `LocalCounts::weak`.
const WEAK_COUNT: u32 = WEAK_LINKS - 1;

impl LocalCounts {
    /// `Gc::drop`'s decrement: the new word, [`STRONG_WATCH`] included. The drop takes its
    /// slow path iff `word.wrapping_sub(1) >= STRONG_COUNT`: the count reached zero, or the
    /// object is watched ([`LocalCounts::is_slow_drop`]).
    #[inline(always)]
    pub(crate) fn release(&self) -> u32 {
        let s = self.strong.get() - 1;
        self.strong.set(s);
        s
    }

    /// Whether the word [`LocalCounts::release`] returned asks for `Gc::drop`'s slow path
    /// (no handle left, or a watched object): one comparison.
    #[inline(always)]
    pub(crate) fn is_slow_drop(word: u32) -> bool {
        word.wrapping_sub(1) >= STRONG_COUNT
    }

    /// Set or clear [`STRONG_WATCH`].
    #[inline]
    pub(crate) fn set_watch(&self, on: bool) {
        let s = self.strong.get() & STRONG_COUNT;
        self.strong.set(if on { s | STRONG_WATCH } else { s });
    }

    /// Whether [`STRONG_WATCH`] is set.
    #[inline]
    pub(crate) fn watched(&self) -> bool {
        self.strong.get() & STRONG_WATCH != 0
    }
}

#[cold]
fn count_overflow() -> ! {
    std::process::abort()
}

// SAFETY: plain `Cell` counters; `!Sync`, so only the owning thread touches them.
unsafe impl Counts for LocalCounts {
    const SHARED: bool = false;
    #[inline]
    fn new_live(has_links: bool) -> Self {
        Self {
            strong: Cell::new(1),
            weak: Cell::new(1 | if has_links { WEAK_LINKS } else { 0 }),
        }
    }
    #[inline]
    fn new_constructing(has_links: bool) -> Self {
        Self {
            strong: Cell::new(0),
            weak: Cell::new(2 | if has_links { WEAK_LINKS } else { 0 }),
        }
    }
    #[inline]
    fn has_links(&self) -> bool {
        self.weak.get() & WEAK_LINKS != 0
    }
    #[inline]
    fn strong(&self) -> usize {
        (self.strong.get() & STRONG_COUNT) as usize
    }
    #[inline]
    fn set_strong(&self, n: usize) {
        debug_assert!(n <= STRONG_COUNT as usize);
        self.strong.set(self.strong.get() & STRONG_WATCH | n as u32)
    }
    #[inline]
    fn inc_strong(&self) {
        let s = self.strong.get().wrapping_add(1);
        // The count part wrapped (into the watch bit, or past it): too many handles.
        if s & STRONG_COUNT == 0 {
            count_overflow();
        }
        self.strong.set(s);
    }
    #[inline]
    fn dec_strong(&self) -> usize {
        (self.release() & STRONG_COUNT) as usize
    }
    #[inline]
    fn weak(&self) -> usize {
        (self.weak.get() & WEAK_COUNT) as usize
    }
    #[inline]
    fn inc_weak(&self) {
        let w = self.weak.get().wrapping_add(1);
        // The count part wrapped (into `WEAK_LINKS`, or past it): too many handles.
        if w & WEAK_COUNT == 0 {
            count_overflow();
        }
        self.weak.set(w);
    }
    #[inline]
    fn release_weak(&self, has_links: bool) -> bool {
        debug_assert_eq!(has_links, self.has_links());
        // "The count part reaches zero" as one comparison of the word with a constant
        // (`has_links` is usually a constant of the handle's type), in the form that costs
        // least for each.
        if has_links {
            let w = self.weak.get();
            // Exactly one reference left, and the constant bit: the last one (the word need
            // not be written, the allocation goes).
            if w == WEAK_LINKS | 1 {
                return true;
            }
            // The count part is at least 2 here: no borrow from `WEAK_LINKS`.
            self.weak.set(w - 1);
            false
        } else {
            let w = self.weak.get() - 1;
            self.weak.set(w);
            w == 0
        }
    }
}

/// The counts and the value; what a `Gc<T>` points at. For `T = [U]` or `str` a pointer to it
/// is a fat pointer carrying the length, as for std's `RcBox`.
///
/// `pub` (in a crate-private module: nobody outside can name it, build one or reach its fields)
/// only because `unsize!`'s hidden step hands out `&GcBox` for the language to coerce
/// (`gc::unsize`).
#[repr(C)]
pub struct GcBox<C, T: ?Sized> {
    pub(crate) counts: C,
    pub(crate) value: UnsafeCell<ManuallyDrop<T>>,
}

/// The collector's part of a tracked object's header (also used, with a null vtable, as the
/// sentinel head of every generation list).
#[repr(C)]
pub struct Links {
    pub(crate) next: Cell<*const Links>,
    /// The previous node (outside a collection) or the collection bits (during one); see the
    /// module's invariants. Accessed through `prev`/`set_prev` and `refs`/`set_refs`.
    prev: Cell<*const Links>,
    /// The object's `&'static VTable` (`gc::vtable`, which begins with a [`VTableHead`]) with
    /// the `FLAG_*` bits in its low bits (the vtable is 64-aligned).
    ///
    /// An atomic (`core`'s; `Relaxed`, i.e. plain loads and stores in machine code, except
    /// as said here) only for `assume_init` (`gc::uninit`), which points an object of the
    /// thread-safe flavor at `T`'s vtable instead of `MaybeUninit<T>`'s while other threads
    /// holding handles may read the word:
    /// * for the head (`counts_of`, e.g. a `GcAny` clone): both vtables have the same head,
    ///   so such a reader gets the same counts either way, and the word is never torn;
    /// * for the functions: every scan and every walk of the lists (introspection) holds the
    ///   shared space lock throughout, and so does the swap, so the lock orders them; the
    ///   last drop is ordered after the swap by the counts' Release/Acquire (the swapping
    ///   thread holds a handle across it);
    /// * for the type, without a lock (`GcAny::downcast`, which then hands out a typed
    ///   handle and lets its caller read the value): the swap stores with `Release` after
    ///   the value was written, and that reader loads with `Acquire`
    ///   ([`Links::vtable_ptr_acquire`]), so a reader that sees `T`'s vtable sees the value.
    ///
    /// Otherwise the word is as a plain cell: written at creation (before the object is
    /// published) and by the single-thread flavor's owner thread (its flags).
    vtable: AtomicPtr<VTableHead>,
}

/// The part of a per-type vtable the header itself needs: where the counts are. Every `gc::vtable::VTable` begins with it (`repr(C)`), so the
/// header reads it without knowing the rest (the functions, which name the tracer: a layer
/// above this one).
#[repr(C)]
pub(crate) struct VTableHead {
    /// Bytes from the `Links` to the `GcBox` ([`links_to_box`] of the box's alignment).
    pub(crate) box_offset: usize,
}

/// The vtables' alignment: their flag-free low bits hold the flags.
pub(crate) const VTABLE_ALIGN: usize = 64;
const _: () = assert!(VTABLE_ALIGN > FLAG_MASK);
// `PREV_TENTATIVE` is stored in the low bits of a pointer to `Links`.
const _: () = assert!(core::mem::align_of::<Links>() > PREV_TENTATIVE);

/// The address of `p` (`<*const T>::addr`, stable only since Rust 1.84). A pointer-to-integer
/// cast never needs provenance, and nothing casts the result back to a pointer.
#[inline(always)]
pub(crate) fn addr<T>(p: *const T) -> usize {
    p as usize
}

impl Links {
    /// A sentinel list head (not yet self-linked: its address is not known here).
    pub(crate) const fn sentinel() -> Self {
        Self {
            next: Cell::new(core::ptr::null()),
            prev: Cell::new(core::ptr::null()),
            vtable: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The links of a new object: a self-loop (not in any list) with the vtable whose head
    /// is `vtable` (a `&'static gc::vtable::VTable`, `VTABLE_ALIGN`-aligned).
    pub(crate) fn write_new(at: *mut Links, vtable: *const VTableHead) {
        debug_assert_eq!(addr(vtable) % VTABLE_ALIGN, 0);
        // SAFETY: callers pass freshly allocated, suitably aligned memory for a `Links`.
        unsafe {
            at.write(Links {
                next: Cell::new(at),
                prev: Cell::new(at),
                vtable: AtomicPtr::new(vtable.cast_mut()),
            })
        };
    }

    /// The vtable word (see the field).
    #[inline(always)]
    fn vtable_word(&self) -> *const VTableHead {
        self.vtable.load(Relaxed)
    }

    #[inline(always)]
    fn set_vtable_word(&self, p: *const VTableHead) {
        self.vtable.store(p.cast_mut(), Relaxed)
    }

    /// As [`Links::vtable_ptr`], with an `Acquire` load: for a reader that holds no lock of
    /// the space and may go on to read the value as the vtable's type (see the field).
    #[inline]
    pub(crate) fn vtable_ptr_acquire(&self) -> *const VTableHead {
        let p = self.vtable.load(Acquire);
        // As in `vtable_ptr`.
        p.cast::<u8>().wrapping_sub(addr(p) & FLAG_MASK).cast()
    }

    /// Point the object at another vtable (whose head is `vtable`, a `&'static VTable`,
    /// `VTABLE_ALIGN`-aligned, with the same head as the current one), keeping the flags in
    /// the word: `assume_init` (`gc::uninit`), from `MaybeUninit<T>`'s vtable to `T`'s. The
    /// caller excludes every reader of the word's functions (see the field); the store is
    /// `Release`, for the lockless readers of the type.
    pub(crate) fn replace_vtable(&self, vtable: *const VTableHead) {
        debug_assert_eq!(addr(vtable) % VTABLE_ALIGN, 0);
        // Equal heads, so a racing `counts_of` is unaffected.
        // SAFETY: both are heads of `&'static VTable`s.
        debug_assert_eq!(unsafe { (*self.vtable_ptr()).box_offset }, unsafe {
            (*vtable).box_offset
        });
        let flags = self.flags();
        self.vtable.store(
            vtable.cast::<u8>().wrapping_add(flags).cast_mut().cast(),
            Release,
        );
    }

    /// The object's vtable pointer, flags removed (the head of a `&'static VTable`).
    #[inline]
    pub(crate) fn vtable_ptr(&self) -> *const VTableHead {
        let p = self.vtable_word();
        // For objects (never sentinels, which the collector never asks) the word is the
        // vtable's address (64-aligned) moved forward by its flag bits within the vtable;
        // moving back by them gives the vtable pointer, with its provenance.
        p.cast::<u8>()
            .wrapping_sub(addr(p) & FLAG_MASK)
            .cast::<VTableHead>()
    }

    #[inline]
    pub(crate) fn flags(&self) -> usize {
        addr(self.vtable_word()) & FLAG_MASK
    }

    #[inline]
    pub(crate) fn set_flag(&self, flag: usize) {
        debug_assert_eq!(flag & !FLAG_MASK, 0);
        let p = self.vtable_word();
        // ORs `flag` into the low bits: adds exactly the bits not yet set (they are zero in
        // the 64-aligned vtable address), keeping the pointer's provenance.
        let add = flag & !addr(p);
        self.set_vtable_word(p.cast::<u8>().wrapping_add(add).cast());
    }

    #[inline]
    pub(crate) fn clear_flag(&self, flag: usize) {
        debug_assert_eq!(flag & !FLAG_MASK, 0);
        let p = self.vtable_word();
        let sub = flag & addr(p);
        self.set_vtable_word(p.cast::<u8>().wrapping_sub(sub).cast());
    }

    /// The previous node of the list. Only outside a collection's passes, or for nodes the
    /// current pass does not collect.
    #[inline]
    pub(crate) fn prev(&self) -> *const Links {
        self.prev.get()
    }

    #[inline]
    pub(crate) fn set_prev(&self, p: *const Links) {
        self.prev.set(p)
    }

    /// Link to `p` as the predecessor in `move_unreachable`'s tentatively unreachable list:
    /// the pointer, with its provenance, moved forward by [`PREV_TENTATIVE`] (whose bits are
    /// zero in the address of any `Links`, which is at least 4-aligned).
    #[inline]
    pub(crate) fn set_prev_tagged(&self, p: *const Links) {
        self.prev
            .set(p.cast::<u8>().wrapping_add(PREV_TENTATIVE).cast::<Links>())
    }

    /// The predecessor stored by [`Links::set_prev_tagged`] (or by [`Links::set_prev`]).
    #[inline]
    pub(crate) fn prev_untagged(&self) -> *const Links {
        let p = self.prev.get();
        p.cast::<u8>()
            .wrapping_sub(addr(p) & PREV_TENTATIVE)
            .cast::<Links>()
    }

    /// `prev` as an integer: during a pass, the collection bits (`internal << REFS_SHIFT |
    /// PREV_*`) for the nodes being collected; for any other node an address, whose two low
    /// bits are zero.
    #[inline]
    pub(crate) fn refs(&self) -> usize {
        addr(self.prev.get())
    }

    /// Store collection bits in `prev` (a pointer without provenance, never dereferenced:
    /// the list code writes real pointers back before following `prev` again).
    #[inline]
    pub(crate) fn set_refs(&self, bits: usize) {
        self.prev
            .set(core::ptr::null::<u8>().wrapping_add(bits).cast::<Links>())
    }
}

/// The counts of the object whose links are at `links`.
///
/// Takes a raw pointer, not `&Links`: the counts lie outside the `Links`, so the pointer must
/// carry the provenance of the whole allocation (a `&Links` would only cover its 24 bytes).
///
/// # Safety
/// `links` points at the links of a live tracked allocation (with whole-allocation provenance)
/// whose counts are of type `C`; the returned reference must not outlive the allocation.
#[inline]
pub(crate) unsafe fn counts_of<'a, C: Counts>(links: *const Links) -> &'a C {
    // SAFETY: per the caller the header is alive; the `GcBox` (whose first field, `repr(C)`,
    // is the counts) sits `box_offset` bytes after the links in the same allocation.
    unsafe {
        let off = (*(*links).vtable_ptr()).box_offset;
        &*links.cast::<u8>().add(off).cast::<C>()
    }
}

/// Where the `GcBox<C, T>` sits after the links in a tracked allocation of a sized `T`, and
/// the layout of the whole allocation. Same numbers as [`alloc_layout`] (kept `const` so the
/// per-type vtables can hold them); `tests/gc_layout.rs` checks the sizes.
pub(crate) const fn tracked_layout<C, T>() -> (usize, Layout) {
    let links = Layout::new::<Links>();
    let boxl = Layout::new::<GcBox<C, T>>();
    let align = if boxl.align() > links.align() {
        boxl.align()
    } else {
        links.align()
    };
    let offset = links.size().div_ceil(boxl.align()) * boxl.align();
    let size = offset + boxl.size();
    let size = size.div_ceil(align) * align;
    match Layout::from_size_align(size, align) {
        Ok(l) => (offset, l),
        Err(_) => panic!("Gc value too large"),
    }
}

/// Whether `*const T` is a fat pointer: `T` is a slice, `str` or a trait object (not a
/// sized type).
#[inline(always)]
pub(crate) const fn is_fat<T: ?Sized>() -> bool {
    core::mem::size_of::<*const T>() != core::mem::size_of::<*const u8>()
}

/// Bytes from a tracked object's `Links` to its `GcBox`, given the box's alignment: the
/// links' size rounded up to it. The same for every kind of value (sized, slice, the sized
/// value behind a trait object), so that [`links_of`] needs nothing but the box.
#[inline(always)]
pub(crate) const fn links_to_box(box_align: usize) -> usize {
    core::mem::size_of::<Links>().div_ceil(box_align) * box_align
}

/// Bytes from the start of a tracked allocation to its `Links`: 0 for a sized value; for a
/// slice (`fat`), room for its length (a `usize` right before the links, which the
/// collector reads to rebuild the fat pointer, as CPython's `PyVarObject` keeps `ob_size` in
/// its header), rounded so that the box stays aligned:
///
/// ```text
///  tracked slice:  [ pad ][ len ][ next | prev | vtable+flags ][ pad ][ strong | weak ][ elements ]
///                   \______/      \____________ links_to_box ___________/
///                 base_to_links
/// ```
#[inline(always)]
pub(crate) const fn base_to_links(box_align: usize, fat: bool) -> usize {
    if !fat {
        return 0;
    }
    let align = if box_align > core::mem::align_of::<Links>() {
        box_align
    } else {
        core::mem::align_of::<Links>()
    };
    let to_box = links_to_box(box_align);
    (to_box + core::mem::size_of::<usize>()).div_ceil(align) * align - to_box
}

/// The offset of the box from the start of the allocation, and the layout of the whole
/// allocation holding a `GcBox` of layout `box_layout`: just the box for untracked objects;
/// links (preceded, for a slice (`fat`), by its length) followed by the box for tracked ones.
/// The one formula allocation and deallocation share.
#[inline]
pub(crate) fn alloc_layout(tracked: bool, fat: bool, box_layout: Layout) -> (usize, Layout) {
    if !tracked {
        return (0, box_layout);
    }
    let offset = base_to_links(box_layout.align(), fat) + links_to_box(box_layout.align());
    let align = box_layout.align().max(core::mem::align_of::<Links>());
    match offset
        .checked_add(box_layout.size())
        .and_then(|s| Layout::from_size_align(s, align).ok())
    {
        Some(l) => (offset, l.pad_to_align()),
        None => panic!("Gc value too large"),
    }
}

/// The links in front of a tracked `GcBox` (of any kind: sized, slice, trait object).
///
/// # Safety
/// `b` points at the `GcBox` of a live tracked allocation laid out by [`alloc_layout`] (or
/// [`tracked_layout`]), with the provenance of the whole allocation, and with metadata (for
/// `T: ?Sized`) describing the value there (a slice's length, the vtable of the value's
/// type).
#[inline]
pub(crate) unsafe fn links_of<C, T: ?Sized>(b: *const GcBox<C, T>) -> *const Links {
    // Per the caller the box is allocated and initialised up to its counts, so a shared
    // reference to it may exist (all its fields are `UnsafeCell`s, nothing is frozen; the
    // value may have been dropped, which a reference to its `UnsafeCell` does not mind) for
    // `align_of_val`: a constant for sized `T` and slices, the vtable's entry for a trait
    // object.
    // SAFETY: as just said; the links are `links_to_box` bytes before the box.
    unsafe {
        let align = core::mem::align_of_val(&*b);
        b.cast::<u8>().sub(links_to_box(align)).cast::<Links>()
    }
}

/// The pointer of a `Weak` that points nowhere (`Weak::new()`): the address `usize::MAX`, at
/// which no `GcBox` can be (it would end past the address space), without provenance (never
/// dereferenced). As std's `Weak::new`, so that such a `Weak` keeps the metadata of an
/// unsized type it was coerced to (`Weak<dyn Trait>`).
#[inline(always)]
pub(crate) const fn dangling_box<C, T>() -> core::ptr::NonNull<GcBox<C, T>> {
    // SAFETY: `usize::MAX` is not null.
    unsafe {
        core::ptr::NonNull::new_unchecked(
            core::ptr::null_mut::<u8>()
                .wrapping_sub(1)
                .cast::<GcBox<C, T>>(),
        )
    }
}

/// Whether `p` is [`dangling_box`]'s pointer (of any type, any metadata).
#[inline(always)]
pub(crate) fn is_dangling<C, T: ?Sized>(p: core::ptr::NonNull<GcBox<C, T>>) -> bool {
    addr(p.as_ptr().cast::<u8>()) == usize::MAX
}

/// The value of the box at `b`, as a raw place projection: the pointer keeps the provenance
/// of the whole allocation (a pointer made through `&b.value` would only cover the value), so
/// [`box_of_value`] can go back to the counts. `Gc::as_ptr`/`into_raw` hand it out.
///
/// # Safety
/// `b` points at an allocated `GcBox` (its value may have been dropped), with metadata
/// describing its value.
#[inline(always)]
pub(crate) unsafe fn value_of<C, T: ?Sized>(b: *const GcBox<C, T>) -> *const T {
    // SAFETY: per the caller the box is allocated; no reference is made.
    unsafe { core::ptr::addr_of!((*b).value) as *const T }
}

/// The box whose value is at `v`: the inverse of [`value_of`] (`Gc::from_raw`).
///
/// # Safety
/// `v` came from [`value_of`] of a `GcBox<C, T>` that is still allocated (`T` the same type,
/// or a type its value coerces to, with the metadata of that coercion).
#[inline(always)]
pub(crate) unsafe fn box_of_value<C, T: ?Sized>(v: *const T) -> *const GcBox<C, T> {
    // `GcBox` is `repr(C)`: the value sits after the counts, at the first multiple of its
    // alignment. The alignment is read through a reference to the value's `UnsafeCell`
    // (allowed for a dropped value: nothing is frozen, nothing read but the metadata), as
    // `align_of_val_raw` is not stable.
    // SAFETY: per the caller the value's memory is allocated and aligned; the box starts
    // `off` bytes before it in the same allocation, and `v` has its provenance.
    unsafe {
        let cell = v as *const UnsafeCell<ManuallyDrop<T>>;
        let off = core::mem::size_of::<C>().next_multiple_of(core::mem::align_of_val(&*cell));
        v.byte_sub(off) as *const GcBox<C, T>
    }
}
