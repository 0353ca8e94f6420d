//! Counters of the work the allocator's slow paths do: how many arenas and heaps they look at.
//!
//! They exist for tests that check a bound on that work (a pool request must not look at
//! every arena, a thread's exit must not look at every heap) by counting instead of timing,
//! and are read through [`slow_path_work`](crate::alloc::slow_path_work) (hidden from the docs: not part of the API). Every
//! count is a relaxed add on a slow path (at most a few per pool request, thread start or
//! thread exit), never on the fast paths.

use crate::sync::StatCounter;

/// What the slow paths did since the program started (a snapshot; see [`slow_path_work`](crate::alloc::slow_path_work)).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowPathWork {
    /// Pools requested from the arena manager.
    pub pool_requests: u64,
    /// Arena headers examined to choose the arena a pool comes from, or an empty arena to
    /// return to the OS.
    pub arenas_visited: u64,
    /// Heaps bound to a starting thread (adopted or new).
    pub heap_binds: u64,
    /// Heaps given up by an exiting thread.
    pub heap_exits: u64,
    /// Heaps examined to find one to adopt, to sweep, or to give back.
    pub heaps_visited: u64,
}

impl core::ops::Sub for SlowPathWork {
    type Output = SlowPathWork;
    fn sub(self, o: SlowPathWork) -> SlowPathWork {
        SlowPathWork {
            pool_requests: self.pool_requests.wrapping_sub(o.pool_requests),
            arenas_visited: self.arenas_visited.wrapping_sub(o.arenas_visited),
            heap_binds: self.heap_binds.wrapping_sub(o.heap_binds),
            heap_exits: self.heap_exits.wrapping_sub(o.heap_exits),
            heaps_visited: self.heaps_visited.wrapping_sub(o.heaps_visited),
        }
    }
}

/// The arena manager's counters (written under its lock).
#[derive(Default)]
pub(crate) struct ArenaWork {
    pub(crate) pool_requests: StatCounter,
    pub(crate) arenas_visited: StatCounter,
}

impl ArenaWork {
    pub(crate) const fn new() -> ArenaWork {
        ArenaWork {
            pool_requests: StatCounter::new(),
            arenas_visited: StatCounter::new(),
        }
    }
}

/// The heap registry's counters (written by any thread: `add_shared`).
#[derive(Default)]
pub(crate) struct HeapWork {
    pub(crate) binds: StatCounter,
    pub(crate) exits: StatCounter,
    pub(crate) visited: StatCounter,
}

impl HeapWork {
    pub(crate) const fn new() -> HeapWork {
        HeapWork {
            binds: StatCounter::new(),
            exits: StatCounter::new(),
            visited: StatCounter::new(),
        }
    }
}
