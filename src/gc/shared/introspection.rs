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
