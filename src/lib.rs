//! pyheap: CPython's memory management for Rust.
//!
//! * [`PoolAlloc`]: a `#[global_allocator]` on pymalloc's scheme (size classes, pools,
//!   arenas), thread-safe and returning memory to the OS. See [`alloc`].
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
//! # fn main() {}
//! ```
#![warn(missing_docs)]

pub mod alloc;
pub(crate) mod sync;

#[cfg(not(loom))]
pub use alloc::PoolAlloc;
