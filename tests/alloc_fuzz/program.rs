//! The fuzzer's programs: a flat list of operations, and how proptest generates them.
//!
//! Operations name slots and threads by small numbers taken modulo what exists (an `Alloc`
//! takes the first empty slot from its own, the others the first occupied one; an operation
//! with nothing to act on does nothing), so every subsequence of a program is a program and
//! proptest shrinks with no preconditions. `Debug` prints valid Rust: a shrunk program pastes
//! into `regressions.rs` as is.

use proptest::prelude::*;

/// Slots of live blocks (each holds one block, or a group of `count` blocks of one size).
pub const SLOTS: usize = 12;
/// Logical worker threads (each an OS thread, replaced by a fresh one on `ThreadExit`).
pub const THREADS: usize = 3;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;
/// The largest small request (`pyheap::alloc::SMALL_REQUEST_THRESHOLD`).
pub const SMALL_MAX: usize = 512;
/// The smallest and largest large block (`src/alloc/arena/large_blocks.rs`, as
/// `tests/alloc_large_blocks.rs` spells them): Linux, alignment at most a pool's.
pub const LARGE_MIN: usize = 256 * KIB;
pub const LARGE_MAX: usize = 32 * MIB;
pub const LARGE_ALIGN: usize = 16 * KIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Thread `thread` allocates `count` blocks of `size` bytes aligned to `align` into a free
    /// slot, zeroed if asked, through `std::alloc` or (`api`) `allocator_api2`'s `Allocator`
    /// for `PoolAlloc` (always for size 0). `count` is clamped so that a group holds at most
    /// 4 MiB.
    Alloc {
        thread: u8,
        slot: u8,
        size: usize,
        align: usize,
        zeroed: bool,
        api: bool,
        count: u16,
    },
    /// The slot's holder resizes every block of it to `size`: `std::alloc::realloc`, or
    /// (`api: Some(align)`, and always from or to size 0) `grow`/`grow_zeroed`/`shrink` to a
    /// layout of that alignment.
    Realloc {
        slot: u8,
        size: usize,
        api: Option<usize>,
        zeroed: bool,
    },
    /// The slot's holder frees its blocks (through `api`'s interface for non-empty blocks).
    Free { slot: u8, api: bool },
    /// The slot's blocks go to thread `to`, which checks them and from then on reallocs and
    /// frees them (remote frees when it is not the allocating thread).
    Send { slot: u8, to: u8 },
    /// Thread `thread` exits holding its blocks (its heap is abandoned); a fresh thread takes
    /// its place and its blocks.
    ThreadExit { thread: u8 },
    /// `pyheap::alloc::purge()` on thread `thread`, concurrently with the others' work.
    Purge { thread: u8 },
    /// `set_purge_delay(ms)` (`u32::MAX`: `Duration::MAX`), from the coordinating thread.
    SetPurgeDelay { ms: u32 },
    /// Wait for every thread to finish its queue, then check `stats()`' identities.
    Stats,
    /// The coordinator sleeps (purge delays expire).
    Sleep { ms: u8 },
    /// `tracemalloc::start(frames)` (`frames` 0: `tracemalloc::stop()`), from the coordinating
    /// thread, while the workers go on: blocks allocated before a start are freed and resized
    /// while tracing, and traced ones after a stop.
    Trace { frames: u8 },
    /// `fork()` from the coordinating thread while the workers go on. The child (its only
    /// thread) checks the blocks of every slot no worker held at the fork, frees every other
    /// one (frees into the heaps of threads the child does not have), allocates, checks and
    /// frees blocks of every regime, calls `purge()`, and checks the arena counts; the
    /// program goes on in the parent once the child exited.
    Fork,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)` from the coordinating thread while the workers go
    /// on: the rest of the program runs locked (the OS populates every page pyheap makes
    /// accessible, and refuses every purge: memory taken for zero is zeroed by hand). Only
    /// where the process may lock without limit (root, or an unlimited `RLIMIT_MEMLOCK`);
    /// elsewhere nothing. The lock ends with the program's child process.
    Lock,
}

/// Sizes at and around every regime's boundary, and at pool and arena multiples.
fn boundary_sizes() -> Vec<usize> {
    let pool = pyheap::alloc::POOL_SIZE;
    let arena = pyheap::alloc::ARENA_SIZE;
    vec![
        0,
        1,
        8,
        16,
        17,
        SMALL_MAX - 1,
        SMALL_MAX,
        SMALL_MAX + 1,
        4 * KIB,
        4 * KIB + 1,
        32 * KIB,
        32 * KIB + 1,
        64 * KIB,
        64 * KIB + 1,
        128 * KIB,
        LARGE_MIN - 1,
        LARGE_MIN,
        LARGE_MIN + 1,
        pool,
        3 * pool,
        63 * pool,
        arena - 1,
        arena,
        arena + 1,
        arena + pool,
        2 * arena,
        4 * MIB,
        4 * MIB + 1,
        8 * MIB,
        LARGE_MAX - 1,
        LARGE_MAX,
        LARGE_MAX + 1,
    ]
}

pub fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        30 => 1..=SMALL_MAX,
        25 => prop::sample::select(boundary_sizes()),
        20 => SMALL_MAX + 1..LARGE_MIN,
        12 => LARGE_MIN..=4 * MIB,
        3 => 4 * MIB..=LARGE_MAX,
        1 => LARGE_MAX + 1..=40 * MIB,
    ]
}

pub fn align() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => prop::sample::select(vec![1usize, 8, 16]),
        3 => prop::sample::select(vec![2usize, 4, 32, 64, 256, 4 * KIB]),
        2 => prop::sample::select(vec![LARGE_ALIGN, 2 * LARGE_ALIGN, 2 * MIB]),
    ]
}

fn count() -> impl Strategy<Value = u16> {
    prop_oneof![12 => Just(1u16), 2 => 2..=70u16, 1 => 200..=2500u16]
}

pub fn op() -> impl Strategy<Value = Op> {
    let t = 0..THREADS as u8;
    let s = 0..SLOTS as u8;
    prop_oneof![
        30 => (t.clone(), s.clone(), size(), align(), any::<bool>(), prop::bool::weighted(0.25), count())
            .prop_map(|(thread, slot, size, align, zeroed, api, count)| Op::Alloc {
                thread, slot, size, align, zeroed, api, count,
            }),
        16 => (s.clone(), size(), prop::option::weighted(0.25, align()), prop::bool::weighted(0.2))
            .prop_map(|(slot, size, api, zeroed)| Op::Realloc { slot, size, api, zeroed }),
        14 => (s.clone(), prop::bool::weighted(0.2)).prop_map(|(slot, api)| Op::Free { slot, api }),
        10 => (s, t.clone()).prop_map(|(slot, to)| Op::Send { slot, to }),
        3 => t.clone().prop_map(|thread| Op::ThreadExit { thread }),
        3 => t.prop_map(|thread| Op::Purge { thread }),
        2 => prop::sample::select(vec![0u32, 1, 20, 1000, u32::MAX])
            .prop_map(|ms| Op::SetPurgeDelay { ms }),
        4 => Just(Op::Stats),
        1 => (0..5u8).prop_map(|ms| Op::Sleep { ms }),
        2 => prop::sample::select(vec![0u8, 0, 1, 4, 25]).prop_map(|frames| Op::Trace { frames }),
        1 => Just(Op::Fork),
        1 => Just(Op::Lock),
    ]
}

pub fn program(max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=max_ops)
}
