//! The single-thread flavor (`pyheap::unsync`): handles with plain counts, a per-thread object
//! space collected on its own thread, its controls (`pyheap::unsync::gc`), the examination of
//! old objects that lost a reference, and the collections at thread exit. It is built on the
//! core the two flavors share (`gc::collect`, `gc::finalize`, `gc::header`, `gc::trace`, …),
//! as `gc::shared` is.

pub mod callbacks;
pub(crate) mod controls;
pub(crate) mod handle;
pub(crate) mod introspection;
pub(crate) mod old_touched;
pub(crate) mod space;
pub(crate) mod thread_exit;
pub mod weak_maps;
pub mod weakref;
