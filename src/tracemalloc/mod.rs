//! Allocation tracing by call site: Python's `tracemalloc`, built into
//! [`PoolAlloc`](crate::PoolAlloc).
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
//!
//! use pyheap::tracemalloc::{self, KeyType};
//!
//! tracemalloc::start(1);                                 // tracemalloc.start()
//! let before = tracemalloc::take_snapshot();
//! let data: Vec<Vec<u64>> = (0..1000).map(|i| vec![i; 100]).collect();
//! let after = tracemalloc::take_snapshot();
//! for stat in after.statistics(KeyType::Lineno).iter().take(3) {
//!     println!("{stat}");           // src/main.rs:9: size=790 KiB, count=1001, average=808 B
//! }
//! for diff in after.compare_to(&before, KeyType::Lineno).iter().take(3) {
//!     println!("{diff}");           // src/main.rs:9: size=790 KiB (+790 KiB), count=1001 (+1001), ...
//! }
//! let (current, peak) = tracemalloc::get_traced_memory();
//! # drop((data, current, peak));
//! tracemalloc::stop();
//! ```
//!
//! # What is traced
//!
//! Every block [`PoolAlloc`](crate::PoolAlloc) hands out while tracing, from any thread:
//! pool blocks (domain [`POOL_DOMAIN`]) and the system allocator's (domain
//! [`SYSTEM_DOMAIN`]), through `GlobalAlloc` and the `allocator_api2` entry points alike.
//! A trace is the block's requested size and the *traceback* of its allocation: up to
//! [`get_traceback_limit()`] frames, most recent first, starting at **the line** of the
//! allocation, the first frame outside pyheap and Rust's `alloc`, `core` and `std` (so that
//! a `Vec::push` is charged to the line that pushed, not to `raw_vec.rs`). A block's trace
//! goes when the block is freed. `PYHEAP_TRACEMALLOC=n` in the environment starts tracing
//! with `n` frames at the first allocation, as `PYTHONTRACEMALLOC` does.
//!
//! # Symbols: what to put in `Cargo.toml`
//!
//! Frames are recorded as raw return addresses and resolved (file, line, function) when a
//! snapshot is taken, from the binary's debug info. Debug builds have it. For release builds:
//!
//! ```toml
//! [profile.release]
//! debug = "line-tables-only"   # or debug = 1 (also variables' locations: bigger binary)
//! ```
//!
//! Without it, frames keep their function names (from the symbol table, unless the binary is
//! stripped) and have no file or line: they read `<unknown>:0`, statistics by
//! [`KeyType::Lineno`] merge per function, and the inlined frames (a `Vec::push` inlined
//! into its caller) are lost, so "the line" may be the caller's caller.
//!
//! # Costs
//!
//! While tracing is off, the allocation fast path pays one load and one predicted branch, the
//! free fast path nothing (`alloc/hooks.rs`; 3 instructions per alloc+free pair in
//! BENCHMARKS.md, "Tracing"). While tracing, every allocation walks its
//! stack (`limit + 24` frames at most) and takes one of 16 locks; see BENCHMARKS.md for the
//! numbers against CPython and `dhat`. The traces live in memory mapped from the OS, not in
//! the traced heap ([`get_tracemalloc_memory`]).
//!
//! # Platforms, `fork()`
//!
//! Unix only: elsewhere `PoolAlloc` hands every request to the system allocator, and nothing
//! is traced ([`take_snapshot`] is empty). The allocator's `fork()` handlers take the trace
//! locks, so the child of a `fork()` made while other threads allocate traces its own
//! allocations normally (`tests/tracemalloc_fork.rs`). A child forked while another thread
//! was inside [`take_snapshot`] may block in its own: the snapshot's locks (and the symbol
//! resolver's) are ordinary mutexes, held by a thread the child does not have.
//!
//! # Files
//!
//! | file | what |
//! |---|---|
//! | `capture.rs` | recording from inside the allocator: frames without allocation, the re-entrancy flag |
//! | `table.rs` | the trace table shared by threads; starting and stopping while threads allocate |
//! | `tb_store.rs` | interned tracebacks in mapped memory |
//! | `snapshot.rs` | `take_snapshot`, `Snapshot`, `Trace`, statistics, `compare_to` |
//! | `symbols.rs` | resolving frames at snapshot time; which frames are "inside" |
//! | `frame.rs` | `Frame`, `Traceback` |
//! | `filter.rs` | `Filter`, `filter_traces`'s matching (shell patterns) |
//! | `format.rs` | `Display` of statistics and tracebacks, as Python prints them |
//! | `dhat.rs` | export to DHAT's JSON format |
//! | `object.rs` | `get_object_traceback` for pointers and `Gc` handles |

#[cfg(not(loom))]
mod capture;
#[cfg(not(loom))]
mod dhat;
#[cfg(not(loom))]
mod filter;
#[cfg(not(loom))]
mod format;
#[cfg(not(loom))]
mod frame;
#[cfg(loom)]
pub mod model;
#[cfg(not(loom))]
mod object;
#[cfg(not(loom))]
mod snapshot;
#[cfg(not(loom))]
mod symbols;
pub(crate) mod table;
mod tb_store;

#[cfg(not(loom))]
pub use filter::Filter;
#[cfg(not(loom))]
pub use frame::{Frame, Traceback};
#[cfg(not(loom))]
pub use object::{get_object_traceback, Allocation};
#[cfg(not(loom))]
pub use snapshot::{take_snapshot, KeyType, Snapshot, Statistic, StatisticDiff, Trace};

#[cfg(not(loom))]
pub(crate) use capture::{record, stack_marker};

/// The domain of traces of pool blocks (requests of at most 512 bytes).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let small = Box::new([0u8; 64]);
///     let snapshot = tracemalloc::take_snapshot();
///     assert!(snapshot.traces().iter().any(|t| t.size == 64 && t.domain == tracemalloc::POOL_DOMAIN));
///     drop(small);
///     tracemalloc::stop();
/// }
/// ```
pub const POOL_DOMAIN: u16 = 0;
/// The domain of traces of blocks from the system allocator (larger requests, larger
/// alignments).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let big = vec![0u8; 100_000];
///     let snapshot = tracemalloc::take_snapshot();
///     assert!(snapshot.traces().iter().any(|t| t.size == 100_000 && t.domain == tracemalloc::SYSTEM_DOMAIN));
///     drop(big);
///     tracemalloc::stop();
/// }
/// ```
pub const SYSTEM_DOMAIN: u16 = 1;

/// The most frames a traceback keeps ([`start`]'s limit).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     tracemalloc::start(tracemalloc::MAX_NFRAMES);
///     assert_eq!(tracemalloc::get_traceback_limit(), tracemalloc::MAX_NFRAMES);
///     tracemalloc::stop();
/// }
/// ```
pub const MAX_NFRAMES: usize = 64;

/// Raw frames captured beyond the limit, for the allocator's and the standard library's
/// frames that are dropped at snapshot time.
#[cfg(not(loom))]
pub(crate) const TRACEBACK_EXTRA: usize = 24;

#[cfg(not(loom))]
pub(crate) static TABLE: table::TraceTable = table::TraceTable::new();

#[cfg(not(loom))]
static NFRAMES: crate::sync::unmodelled::AtomicUsize = crate::sync::unmodelled::AtomicUsize::new(1);

/// Serializes `start`, `stop`, `clear_traces` and snapshots (which read tracebacks outside
/// the shard locks: no `clear` may unmap them meanwhile). Never taken on an allocation path
/// but the first one's (`PYHEAP_TRACEMALLOC`).
#[cfg(not(loom))]
static CONTROL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(not(loom))]
fn control() -> std::sync::MutexGuard<'static, ()> {
    CONTROL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(loom))]
pub(crate) fn nframes() -> usize {
    NFRAMES.load(crate::sync::unmodelled::Ordering::Relaxed)
}

/// Start tracing allocations with tracebacks of up to `nframes` frames (Python's
/// `tracemalloc.start(nframes)`). Blocks allocated before are not traced. Calling it while
/// tracing changes the limit for the blocks allocated from then on.
///
/// # Panics
/// If `nframes` is 0 or more than [`MAX_NFRAMES`].
///
/// ```
/// pyheap::tracemalloc::start(5);
/// assert!(pyheap::tracemalloc::is_tracing());
/// assert_eq!(pyheap::tracemalloc::get_traceback_limit(), 5);
/// pyheap::tracemalloc::stop();
/// assert!(!pyheap::tracemalloc::is_tracing());
/// ```
#[cfg(not(loom))]
pub fn start(nframes: usize) {
    assert!(
        (1..=MAX_NFRAMES).contains(&nframes),
        "tracemalloc::start: the number of frames must be in the range [1; {MAX_NFRAMES}]"
    );
    // Before the lock: the first allocation's `PYHEAP_TRACEMALLOC` takes it.
    crate::alloc::hooks::ensure_init();
    let _g = control();
    start_locked(nframes);
}

#[cfg(not(loom))]
fn start_locked(nframes: usize) {
    NFRAMES.store(nframes, crate::sync::unmodelled::Ordering::Relaxed);
    // The hooks first, then the table's `tracing` (a `Release` store that `record` reads
    // with `Acquire`): a thread that records a trace has then seen the hooks' flags set, and
    // so does every thread it hands the block to, whose free goes to the hooks and forgets
    // the trace (`table.rs`). In the other order a block recorded between the two stores
    // could be freed through the fast path and keep a stale trace.
    crate::alloc::hooks::set_tracing(true);
    TABLE.start();
}

/// `PYHEAP_TRACEMALLOC=n`, read by the first allocation.
#[cfg(not(loom))]
pub(crate) fn start_from_env(n: usize) {
    let _g = control();
    start_locked(n.clamp(1, MAX_NFRAMES));
}

/// Stop tracing and forget every trace (Python's `tracemalloc.stop()`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let b = Box::new([0u8; 64]);
///     tracemalloc::stop(); // forgets every trace
///     assert!(!tracemalloc::is_tracing());
///     assert_eq!(tracemalloc::get_traced_memory(), (0, 0));
///     assert!(tracemalloc::get_object_traceback(&b).is_none());
///     tracemalloc::start(1);
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn stop() {
    crate::alloc::hooks::ensure_init();
    let _g = control();
    TABLE.stop();
    crate::alloc::hooks::set_tracing(false);
}

/// Whether allocations are being traced.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     assert!(tracemalloc::is_tracing());
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn is_tracing() -> bool {
    TABLE.is_tracing()
}

/// Forget every trace (tracing goes on); the traced memory and its peak restart from 0.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let b = Box::new([0u8; 64]);
///     tracemalloc::clear_traces();
///     assert!(tracemalloc::is_tracing());
///     assert!(tracemalloc::get_object_traceback(&b).is_none());
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn clear_traces() {
    let _g = control();
    TABLE.clear();
}

/// The most frames a traceback keeps (`start`'s argument; 1 before any `start`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     tracemalloc::start(3);
///     assert_eq!(tracemalloc::get_traceback_limit(), 3);
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn get_traceback_limit() -> usize {
    nframes()
}

/// `(current, peak)`: the bytes in traced blocks now, and the most there were at once since
/// tracing started (or since [`reset_peak`]). Sizes are the requested sizes.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let (before, _) = tracemalloc::get_traced_memory();
///     let b = Box::new([0u8; 1000]);
///     let (after, peak) = tracemalloc::get_traced_memory();
///     assert!(after >= before + 1000 && peak >= after);
///     drop(b);
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn get_traced_memory() -> (usize, usize) {
    TABLE.traced_memory()
}

/// Set the peak of [`get_traced_memory`] to the current traced bytes.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     drop(vec![0u8; 100_000]);
///     assert!(tracemalloc::get_traced_memory().1 >= 100_000);
///     tracemalloc::reset_peak();
///     let (current, peak) = tracemalloc::get_traced_memory();
///     assert!(peak < 100_000 && peak >= current);
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn reset_peak() {
    TABLE.reset_peak();
}

/// Bytes of memory tracemalloc uses for its traces and tracebacks (mapped from the OS, not
/// from the traced heap).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let b = Box::new([0u8; 64]);
///     assert!(tracemalloc::get_tracemalloc_memory() > 0); // its own tables, mapped from the OS
///     drop(b);
///     tracemalloc::stop();
/// }
/// ```
#[cfg(not(loom))]
pub fn get_tracemalloc_memory() -> usize {
    TABLE.bytes_mapped()
}

/// Forget the trace of `p` (the allocator's hooks, before the block is freed).
#[cfg(not(loom))]
pub(crate) fn forget(p: *mut u8) {
    TABLE.forget(p as usize);
}

/// The traceback of the block at `p` for the debug allocator's report, if traced.
#[cfg(not(loom))]
pub(crate) fn traceback_for_report(p: *mut u8) -> Option<Traceback> {
    object::traceback_of_block(p as usize)
}

/// The trace shards' locks, for the fork handlers (taken first: see `alloc/fork.rs`).
#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_lock() {
    TABLE.shards.lock_all();
}

#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_unlock() {
    TABLE.shards.unlock_all();
}

#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_child() {
    TABLE.shards.force_unlock_all();
}
