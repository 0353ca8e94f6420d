//! `PoolAlloc`: pymalloc's scheme as a thread-safe Rust global allocator.
//!
//! # The scheme
//!
//! Requests of at most [`SMALL_REQUEST_THRESHOLD`] bytes are rounded up to one of
//! [`NUM_SIZE_CLASSES`] block sizes (see [`size_class`]). Blocks of one size are carved from a
//! [`POOL_SIZE`] *pool*; pools are carved from [`ARENA_SIZE`] *arenas* mapped from the OS with
//! `mmap`, and arenas whose pools are all free go back with `munmap`; the memory of pools that
//! stay free longer than a delay goes back too (`madvise`, see [`purge`]). Larger requests, and
//! alignments above [`BLOCK_ALIGN`], go to the system allocator (or to the allocator of your
//! choice: [`PoolAllocWith`]), except, for [`PoolAlloc`] on Linux, those of 256 KiB to 32 MiB:
//! they are carved from the arenas as runs of whole pools (*large blocks*, see [`PoolAlloc`]),
//! so that memory freed by large blocks serves small ones and the other way round.
//!
//! # Threads
//!
//! Every thread allocates from its own *heap* (`heap.rs`): the pools it owns, per size class.
//! Allocating and freeing a block of one's own pool is a few plain loads and stores, with no
//! lock and no atomic read-modify-write. A block freed by another thread goes onto its pool's
//! lock-free remote-free list and the owner takes such blocks back in batches (`remote.rs`).
//! When a thread exits, its heap is abandoned with the pools that still hold live blocks, and
//! adopted by the next thread that starts; a heap that holds no live block any more (at the
//! exit, or when its last block is freed) is freed (`registry.rs`). No path walks all heaps or
//! all arenas: choosing an arena for a pool is O(1) (`arena_lists.rs`), and blocks freed into
//! an exited thread's heap are taken back by the freeing thread (`remote.rs`). Each slow path that
//! could grow with the heap or the thread count says its bound where it lives, in a comment
//! starting "Bound (audit of issue 13)".
//!
//! # Where things are
//!
//! | file | what it holds |
//! |---|---|
//! | `size_class.rs` | the classes and the constants |
//! | `pool_alloc.rs` | `PoolAlloc`: `GlobalAlloc`, the paths shared with `PoolAllocWith` |
//! | `with_fallback.rs` | [`PoolAllocWith<F>`]: the pools in front of any `GlobalAlloc` |
//! | `fallback.rs` | the fallback allocator (`System`, or `PoolAllocWith`'s `F`) and its counters |
//! | `allocator_api.rs` | `allocator_api2`'s `Allocator` for both |
//! | `thread.rs` | binding a heap to the calling thread |
//! | `heap.rs` | a thread's heap, the alloc/free fast and slow paths |
//! | `pool.rs` | the pool header and its free list |
//! | `remote.rs` | the remote-free protocol (cross-thread frees) |
//! | `remote_batch.rs` | a thread's remote frees kept per pool and published in batches |
//! | `registry.rs` | all heaps; abandon, adopt, sweep |
//! | `arena.rs` | arenas: taking and returning pools, returning arenas to the OS |
//! | `arena_lists.rs` | the arenas filed by free pools: the O(1) choice of the fullest |
//! | `purge.rs` | giving free pools' memory back to the OS after a delay |
//! | `control.rs` | [`purge`] and the purge delay |
//! | `arena_map.rs` | which addresses are pyheap's (pool block or system block?) |
//! | `lock.rs`, `fork.rs` | the allocator's lock, and keeping it sane across `fork()` |
//! | `fork_registration.rs` | registering the fork handlers once, safe against a concurrent `fork()` |
//! | `os.rs` | `mmap`/`munmap` |
//! | `stats.rs` | [`stats`] and its report |
//! | `hooks.rs` | the hooks (debug allocator, tracemalloc) and what they cost while off (one branch on allocation) |
//! | `debug.rs`, `debug_report.rs` | the debug allocator (`PYHEAP_MALLOC=debug`), [`check_heap`], its fatal report |
//! | `block_table.rs` | address-keyed tables in mapped memory, behind sharded locks (the debug registry, the traces) |
//! | `work.rs` | counters of the slow paths' work (arenas and heaps visited), for tests |
//!
//! # Not on Unix
//!
//! The OS layer is Unix's (`mmap`, `pthread_atfork`). Elsewhere `PoolAlloc` forwards every
//! request to `std::alloc::System` (and `PoolAllocWith` to its fallback), the pools are compiled but never used, and
//! there is no `fork()` to prepare for.

// Off Unix the pools' fork support is compiled but never called (see above).
#![cfg_attr(not(unix), allow(dead_code))]

#[cfg(not(loom))]
mod allocator_api;
mod arena;
mod arena_lists;
mod arena_map;
pub(crate) mod block_table;
#[cfg(not(loom))]
mod control;
#[cfg(not(loom))]
mod debug;
#[cfg(not(loom))]
mod debug_report;
#[cfg(not(loom))]
mod fallback;
#[cfg(not(loom))]
mod fork;
mod fork_registration;
// `glibc_tuning` and `medium_cache` serve only the system entry points (`pool_alloc`,
// `control`, `fallback`'s glibc path), which loom builds leave out; under loom the heap keeps
// its medium cache field but never calls into it.
#[cfg_attr(loom, allow(dead_code, unused_imports))]
mod glibc_tuning;
mod global;
mod heap;
#[cfg(not(loom))]
pub(crate) mod hooks;
mod large_cache;
mod lock;
#[cfg_attr(loom, allow(dead_code))] // as `glibc_tuning`
mod medium_cache;
#[cfg(not(loom))]
mod medium_spans;
#[cfg(loom)]
pub mod model;
pub(crate) mod os;
mod pool;
#[cfg(not(loom))]
mod pool_alloc;
mod purge;
mod registry;
mod remote;
mod remote_batch;
mod remote_message;
mod size_class;
mod stats;
#[cfg(not(loom))]
mod thread;
#[cfg(not(loom))]
pub(crate) use thread::flush_medium_cache;
#[cfg(not(loom))]
mod tls_words;
#[cfg(not(loom))]
mod with_fallback;
mod work;

#[cfg(not(loom))]
pub use control::{purge, purge_delay, set_purge_delay};
#[cfg(not(loom))]
pub use debug::check_heap;
pub use glibc_tuning::{glibc_top_pad_dropped, glibc_tuned};
pub use global::SPARE_POOLS;
#[cfg(not(loom))]
pub use pool_alloc::PoolAlloc;
pub use purge::DEFAULT_PURGE_DELAY_MS;
pub use size_class::{
    class_block_size, size_class, ARENA_SIZE, BLOCK_ALIGN, NUM_SIZE_CLASSES, POOLS_PER_ARENA,
    POOL_SIZE, SMALL_REQUEST_THRESHOLD,
};
#[cfg(not(loom))]
#[doc(hidden)]
pub use stats::slow_path_work;
#[cfg(not(loom))]
pub use stats::stats;
pub use stats::{AllocStats, ClassStats};
#[cfg(not(loom))]
pub use with_fallback::PoolAllocWith;
#[doc(hidden)]
pub use work::SlowPathWork;

/// Whether `p` is in one of pyheap's arenas (a pool block, not a system-allocator one).
#[cfg(not(loom))]
pub(crate) fn is_pool_block(p: *const u8) -> bool {
    global::GLOBAL.map.contains(p)
}

/// The address a block handed out by a pool starts at, for an address `addr` inside it
/// (`None` if `addr` is in no pool). For `get_object_traceback`: the pool's block size is
/// read without synchronization with its owner, which is harmless for a pool in use (the
/// size changes only while the pool holds no block).
#[cfg(not(loom))]
pub(crate) fn block_start(addr: usize) -> Option<usize> {
    if !is_pool_block(addr as *const u8) {
        return None;
    }
    let pool = pool::pool_of(addr as *const u8);
    let mem = pool::pool_memory(pool) as usize;
    // SAFETY: `addr` is in a registered arena, so the header array of its first pool is
    // mapped; the field is read as a plain `u32`.
    let size = unsafe { (*pool).block_size.get() } as usize;
    if size == 0 || addr < mem {
        return None;
    }
    let start = mem + (addr - mem) / size * size;
    Some(if hooks::debug_on() {
        start + debug::header_size(BLOCK_ALIGN)
    } else {
        start
    })
}
