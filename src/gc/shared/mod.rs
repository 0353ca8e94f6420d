//! The thread-safe flavor: `pyheap::Gc` / `pyheap::Weak`, atomic versioned counts, one shared
//! object space and its background collector. The design and its proof are in
//! `docs/concurrency.md`; each file states the part of it that it keeps.
//!
//! Files: `counts` (the count word: strong count, version, flags), `space` (the shared
//! generations behind the space lock, refcount deaths, the `Flavor` impl the collector core
//! runs on), `collector` (the background thread), `fairness` (scans leave blocked threads
//! their turn), `fork` (the `fork()` handlers), `handle` (the handles; `handle/unique`:
//! `try_unwrap`, `into_inner`, `make_mut`), `wake` (std's `Wake` for `Gc`), `weakref` and
//! `weak_maps` (`pyheap::weakref`).

pub mod callbacks;
#[cfg(not(loom))]
mod collector;
pub(crate) mod counts;
mod fairness;
#[cfg(not(loom))]
mod fork;
pub(crate) mod handle;
pub(crate) mod introspection;
pub(crate) mod space;
pub(crate) mod wake;
pub mod weak_maps;
pub mod weakref;
