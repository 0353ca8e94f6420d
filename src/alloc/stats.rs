//! `AllocStats`: a snapshot of the allocator, in the spirit of `sys._debugmallocstats()`.
//!
//! Counting costs the fast paths nothing: the blocks in use are the pools' own `used` counts
//! (which the allocator keeps anyway), summed by walking the arenas under the arena lock, less
//! the blocks other threads freed and the owners did not take back yet (counted on the
//! remote-free slow path). A per-operation counter, tried first, cost 12% of the LIFO
//! benchmark's time: a read-modify-write of one memory word on every alloc and every free.
//! `stats()` holds the arena lock for the walk (microseconds per hundred arenas). A snapshot
//! taken while other threads allocate is approximate (each count is exact, but they are read
//! one after another); a snapshot of a quiescent program adds up exactly.
//!
//! Bound (audit of issue 13): `stats()` walks every arena (under the arena lock, see
//! `ArenaManager::for_each_pool_in_use`) and every heap not retired (under the registry lock,
//! `HeapRegistry::for_each_heap`): O(arenas mapped + heaps of live threads + abandoned heaps).
//! Only its caller pays; allocation never calls it.

use super::global::Global;
use super::heap::FallbackCounters;
use super::size_class::{class_block_size, ARENA_SIZE, NUM_SIZE_CLASSES, POOL_SIZE};
use super::work::SlowPathWork;
use core::fmt;

/// Statistics of one size class.
///
/// ```
/// let stats = pyheap::alloc::stats();
/// let c = &stats.classes[0];
/// assert_eq!(c.block_size, 8);
/// // Every block of the class's pools is either in use or free.
/// println!("{} pools, {} in use, {} free", c.pools, c.blocks_in_use, c.free_blocks);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Block size of the class, in bytes.
    pub block_size: usize,
    /// Pools of this class held by threads' heaps now: those serving it, and the empty ones
    /// a thread keeps for its next pools ([`SPARE_POOLS`](crate::alloc::SPARE_POOLS)),
    /// under the class they served last.
    pub pools: usize,
    /// Blocks handed out and not freed.
    pub blocks_in_use: usize,
    /// Blocks in this class's pools that are free (freed, or never handed out).
    pub free_blocks: usize,
}

/// A snapshot of [`PoolAlloc`](crate::PoolAlloc)'s state; see [`stats`].
///
/// ```
/// let s = pyheap::alloc::stats();
/// assert_eq!(s.arenas_mapped_total - s.arenas_returned, s.arenas_mapped);
/// assert!(s.arenas_mapped <= s.arenas_high_water);
/// assert_eq!(s.arena_bytes(), s.arenas_mapped * pyheap::alloc::ARENA_SIZE);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocStats {
    /// Per size class, smallest first.
    pub classes: [ClassStats; NUM_SIZE_CLASSES],
    /// Arenas mapped now: those pools come from, the arena-sized places inside large blocks
    /// (`large_blocks`), the places large blocks left whose memory is still resident
    /// (until they are reused, or purged after the purge delay), and those a thread making a
    /// large block holds for a moment between two of its steps (in a child forked meanwhile,
    /// for good: a bounded leak, as the other threads' caches are).
    pub arenas_mapped: usize,
    /// Of `arenas_mapped`, the places a thread making a large block holds between two of its
    /// steps: the block's places taken from the spare ones, and spare places whose pages it
    /// moves into the block's purged ones. Zero when no block is being made; in a child
    /// forked meanwhile, what the other thread held stays here for good.
    pub arenas_in_flight: usize,
    /// The most arenas ever mapped at once.
    pub arenas_high_water: usize,
    /// Arenas mapped since the program started.
    pub arenas_mapped_total: usize,
    /// Arenas returned to the OS since the program started.
    pub arenas_returned: usize,
    /// Free pools in mapped arenas whose memory is still resident: given back by a heap less
    /// than the purge delay ago (see [`purge`](crate::alloc::purge)), and the usable pools'
    /// worth of each resident place a large block left.
    pub free_pools_resident: usize,
    /// Free pools in mapped arenas whose memory was given back to the OS (purged); they
    /// keep their addresses.
    pub free_pools_purged: usize,
    /// Pools purged since the program started (a pool purged, reused and purged again
    /// counts twice).
    pub pools_purged_total: usize,
    /// Bytes in blocks handed out and not freed (block sizes, not request sizes).
    pub bytes_in_blocks: usize,
    /// Bytes handed out by the system allocator (requests above the threshold, alignments
    /// above the block alignment, and fallbacks) and not freed.
    pub fallback_bytes: usize,
    /// Live allocations handed out by the system allocator.
    pub fallback_count: usize,
    /// System-allocator requests since the program started.
    pub fallback_total: usize,
    /// Blocks of 513 B to 32 KiB the program freed and [`PoolAlloc`](crate::PoolAlloc) keeps
    /// for reuse in its threads' medium caches (not counted in `fallback_count`: the program
    /// freed them; at most 4 MiB per thread, given back to the system allocator when the
    /// thread exits or [`purge`](crate::alloc::purge) is called).
    pub medium_cached_blocks: usize,
    /// Bytes of the blocks in `medium_cached_blocks` (their size bins' sizes).
    pub medium_cached_bytes: usize,
    /// Medium spans mapped now: the 64 KiB pieces [`PoolAlloc`](crate::PoolAlloc) carves its
    /// blocks of 513 B to 4 KiB from (these blocks are counted in `fallback_count` and
    /// `fallback_bytes` by their request sizes, or in `medium_cached_blocks` once freed).
    pub medium_spans: usize,
    /// Of `medium_spans`, those with no block in use, kept mapped for reuse; unmapped once
    /// they have stayed empty for the purge delay, or by [`purge`](crate::alloc::purge).
    pub medium_spans_empty: usize,
    /// Blocks of 128 KiB to 32 MiB that [`PoolAlloc`](crate::PoolAlloc) carved from its
    /// arenas, as runs of whole pools, and that are in use (on Linux; elsewhere they come from
    /// the system allocator). Counted in `fallback_count` and `fallback_bytes` too, by their
    /// request sizes, as the medium blocks are. A freed one's pools serve the next small
    /// blocks, and empty arenas the next large block.
    pub large_blocks: usize,
    /// Bytes requested in `large_blocks`.
    pub large_bytes: usize,
    /// Bytes of the large blocks the program freed and that their threads keep for their next
    /// requests of the same shapes (at most four blocks of at most 4 MiB each and 8 MiB in all
    /// per thread; given back to the arenas when the thread takes a new pool, exits, or calls
    /// [`purge`](crate::alloc::purge), the oldest first when a freed block needs room). Not
    /// counted in `large_blocks`.
    pub large_cached_bytes: usize,
    /// Heaps held by a running thread.
    pub heaps_active: usize,
    /// Heaps left by exited threads with live blocks in their pools, waiting for adoption or
    /// for their last block to be freed (a heap left with none is freed at once).
    pub heaps_abandoned: usize,
}

impl AllocStats {
    /// Blocks in use over all size classes.
    pub fn blocks_in_use(&self) -> usize {
        self.classes.iter().map(|c| c.blocks_in_use).sum()
    }

    /// Pools in use over all size classes.
    pub fn pools_in_use(&self) -> usize {
        self.classes.iter().map(|c| c.pools).sum()
    }

    /// Free blocks over all size classes.
    pub fn free_blocks(&self) -> usize {
        self.classes.iter().map(|c| c.free_blocks).sum()
    }

    /// Bytes of arenas mapped now.
    pub fn arena_bytes(&self) -> usize {
        self.arenas_mapped * ARENA_SIZE
    }

    pub(crate) fn collect(global: &Global) -> AllocStats {
        // Blocks handed out, pools and capacity: from the pools themselves.
        let mut used = [0u64; NUM_SIZE_CLASSES];
        let mut pools = [0usize; NUM_SIZE_CLASSES];
        let mut capacity = [0usize; NUM_SIZE_CLASSES];
        global.arenas.for_each_pool_in_use(|p| {
            let class = p.class.get() as usize;
            used[class] += u64::from(p.used.get());
            pools[class] += 1;
            capacity[class] += p.capacity.get() as usize;
        });
        // Minus the blocks freed by other threads and not yet taken back by their owners.
        let mut pending = [0u64; NUM_SIZE_CLASSES];
        let mut fb = [0u64; 4];
        let mut cached = [0u64; 3];
        // The live large blocks and bytes the heaps counted without the lock (`LargeCache`).
        let mut large = [0u64; 2];
        let mut add_fallback = |c: &FallbackCounters| {
            fb[0] = fb[0].wrapping_add(c.allocs.get());
            fb[1] = fb[1].wrapping_add(c.frees.get());
            fb[2] = fb[2].wrapping_add(c.bytes_allocated.get());
            fb[3] = fb[3].wrapping_add(c.bytes_freed.get());
        };
        let heaps = global.heaps.for_each_heap(|heap| {
            for (class, pending) in pending.iter_mut().enumerate() {
                let q = heap.class(class);
                *pending = pending
                    .wrapping_add(q.remote_frees.get())
                    .wrapping_sub(q.reclaimed.get());
            }
            add_fallback(&heap.fallback);
            cached[0] = cached[0].wrapping_add(heap.medium.blocks());
            cached[1] = cached[1].wrapping_add(heap.medium.bytes.get());
            cached[2] = cached[2].wrapping_add(heap.large.bytes() as u64);
            large[0] = large[0].wrapping_add(heap.large.live_blocks.get());
            large[1] = large[1].wrapping_add(heap.large.live_bytes.get());
        });
        let retired = &heaps.retired;
        for (class, pending) in pending.iter_mut().enumerate() {
            *pending = pending
                .wrapping_add(retired.remote_frees[class])
                .wrapping_sub(retired.reclaimed[class]);
        }
        add_fallback(&global.orphan.fallback);
        for (acc, v) in fb.iter_mut().zip(retired.fallback) {
            *acc = acc.wrapping_add(v);
        }
        for (acc, v) in large.iter_mut().zip(retired.large) {
            *acc = acc.wrapping_add(v);
        }
        let mut classes = [ClassStats::default(); NUM_SIZE_CLASSES];
        let mut bytes_in_blocks = 0;
        for (class, out) in classes.iter_mut().enumerate() {
            let pending = pending[class].wrapping_add(global.orphan.frees[class].get());
            let in_use = clamp(used[class].wrapping_sub(pending));
            *out = ClassStats {
                block_size: class_block_size(class),
                pools: pools[class],
                blocks_in_use: in_use,
                free_blocks: capacity[class].saturating_sub(in_use),
            };
            bytes_in_blocks += in_use * out.block_size;
        }
        #[cfg(not(loom))]
        let (medium_spans, medium_spans_empty) = super::medium_spans::counts();
        #[cfg(loom)]
        let (medium_spans, medium_spans_empty) = (0, 0);
        let (free_pools_resident, free_pools_purged) =
            global.arenas.free_pools_resident_and_purged();
        let a = &global.arenas.counters;
        AllocStats {
            classes,
            arenas_mapped: a.arenas_mapped() as usize,
            arenas_in_flight: clamp(a.in_flight.get()),
            arenas_high_water: a.high_water.get() as usize,
            arenas_mapped_total: a.mapped_total.get() as usize,
            arenas_returned: a.returned.get() as usize,
            free_pools_resident,
            free_pools_purged,
            pools_purged_total: a.pools_purged.get() as usize,
            bytes_in_blocks,
            fallback_bytes: clamp(fb[2].wrapping_sub(fb[3])),
            fallback_count: clamp(fb[0].wrapping_sub(fb[1])),
            fallback_total: fb[0] as usize,
            medium_cached_blocks: clamp(cached[0]),
            medium_cached_bytes: clamp(cached[1]),
            medium_spans,
            medium_spans_empty,
            large_blocks: clamp(a.large_blocks.get().wrapping_add(large[0])),
            large_bytes: clamp(a.large_bytes.get().wrapping_add(large[1])),
            large_cached_bytes: clamp(cached[2]),
            heaps_active: heaps.held,
            heaps_abandoned: heaps.abandoned,
        }
    }
}

/// A difference of racy counters may dip below zero for a moment: read that as zero.
fn clamp(v: u64) -> usize {
    if (v as i64) < 0 {
        0
    } else {
        v as usize
    }
}

/// A snapshot of the global [`PoolAlloc`](crate::PoolAlloc) state: per size class, arenas, and
/// the system-allocator fallback. Its `Display` prints a report like CPython's
/// `sys._debugmallocstats()`.
///
/// The counters describe `PoolAlloc` whether or not it is the global allocator (it may serve
/// only `allocator_api2` collections). Reading them takes no lock and allocates nothing, so
/// the counters are read one after the other while other threads go on: the identities
/// between them that [`AllocStats`] shows (such as `arenas_mapped_total - arenas_returned ==
/// arenas_mapped`) hold exactly when no other thread is in the allocator (a thread making a
/// large block of several arenas, for one, takes them off `arenas_mapped` some microseconds
/// before it counts them as the block's), and within a few arenas otherwise.
///
/// Blocks another thread freed are counted as free at once, also while that thread still
/// holds them in a batch (see [`PoolAlloc`](crate::PoolAlloc), "Blocks freed by another
/// thread"), whose pools stay in use until it publishes them; `stats()` first publishes the
/// calling thread's own batches.
///
/// ```
/// use allocator_api2::vec::Vec;
/// let before = pyheap::alloc::stats();
/// let mut v: Vec<Vec<u8, _>, _> = Vec::new_in(pyheap::PoolAlloc);
/// for _ in 0..100 {
///     let mut inner = Vec::new_in(pyheap::PoolAlloc);
///     inner.extend_from_slice(&[7u8; 40]);
///     v.push(inner);
/// }
/// let during = pyheap::alloc::stats();
/// assert!(during.blocks_in_use() >= before.blocks_in_use() + 100);
/// drop(v);
/// println!("{}", pyheap::alloc::stats());
/// ```
#[cfg(not(loom))]
pub fn stats() -> AllocStats {
    // It takes the arena lock: the fork handlers must exist first (normally done at load
    // time, see `fork.rs`).
    super::fork::register_once();
    super::thread::flush_remote_batches();
    AllocStats::collect(&super::global::GLOBAL)
}

impl fmt::Display for AllocStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pyheap allocator: {} size classes, {} KiB pools, {} KiB arenas",
            NUM_SIZE_CLASSES,
            POOL_SIZE / 1024,
            ARENA_SIZE / 1024
        )?;
        writeln!(f, "class   size   pools   blocks in use   free blocks")?;
        writeln!(f, "-----   ----   -----   -------------   -----------")?;
        for (i, c) in self.classes.iter().enumerate() {
            if c.pools == 0 && c.blocks_in_use == 0 {
                continue;
            }
            writeln!(
                f,
                "{:>5}   {:>4}   {:>5}   {:>13}   {:>11}",
                i, c.block_size, c.pools, c.blocks_in_use, c.free_blocks
            )?;
        }
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, v: usize| {
            writeln!(f, "# {name:<34} = {v:>15}")
        };
        row(f, "arenas mapped now", self.arenas_mapped)?;
        row(f, "arenas in flight (large blocks)", self.arenas_in_flight)?;
        row(
            f,
            "arenas mapped at most (high-water)",
            self.arenas_high_water,
        )?;
        row(f, "arenas mapped in total", self.arenas_mapped_total)?;
        row(f, "arenas returned to the OS", self.arenas_returned)?;
        row(f, "bytes in arenas", self.arena_bytes())?;
        row(f, "free pools resident", self.free_pools_resident)?;
        row(f, "free pools purged", self.free_pools_purged)?;
        row(f, "pools purged in total", self.pools_purged_total)?;
        writeln!(f)?;
        row(f, "pools in use", self.pools_in_use())?;
        row(f, "blocks in use", self.blocks_in_use())?;
        row(f, "bytes in allocated blocks", self.bytes_in_blocks)?;
        row(f, "bytes in free blocks", {
            self.classes
                .iter()
                .map(|c| c.free_blocks * c.block_size)
                .sum()
        })?;
        writeln!(f)?;
        row(f, "system allocator: live blocks", self.fallback_count)?;
        row(f, "system allocator: live bytes", self.fallback_bytes)?;
        row(f, "system allocator: requests", self.fallback_total)?;
        row(
            f,
            "medium blocks cached for reuse",
            self.medium_cached_blocks,
        )?;
        row(f, "bytes in medium blocks cached", self.medium_cached_bytes)?;
        row(f, "medium spans mapped", self.medium_spans)?;
        row(f, "medium spans empty", self.medium_spans_empty)?;
        row(f, "large blocks in arenas", self.large_blocks)?;
        row(f, "bytes in large blocks", self.large_bytes)?;
        row(f, "bytes in large blocks kept", self.large_cached_bytes)?;
        row(f, "heaps held by threads", self.heaps_active)?;
        row(f, "heaps abandoned by exited threads", self.heaps_abandoned)
    }
}

impl SlowPathWork {
    pub(crate) fn collect(global: &Global) -> SlowPathWork {
        let (a, h) = (&global.arenas.work, &global.heaps.work);
        SlowPathWork {
            pool_requests: a.pool_requests.get(),
            arenas_visited: a.arenas_visited.get(),
            heap_binds: h.binds.get(),
            heap_exits: h.exits.get(),
            heaps_visited: h.visited.get(),
        }
    }
}

/// The slow paths' work so far in the global [`PoolAlloc`](crate::PoolAlloc) (see `work.rs`). For tests of
/// the allocator's bounds; not part of the API.
#[doc(hidden)]
#[cfg(not(loom))]
pub fn slow_path_work() -> SlowPathWork {
    SlowPathWork::collect(&super::global::GLOBAL)
}
