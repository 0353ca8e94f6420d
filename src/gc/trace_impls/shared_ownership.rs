//! `Rc` and `Arc`: `Trace` only of types that hold no `Gc`.
//!
//! A value behind an `Rc` is owned by every clone of the `Rc` at once. If an `Rc<T>` reported
//! the handles in its `T`, two objects holding clones of one `Rc` would each report the same
//! handle: the collector would count one reference twice as internal, find its target with
//! fewer outside references than it has, and free it while it is still held. No single holder
//! can report them (it cannot know whether another clone is in the same garbage set, nor
//! whether one is on a stack), so none does: `Rc<T>`/`Arc<T>` report nothing, which is exact
//! for a `T` that holds no `Gc`, and are a compile error for any other `T` (`gc_free`).
//! Share a value that holds handles with a `Gc` instead: that is what it is for.
//! (std's `Weak`s own no value at all: they are leaves, in `leaves.rs`.)

use super::gc_free_only;
use crate::gc::trace::Trace;
use std::rc::Rc;
use std::sync::Arc;

gc_free_only!(
    [T: Trace + ?Sized] Rc<T>,
    "pyheap: Rc<T> is Trace only for a T that holds no Gc: a Gc behind an Rc has no single \
     owner to report it; share it through a Gc instead"
);
gc_free_only!(
    [T: Trace + ?Sized] Arc<T>,
    "pyheap: Arc<T> is Trace only for a T that holds no Gc: a Gc behind an Arc has no single \
     owner to report it; share it through a Gc instead"
);
