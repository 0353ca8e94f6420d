//! The single-thread flavor: [`Gc`] and [`Weak`], `!Send`, plain counts, and a per-thread
//! object space with its own cycle collector (the CPython-with-a-GIL model, for `RefCell`
//! graphs at `Rc` speed). Its controls are in [`gc`].
//!
//! ```
//! use pyheap::unsync::{Gc, Weak};
//! use pyheap::Trace;
//! use std::cell::RefCell;
//!
//! #[derive(Trace)]
//! struct Parent { children: RefCell<Vec<Gc<Child>>> }
//! #[derive(Trace)]
//! struct Child { parent: RefCell<Option<Gc<Parent>>>, sibling: Weak<Child> }
//!
//! let p = Gc::new(Parent { children: RefCell::new(vec![]) });
//! let c = Gc::new(Child { parent: RefCell::new(Some(p.clone())), sibling: Weak::new() });
//! p.children.borrow_mut().push(c);
//! drop(p);
//! assert_eq!(pyheap::unsync::gc::collect(), 2);
//! ```

pub use crate::gc::local::handle::{Gc, Weak};

/// Python's `gc` controls for the calling thread's object space (the objects of
/// [`pyheap::unsync`](crate::unsync)). Each thread has its own space, thresholds, counts,
/// statistics and switch; [`pyheap::collect()`](crate::collect) collects this space too.
///
/// ```
/// use pyheap::unsync::Gc;
/// use std::cell::RefCell;
///
/// #[derive(pyheap::Trace, Default)]
/// struct Node(RefCell<Vec<Gc<Node>>>);
///
/// let a = Gc::new(Node::default());
/// let b = Gc::new(Node::default());
/// a.0.borrow_mut().push(b.clone());
/// b.0.borrow_mut().push(a.clone());
/// drop((a, b));
/// assert_eq!(pyheap::unsync::gc::collect(), 2);
/// assert_eq!(pyheap::unsync::gc::threshold(), (700, 10, 10));
/// ```
pub mod gc {
    pub use crate::gc::local::callbacks;
    pub use crate::gc::local::controls::{
        collect, collect_generation, count, disable, enable, freeze, freeze_count, is_enabled,
        safe_point, set_teardown_limit, set_threshold, stats, teardown_limit, threshold, unfreeze,
        waiting,
    };
    pub use crate::gc::local::introspection::{
        census, clear_garbage, garbage, get_debug, get_objects, get_objects_in, get_referents,
        get_referrers, is_finalized, set_debug, GcAny, GcObject,
    };
    pub use crate::gc::local::space::DEFAULT_TEARDOWN_LIMIT;
    pub use crate::gc::GenerationStats;
    pub use crate::gc::{
        CallbackId, CollectionInfo, Phase, DEBUG_COLLECTABLE, DEBUG_LEAK, DEBUG_SAVEALL,
        DEBUG_STATS, DEBUG_UNCOLLECTABLE,
    };
    pub use crate::gc::{Census, CensusEntry};
}

/// Python's `weakref` for the single-thread flavor: [`WeakRef`](weakref::WeakRef),
/// [`finalize`](weakref::finalize) (at exit: at this thread's exit), and the weak maps
/// [`WeakValueMap`](weakref::WeakValueMap), [`WeakKeyMap`](weakref::WeakKeyMap) (keys by
/// identity) and [`WeakSet`](weakref::WeakSet).
///
/// ```
/// use pyheap::unsync::weakref::WeakSet;
/// use pyheap::unsync::Gc;
///
/// let instances = WeakSet::new();
/// let a = Gc::new(String::from("a"));
/// instances.insert(&a);
/// instances.insert(&Gc::new(String::from("temporary")));
/// assert_eq!(instances.len(), 1);
/// ```
pub mod weakref {
    pub use crate::gc::local::weak_maps::{WeakKeyMap, WeakSet, WeakValueMap};
    pub use crate::gc::local::weakref::{finalize, Finalizer, WeakRef};
}
