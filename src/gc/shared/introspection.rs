//! Python's leak hunt for the shared space (`pyheap::gc::{get_objects, census,
//! get_referrers, get_referents, GcAny}`): the thread-safe flavor's face of `gc::introspect`.
//!
//! Each call walks the shared space holding its locks as a scan does (the space lock and
//! every shard lock, interior locks tried and held while a value is traced), so it is safe
//! while other threads mutate and collect: it waits for a running scan, and threads
//! creating, dropping the last handle of, or `get_mut`-ing a tracked object wait for it.
//! A value whose interior lock another thread holds at that moment is not looked into (as
//! for a collection): its handles are not reported as edges.

use super::handle::Gc;
use super::space::Shared;
use crate::gc::introspect;
use crate::Trace;

crate::gc::any::gc_any!(
    flavor: Shared,
    gc_mod: "pyheap::gc",
    gc_path: "pyheap::Gc",
    example: "```
use pyheap::gc::{self, GcAny};
use pyheap::{Gc, Trace};
use std::sync::Mutex;

#[derive(Trace)]
struct Cache(Mutex<Vec<Gc<Item>>>);
#[derive(Trace)]
struct Item(Mutex<Option<Gc<Item>>>);

let item = Gc::new(Item(Mutex::new(None)));
let cache = Gc::new(Cache(Mutex::new(vec![item.clone()])));
let who: Vec<GcAny> = gc::get_referrers(&item);
assert_eq!(who.len(), 1);
assert!(who[0].type_name().ends_with(\"Cache\"));
let back: Gc<Cache> = who.into_iter().next().unwrap().downcast().unwrap();
assert!(Gc::ptr_eq(&back, &cache));
```"
);

// SAFETY: a `GcAny` of the shared space owns a strong reference (atomic counts) to a value
// that is `Send + Sync` (every shared constructor requires it), as `Gc<T: Send + Sync>` does.
unsafe impl Send for GcAny {}
// SAFETY: as above; `GcAny` gives no access to the value but through `downcast`.
unsafe impl Sync for GcAny {}

/// The live tracked objects of type `T` in the shared space (Python's `gc.get_objects()`
/// filtered by type), from every generation, frozen objects included (CPython leaves out the permanent
/// generation; a leak hunt wants to see those objects too). Only objects
/// that are alive and not being torn down are returned: introspection never resurrects
/// garbage. Objects of types that hold no `Gc` are never tracked, hence never found.
///
/// ```
/// use pyheap::{gc, Gc, Trace};
/// use std::sync::Mutex;
/// #[derive(Trace)]
/// struct Session(Mutex<Vec<Gc<Session>>>);
/// let a = Gc::new(Session(Mutex::new(vec![])));
/// let found = gc::get_objects::<Session>();
/// assert!(found.iter().any(|s| Gc::ptr_eq(s, &a)));
/// drop(found);
/// drop(a);
/// assert!(gc::get_objects::<Session>().is_empty());
/// ```
pub fn get_objects<T: Trace + Send + Sync + 'static>() -> Vec<Gc<T>> {
    objects::<T>(None)
}

/// [`get_objects`] for one generation (`gc.get_objects(generation=g)`).
///
/// # Panics
/// If `generation > 2`.
///
/// ```
/// use pyheap::{gc, Gc};
/// let g = Gc::new(std::sync::Mutex::new(Vec::<Gc<u8>>::new()));
/// assert_eq!(gc::get_objects_in::<std::sync::Mutex<Vec<Gc<u8>>>>(0).len(), 1);
/// # drop(g);
/// ```
pub fn get_objects_in<T: Trace + Send + Sync + 'static>(generation: usize) -> Vec<Gc<T>> {
    assert!(
        generation < 3,
        "pyheap::gc::get_objects_in: invalid generation {generation} (must be 0, 1 or 2)"
    );
    objects::<T>(Some(generation))
}

fn objects<T: Trace + 'static>(gen: Option<usize>) -> Vec<Gc<T>> {
    introspect::objects_of_type::<Shared>(core::any::TypeId::of::<T>(), gen)
        .into_iter()
        // SAFETY: each was acquired for us, and its vtable's type is `T`.
        .map(|p| unsafe { Gc::from_tracked_links(p) })
        .collect()
}

/// Count and bytes per type of the shared space's tracked objects, largest count first
/// (objgraph's `show_most_common_types`); prints as a table. The same objects as
/// [`get_objects`] (every generation, frozen objects included).
///
/// ```
/// let census = pyheap::gc::census();
/// println!("{census}");
/// ```
pub fn census() -> introspect::Census {
    introspect::census::<Shared>()
}

/// The tracked objects of the shared space whose values hold a handle to `x`'s object
/// (Python's `gc.get_referrers(x)`), as type-erased handles.
///
/// Only tracked objects are referrers: a handle held by a local variable, a `Vec` on the
/// stack, a static or any value that is not itself in a `Gc` is not an object (as Python
/// does not list frames), and untracked objects hold no handles. An edge from a value
/// whose lock another thread holds right then is not seen (see the module docs). Handles of
/// the other flavor are not edges of this space.
pub fn get_referrers(x: &impl GcObject) -> Vec<GcAny> {
    let Some(p) = sealed::Sealed::tracked_links(x) else {
        return Vec::new();
    };
    // SAFETY: `x` keeps its object alive; the results were acquired for us.
    unsafe {
        introspect::referrers::<Shared>(p)
            .into_iter()
            .map(|q| GcAny::from_acquired(q))
            .collect()
    }
}

/// The tracked objects `x`'s value holds handles to (Python's `gc.get_referents(x)`), each
/// once, as type-erased handles. Untracked targets (values that hold no `Gc`) are not
/// listed; neither are handles behind a lock another thread holds right then.
///
/// ```
/// use pyheap::{gc, Gc, Trace};
/// use std::sync::Mutex;
/// #[derive(Trace)]
/// struct N(Mutex<Vec<Gc<N>>>);
/// let leaf = Gc::new(N(Mutex::new(vec![])));
/// let root = Gc::new(N(Mutex::new(vec![leaf.clone(), leaf.clone()])));
/// let r = gc::get_referents(&root);
/// assert_eq!(r.len(), 1);
/// assert!(pyheap::gc::GcAny::ptr_eq_gc(&r[0], &leaf));
/// ```
pub fn get_referents(x: &impl GcObject) -> Vec<GcAny> {
    let Some(p) = sealed::Sealed::tracked_links(x) else {
        return Vec::new();
    };
    // SAFETY: `x` keeps its object alive; the results were acquired for us.
    unsafe {
        introspect::referents::<Shared>(p)
            .into_iter()
            .map(|q| GcAny::from_acquired(q))
            .collect()
    }
}

/// Set the shared space's debugging flags (Python's `gc.set_debug`): a combination of
/// [`DEBUG_STATS`](crate::gc::DEBUG_STATS), [`DEBUG_COLLECTABLE`](crate::gc::DEBUG_COLLECTABLE),
/// [`DEBUG_UNCOLLECTABLE`](crate::gc::DEBUG_UNCOLLECTABLE),
/// [`DEBUG_SAVEALL`](crate::gc::DEBUG_SAVEALL), [`DEBUG_LEAK`](crate::gc::DEBUG_LEAK).
/// Lines are printed on stderr, from the thread that scans.
///
/// # Panics
/// If `flags` has a bit no flag names.
///
/// ```
/// use pyheap::gc;
/// gc::set_debug(gc::DEBUG_SAVEALL);
/// assert_eq!(gc::get_debug(), gc::DEBUG_SAVEALL);
/// gc::set_debug(0);
/// ```
pub fn set_debug(flags: u32) {
    assert_eq!(
        flags & !crate::gc::debug::KNOWN,
        0,
        "pyheap::gc::set_debug: unknown flags {flags:#x}"
    );
    super::space::space().with_state(|st| st.debug.set(flags));
}

/// The shared space's debugging flags (`gc.get_debug()`).
///
/// ```
/// assert_eq!(pyheap::gc::get_debug() & !pyheap::gc::DEBUG_LEAK & !pyheap::gc::DEBUG_STATS, 0);
/// ```
pub fn get_debug() -> u32 {
    super::space::space().with_state(|st| st.debug.get())
}

/// The objects collections kept under [`DEBUG_SAVEALL`](crate::gc::DEBUG_SAVEALL) instead of
/// freeing them (Python's `gc.garbage`), as handles: alive and usable (their weak handles
/// stay cleared, their finalizers ran). They stay until [`clear_garbage`].
///
/// ```
/// use pyheap::{gc, Gc, Trace};
/// use std::sync::Mutex;
/// #[derive(Trace)]
/// struct N(Mutex<Option<Gc<N>>>, #[trace(skip)] u32);
/// let n = Gc::new(N(Mutex::new(None), 7));
/// *n.0.lock().unwrap() = Some(n.clone());
/// drop(n);
/// gc::disable();
/// gc::set_debug(gc::DEBUG_SAVEALL);
/// pyheap::collect();
/// gc::set_debug(0);
/// let kept = gc::garbage();
/// let n: Gc<N> = kept.iter().find(|g| g.is::<N>()).unwrap().clone().downcast().ok().unwrap();
/// assert_eq!(n.1, 7);
/// drop((kept, n));
/// assert!(gc::clear_garbage() >= 1);
/// assert_eq!(pyheap::collect(), 1); // unreachable again: freed now
/// # gc::enable();
/// ```
pub fn garbage() -> Vec<GcAny> {
    use crate::gc::flavor::Flavor;
    let held: Vec<*const crate::gc::header::Links> = super::space::space().with_state(|st| {
        let g = st.garbage.take();
        for &p in g.iter() {
            // SAFETY: the list holds a strong reference on each; the space lock is held.
            unsafe { Shared::clone_erased_locked(p) };
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
/// pyheap::gc::clear_garbage();
/// assert!(pyheap::gc::garbage().is_empty());
/// ```
pub fn clear_garbage() -> usize {
    use crate::gc::flavor::Flavor;
    let g = super::space::space().with_state(|st| st.garbage.take());
    let n = g.len();
    for p in core::mem::ManuallyDrop::into_inner(g) {
        // SAFETY: the list owned one strong reference on each, given up here.
        unsafe { Shared::release_erased(p) };
    }
    n
}

/// Whether `x`'s finalizer ([`Finalize`](crate::Finalize)) has run (`gc.is_finalized`): a
/// finalizer runs once, when the object dies or its garbage cycle is torn down, and not
/// again after a resurrection. False for objects of types that hold no `Gc`.
///
/// ```
/// use pyheap::{gc, Finalize, Gc, Trace};
/// use std::sync::Mutex;
/// #[derive(Trace)]
/// struct R(Mutex<Vec<Gc<R>>>);
/// impl Finalize for R {
///     fn finalize(&self) {}
/// }
/// let r = Gc::new_finalized(R(Mutex::new(vec![])));
/// assert!(!gc::is_finalized(&r));
/// ```
pub fn is_finalized(x: &impl GcObject) -> bool {
    match sealed::Sealed::tracked_links(x) {
        // SAFETY: `x` keeps the object alive.
        Some(p) => unsafe {
            <crate::gc::shared::counts::SharedCounts as crate::gc::header::Counts>::flags(p)
                & crate::gc::header::FLAG_FINALIZED
                != 0
        },
        None => false,
    }
}
