//! The single-thread flavor: [`Gc`] and [`Weak`], `!Send`, plain counts, and a per-thread
//! object space with its own cycle collector (the CPython-with-a-GIL model, for `RefCell`
//! graphs at `Rc` speed).
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
//! assert_eq!(pyheap::collect(), 2);
//! ```

pub use crate::gc::handle::{Gc, Weak};
