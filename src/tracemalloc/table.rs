//! The traces: which live block was allocated where, shared by every thread.
//!
//! A [`TraceTable`] is [`SHARDS`](crate::alloc::block_table::SHARDS) shards, each behind its
//! own lock: a table from block addresses to traces (size, domain, traceback) and the
//! shard's store of tracebacks, each kept once per shard (interned: many blocks allocated at
//! one place share one). A block's address picks its shard. All of it is memory mapped from
//! the OS (`AddrTable`, [`TbStore`]): recording a trace never allocates through the global
//! allocator.
//!
//! # Starting and stopping while threads allocate
//!
//! `tracing` says whether new blocks get a trace. [`TraceTable::record`] tests it again
//! *under the shard's lock*, and [`TraceTable::stop`] clears it before it takes each
//! shard's lock to empty the shard. So once `stop` has emptied a shard, no trace can appear
//! in it: a `record` that takes the lock after `stop` released it sees `tracing == false`
//! (the store happens before `stop`'s lock release, which happens before that acquisition).
//! A `record` that took the lock first has its trace emptied by `stop`. A free forgets its
//! block's trace before the block is freed (so no other thread can have the address yet).
//! The free path tests the allocator's hooks flag (`alloc/hooks.rs`), not `tracing`: `start`
//! sets that flag before it stores `tracing = true` with `Release`, and `record` loads
//! `tracing` with `Acquire`, so a recorded trace happens after the flag was set; the thread
//! freeing the block received it after its allocation, so its test of the flag reads it set
//! or a later value (coherence), and a later value means a `stop` that empties the trace
//! anyway. Loom model: `loom-tests/tests/tracemalloc_start_stop.rs` (its `tracing` stands for
//! both).
//!
//! Bound: recording or forgetting a trace is O(1) (expected) under one shard's lock;
//! interning a traceback is O(frames). Emptying walks nothing: the shard's mappings go back
//! to the OS whole.

#![cfg_attr(loom, allow(dead_code))] // the models use a part of it

use super::tb_store::TbStore;
use crate::alloc::block_table::{shards_of, AddrTable, Found, Shards, SHARDS};
use crate::sync::unmodelled;
use crate::sync::{AtomicBool, Ordering};

/// One block's trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceRec {
    /// The requested size.
    pub(crate) size: usize,
    /// The interned traceback: an address in the shard's [`TbStore`].
    pub(crate) tb: usize,
    /// 0: a pool block; 1: a system-allocator block.
    pub(crate) domain: u16,
    /// The traceback limit when the block was allocated (its traceback keeps that many
    /// frames, as Python's traces do).
    pub(crate) limit: u16,
}

/// A shard: its traces and its tracebacks.
pub(crate) struct TraceShard {
    pub(crate) traces: AddrTable<TraceRec>,
    pub(crate) tbs: TbStore,
}

impl TraceShard {
    crate::sync::maybe_const_fn! {
        fn new() -> TraceShard {
            TraceShard { traces: AddrTable::new(), tbs: TbStore::new() }
        }
    }

    fn clear(&mut self) {
        self.traces.clear();
        self.tbs.clear();
    }
}

/// The traces of every thread, and whether new blocks get one.
pub(crate) struct TraceTable {
    pub(crate) shards: Shards<TraceShard>,
    tracing: AtomicBool,
    /// Sum of the traced blocks' sizes, and its highest value since the last reset. Changed
    /// under a shard lock with read-modify-writes (different shards change them at once);
    /// never used to synchronize, hence not modelled.
    current: unmodelled::AtomicUsize,
    peak: unmodelled::AtomicUsize,
}

impl TraceTable {
    crate::sync::maybe_const_fn! {
        pub(crate) fn new() -> TraceTable {
            TraceTable {
                shards: shards_of!(TraceShard::new()),
                tracing: AtomicBool::new(false),
                current: unmodelled::AtomicUsize::new(0),
                peak: unmodelled::AtomicUsize::new(0),
            }
        }
    }

    /// Whether new blocks get a trace.
    #[inline]
    pub(crate) fn is_tracing(&self) -> bool {
        self.tracing.load(Ordering::Relaxed)
    }

    /// Let new blocks get traces. (Callers serialize `start`, `stop` and `clear`.) `Release`:
    /// pairs with `record`'s `Acquire` load, so that what the caller did before (turning the
    /// allocator's hooks on) happens before every trace recorded.
    pub(crate) fn start(&self) {
        self.tracing.store(true, Ordering::Release);
    }

    /// No new traces, then every trace forgotten (see the module doc for why in this order).
    pub(crate) fn stop(&self) {
        self.tracing.store(false, Ordering::Relaxed);
        self.clear();
    }

    /// Forget every trace and traceback, and reset the traced memory and its peak (tracing
    /// goes on).
    pub(crate) fn clear(&self) {
        for i in 0..SHARDS {
            self.shards.with(i, |s| {
                s.traces.for_each(|_, t| {
                    self.current
                        .fetch_sub(t.size, unmodelled::Ordering::Relaxed);
                });
                s.clear();
            });
        }
        self.peak.store(
            self.current.load(unmodelled::Ordering::Relaxed),
            unmodelled::Ordering::Relaxed,
        );
    }

    /// Record the trace of block `key` of `size` bytes allocated at `frames` (most recent
    /// first), if tracing; a trace already there for the address is replaced. Returns whether
    /// a trace was recorded (false: not tracing, or no memory for it).
    pub(crate) fn record(
        &self,
        key: usize,
        size: usize,
        domain: u16,
        limit: u16,
        frames: &[usize],
    ) -> bool {
        self.shards.with_key(key, |s| {
            if !self.tracing.load(Ordering::Acquire) {
                return false;
            }
            let Some(tb) = s.tbs.intern(frames) else {
                return false;
            };
            let old = s.traces.find(key);
            let rec = TraceRec {
                size,
                tb,
                domain,
                limit,
            };
            if !s.traces.insert(key, rec) {
                return false;
            }
            if let Found::Live(old) = old {
                self.current
                    .fetch_sub(old.size, unmodelled::Ordering::Relaxed);
            }
            let now = self.current.fetch_add(size, unmodelled::Ordering::Relaxed) + size;
            self.peak.fetch_max(now, unmodelled::Ordering::Relaxed);
            true
        })
    }

    /// Forget the trace of block `key`, if it has one. Returns its record.
    pub(crate) fn forget(&self, key: usize) -> Option<TraceRec> {
        self.shards.with_key(key, |s| {
            let t = s.traces.remove(key)?;
            self.current
                .fetch_sub(t.size, unmodelled::Ordering::Relaxed);
            Some(t)
        })
    }

    /// `(current, peak)` traced bytes.
    pub(crate) fn traced_memory(&self) -> (usize, usize) {
        let cur = self.current.load(unmodelled::Ordering::Relaxed);
        let peak = self.peak.load(unmodelled::Ordering::Relaxed);
        (cur, peak.max(cur))
    }

    /// Set the peak to the current traced bytes.
    pub(crate) fn reset_peak(&self) {
        self.peak.store(
            self.current.load(unmodelled::Ordering::Relaxed),
            unmodelled::Ordering::Relaxed,
        );
    }

    /// Traces held now (racy while threads allocate).
    #[cfg(loom)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS)
            .map(|i| self.shards.with(i, |s| s.traces.len()))
            .sum()
    }

    /// Bytes mapped for the tables and the tracebacks.
    pub(crate) fn bytes_mapped(&self) -> usize {
        (0..SHARDS)
            .map(|i| {
                self.shards
                    .with(i, |s| s.traces.bytes_mapped() + s.tbs.bytes_mapped())
            })
            .sum()
    }

    /// The trace of block `key` and a copy of its traceback's frames (as many as fit in
    /// `out`; the count is returned).
    pub(crate) fn lookup(&self, key: usize, out: &mut [usize]) -> Option<(TraceRec, usize)> {
        self.shards.with_key(key, |s| match s.traces.find(key) {
            Found::Live(t) => {
                // SAFETY: a traceback of this shard, which lives until the shard is emptied
                // under its lock, which we hold.
                let frames = unsafe { TbStore::frames(t.tb) };
                let n = frames.len().min(out.len());
                out[..n].copy_from_slice(&frames[..n]);
                Some((t, n))
            }
            _ => None,
        })
    }
}
