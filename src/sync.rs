//! The one place pyheap gets its atomics and thread primitives from.
//!
//! Under `--cfg loom` every type here is loom's, so the models in `loom-tests/` check the very
//! code that ships. Nothing else in the crate may name `core::sync::atomic` or `std::thread`
//! directly.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::fence;
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom_dpor::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
/// The object space's locks (the collector's): blocking, because a scan may hold its lock for
/// milliseconds. The allocator never uses these (it has `alloc::lock::RawLock`).
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
// loom's atomics, wrapped so that loom explores load/write races it would skip (see there).
#[cfg(loom)]
mod loom_dpor;

/// `thread_local!` for per-thread state that belongs to the protocols (the shared space's
/// collecting / destroying flags and its pending-destruction queue). Under loom its threads
/// are not OS threads (they all run on the one thread of the test), so `std`'s thread-locals
/// would be shared by every loom thread; loom's are per loom thread and per execution.
///
/// Declarations use `std`'s `const { ... }` initialisers; under loom (whose macro takes a
/// plain expression) the `const` block is unwrapped.
#[cfg(not(loom))]
pub(crate) use std::thread_local;
#[cfg(loom)]
macro_rules! loom_thread_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };)*) => {
        loom::thread_local! { $($(#[$attr])* $vis static $name: $t = $init;)* }
    };
}
#[cfg(loom)]
pub(crate) use loom_thread_local as thread_local;

/// `core`'s atomics, for the few places loom must not model: statistics counters and lookup
/// tables kept in raw OS memory. Each use says why it needs no model.
pub(crate) use core::sync::atomic as unmodelled;

/// Give the CPU (or, under loom, the model's scheduler) to someone else inside a spin loop.
#[inline]
pub(crate) fn spin_wait(round: u32) {
    #[cfg(not(loom))]
    {
        if round < 64 {
            core::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
}

/// Define a constructor that is `const` in normal builds and a plain `fn` under loom, whose
/// atomics cannot be built in a constant context.
macro_rules! maybe_const_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident() -> $ret:ty $body:block) => {
        $(#[$m])*
        #[cfg(not(loom))]
        $vis const fn $name() -> $ret $body
        $(#[$m])*
        #[cfg(loom)]
        $vis fn $name() -> $ret $body
    };
}
pub(crate) use maybe_const_fn;

/// A statistics counter: written by one thread at a time with a plain load and store (no
/// read-modify-write), read by anyone. It is never used to synchronize, so loom need not
/// model it, and it stays `core`'s atomic even under loom.
#[derive(Debug, Default)]
pub(crate) struct StatCounter(unmodelled::AtomicU64);

impl StatCounter {
    pub(crate) const fn new() -> Self {
        Self(unmodelled::AtomicU64::new(0))
    }
    /// Add `n`. Only the one thread that currently owns the counter may call this.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        let r = unmodelled::Ordering::Relaxed;
        self.0.store(self.0.load(r).wrapping_add(n), r);
    }
    /// Add `n` from any thread (slow paths only: this is a read-modify-write).
    pub(crate) fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, unmodelled::Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(unmodelled::Ordering::Relaxed)
    }
}
