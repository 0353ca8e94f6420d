//! Python's leak hunt for the calling thread's single-thread space
//! (`pyheap::unsync::gc::{get_objects, census, get_referrers, get_referents, GcAny}`): the
//! single-thread flavor's face of `gc::introspect`. Nothing else runs on the space meanwhile
//! (it is this thread's), so the walks need no lock; a value whose `RefCell` is mutably
//! borrowed at that moment is not looked into (as for a collection).

use super::handle::Gc;
use super::space::Local;
use crate::gc::introspect;
use crate::Trace;

crate::gc::any::gc_any!(
    flavor: Local,
    gc_mod: "pyheap::unsync::gc",
    gc_path: "pyheap::unsync::Gc",
    example: "```
use pyheap::unsync::gc::{self, GcAny};
use pyheap::unsync::Gc;
use std::cell::RefCell;

#[derive(pyheap::Trace)]
struct Cache(RefCell<Vec<Gc<Item>>>);
#[derive(pyheap::Trace)]
struct Item(RefCell<Option<Gc<Item>>>);

let item = Gc::new(Item(RefCell::new(None)));
let cache = Gc::new(Cache(RefCell::new(vec![item.clone()])));
let who: Vec<GcAny> = gc::get_referrers(&item);
assert_eq!(who.len(), 1);
assert!(who[0].type_name().ends_with(\"Cache\"));
let back: Gc<Cache> = who.into_iter().next().unwrap().downcast().unwrap();
assert!(Gc::ptr_eq(&back, &cache));
```"
);

/// The live tracked objects of type `T` in this thread's space (Python's `gc.get_objects()`
/// filtered by type), from every generation, frozen objects included (CPython leaves out the permanent
/// generation; a leak hunt wants to see those objects too). Only
/// objects that are alive and not being torn down (nor waiting for a safe point's teardown)
/// are returned. Objects of types that hold no `Gc` are never tracked, hence never found.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct Session(RefCell<Vec<Gc<Session>>>);
/// let a = Gc::new(Session(RefCell::new(vec![])));
/// assert_eq!(gc::get_objects::<Session>().len(), 1);
/// drop(a);
/// assert!(gc::get_objects::<Session>().is_empty());
/// ```
pub fn get_objects<T: Trace + 'static>() -> Vec<Gc<T>> {
    objects::<T>(None)
}

/// [`get_objects`] for one generation (`gc.get_objects(generation=g)`).
///
/// # Panics
/// If `generation > 2`.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// let g = Gc::new(std::cell::RefCell::new(Vec::<Gc<u8>>::new()));
/// assert_eq!(gc::get_objects_in::<std::cell::RefCell<Vec<Gc<u8>>>>(0).len(), 1);
/// # drop(g);
/// ```
pub fn get_objects_in<T: Trace + 'static>(generation: usize) -> Vec<Gc<T>> {
    assert!(
        generation < 3,
        "pyheap::unsync::gc::get_objects_in: invalid generation {generation} (must be 0, 1 or 2)"
    );
    objects::<T>(Some(generation))
}

fn objects<T: Trace + 'static>(gen: Option<usize>) -> Vec<Gc<T>> {
    introspect::objects_of_type::<Local>(core::any::TypeId::of::<T>(), gen)
        .into_iter()
        // SAFETY: each was acquired for us, and its vtable's type is `T`.
        .map(|p| unsafe { Gc::from_tracked_links(p) })
        .collect()
}

/// Count and bytes per type of this thread's tracked objects, largest count first
/// (objgraph's `show_most_common_types`); prints as a table. The same objects as
/// [`get_objects`].
///
/// ```
/// println!("{}", pyheap::unsync::gc::census());
/// ```
pub fn census() -> introspect::Census {
    introspect::census::<Local>()
}

/// The tracked objects of this thread's space whose values hold a handle to `x`'s object
/// (Python's `gc.get_referrers(x)`), as type-erased handles. Only tracked objects are
/// referrers: a handle in a local variable, a `Vec` on the stack or a thread-local is not an
/// object (as Python does not list frames); handles of the thread-safe flavor are not edges
/// of this space.
pub fn get_referrers(x: &impl GcObject) -> Vec<GcAny> {
    let Some(p) = sealed::Sealed::tracked_links(x) else {
        return Vec::new();
    };
    // SAFETY: `x` keeps its object alive; the results were acquired for us.
    unsafe {
        introspect::referrers::<Local>(p)
            .into_iter()
            .map(|q| GcAny::from_acquired(q))
            .collect()
    }
}

/// The tracked objects `x`'s value holds handles to (Python's `gc.get_referents(x)`), each
/// once, as type-erased handles.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct N(RefCell<Vec<Gc<N>>>);
/// let leaf = Gc::new(N(RefCell::new(vec![])));
/// let root = Gc::new(N(RefCell::new(vec![leaf.clone()])));
/// let r = gc::get_referents(&root);
/// assert!(gc::GcAny::ptr_eq_gc(&r[0], &leaf));
/// ```
pub fn get_referents(x: &impl GcObject) -> Vec<GcAny> {
    let Some(p) = sealed::Sealed::tracked_links(x) else {
        return Vec::new();
    };
    // SAFETY: `x` keeps its object alive; the results were acquired for us.
    unsafe {
        introspect::referents::<Local>(p)
            .into_iter()
            .map(|q| GcAny::from_acquired(q))
            .collect()
    }
}

/// Set this thread's space's debugging flags (Python's `gc.set_debug`): a combination of
/// [`DEBUG_STATS`](crate::unsync::gc::DEBUG_STATS), [`DEBUG_COLLECTABLE`](crate::unsync::gc::DEBUG_COLLECTABLE),
/// [`DEBUG_UNCOLLECTABLE`](crate::unsync::gc::DEBUG_UNCOLLECTABLE),
/// [`DEBUG_SAVEALL`](crate::unsync::gc::DEBUG_SAVEALL), [`DEBUG_LEAK`](crate::unsync::gc::DEBUG_LEAK).
/// Lines are printed on stderr.
///
/// # Panics
/// If `flags` has a bit no flag names.
///
/// ```
/// use pyheap::unsync::gc;
/// gc::set_debug(gc::DEBUG_SAVEALL);
/// assert_eq!(gc::get_debug(), gc::DEBUG_SAVEALL);
/// gc::set_debug(0);
/// ```
pub fn set_debug(flags: u32) {
    assert_eq!(
        flags & !crate::gc::debug::KNOWN,
        0,
        "pyheap::unsync::gc::set_debug: unknown flags {flags:#x}"
    );
    super::space::with_space(|s| s.state.debug.set(flags));
}

/// This thread's space's debugging flags (`gc.get_debug()`).
///
/// ```
/// assert_eq!(pyheap::unsync::gc::get_debug(), 0);
/// ```
pub fn get_debug() -> u32 {
    super::space::with_space(|s| s.state.debug.get())
}

/// The objects collections kept under [`DEBUG_SAVEALL`](crate::unsync::gc::DEBUG_SAVEALL) instead of
/// freeing them (Python's `gc.garbage`), as handles: alive and usable (their weak handles
/// stay cleared, their finalizers ran). They stay until [`clear_garbage`].
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use std::cell::RefCell;
/// #[derive(pyheap::Trace)]
/// struct N(RefCell<Option<Gc<N>>>, #[trace(skip)] u32);
/// let n = Gc::new(N(RefCell::new(None), 7));
/// *n.0.borrow_mut() = Some(n.clone());
/// drop(n);
/// gc::set_debug(gc::DEBUG_SAVEALL);
/// assert_eq!(gc::collect(), 1); // found, and saved
/// gc::set_debug(0);
/// let kept = gc::garbage();
/// let n: Gc<N> = kept[0].clone().downcast().ok().unwrap();
/// assert_eq!(n.1, 7);
/// drop((kept, n));
/// assert_eq!(gc::clear_garbage(), 1);
/// assert_eq!(gc::collect(), 1); // unreachable again: freed now
/// ```
pub fn garbage() -> Vec<GcAny> {
    use crate::gc::flavor::Flavor;
    let held: Vec<*const crate::gc::header::Links> = super::space::with_space(|s| {
        let st = &s.state;
        let g = st.garbage.take();
        for &p in g.iter() {
            // SAFETY: the list holds a strong reference on each; no lock in this flavor.
            unsafe { Local::clone_erased_locked(p) };
        }
        let copy = g.to_vec();
        st.garbage.set(g);
        copy
    });
    // SAFETY: one strong reference each was taken for us above.
    held.into_iter()
        .map(|p| unsafe { GcAny::from_acquired(p) })
        .collect()
}

/// Empty [`garbage`] (Python's `gc.garbage.clear()`): the list's references go; objects no
/// one else holds are garbage again, freed by the next collection (unless `DEBUG_SAVEALL`
/// is still set). Returns how many were in the list.
///
/// ```
/// pyheap::unsync::gc::clear_garbage();
/// assert!(pyheap::unsync::gc::garbage().is_empty());
/// ```
pub fn clear_garbage() -> usize {
    use crate::gc::flavor::Flavor;
    let g = super::space::with_space(|s| s.state.garbage.take());
    let n = g.len();
    for p in core::mem::ManuallyDrop::into_inner(g) {
        // SAFETY: the list owned one strong reference on each, given up here.
        unsafe { Local::release_erased(p) };
    }
    n
}

/// Whether `x`'s finalizer ([`Finalize`](crate::Finalize)) has run (`gc.is_finalized`): a
/// finalizer runs once, when the object dies or its garbage cycle is torn down, and not
/// again after a resurrection. False for objects of types that hold no `Gc`.
///
/// ```
/// use pyheap::unsync::{gc, Gc};
/// use pyheap::Finalize;
/// #[derive(pyheap::Trace)]
/// struct R(std::cell::RefCell<Vec<Gc<R>>>);
/// impl Finalize for R {
///     fn finalize(&self) {}
/// }
/// let r = Gc::new_finalized(R(Default::default()));
/// assert!(!gc::is_finalized(&r));
/// ```
pub fn is_finalized(x: &impl GcObject) -> bool {
    match sealed::Sealed::tracked_links(x) {
        // SAFETY: `x` keeps the object alive.
        Some(p) => unsafe { (*p).flags() & crate::gc::header::FLAG_FINALIZED != 0 },
        None => false,
    }
}
