//! `take_snapshot()` and what a `Snapshot` computes: statistics by line, file or traceback,
//! and the difference from an older snapshot, as Python's `tracemalloc` sorts them.

use super::capture::untraced;
use super::filter::Filter;
use super::frame::{Frame, Traceback};
use super::symbols::Resolver;
use super::tb_store::TbStore;
use super::TABLE;
use crate::alloc::block_table::SHARDS;
use std::collections::HashMap;

/// A traced block: its domain ([`POOL_DOMAIN`](super::POOL_DOMAIN) or
/// [`SYSTEM_DOMAIN`](super::SYSTEM_DOMAIN)), requested size and traceback.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let snapshot = tracemalloc::take_snapshot();
///     let mine = snapshot.traces().iter().filter(|t| t.size == 100).count();
///     assert!(mine >= 10);
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Trace {
    /// Where the block comes from.
    pub domain: u16,
    /// The requested size in bytes.
    pub size: usize,
    /// Where it was allocated.
    pub traceback: Traceback,
}

/// How [`Snapshot::statistics`] and [`Snapshot::compare_to`] group traces (Python's
/// `key_type`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc::{self, KeyType};
/// fn main() {
///     tracemalloc::start(1);
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let snapshot = tracemalloc::take_snapshot();
///     for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
///         assert!(snapshot.statistics(key).iter().map(|s| s.size).sum::<usize>() >= 1000);
///     }
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// By file (`'filename'`): the most recent frame's file.
    Filename,
    /// By line (`'lineno'`): the most recent frame's file and line, the line of the
    /// allocation (the function's name is kept only for frames without a line, so that
    /// binaries without debug info still group by function).
    Lineno,
    /// By whole traceback (`'traceback'`).
    Traceback,
}

/// The blocks allocated at one place: their total size and count (Python's `Statistic`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc::{self, KeyType};
/// fn main() {
///     tracemalloc::start(1);
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let snapshot = tracemalloc::take_snapshot();
///     let top = &snapshot.statistics(KeyType::Traceback)[0];
///     println!("{top}"); // src/main.rs:5: size=1000 B, count=10, average=100 B
///     assert!(top.size >= 1000 && top.count >= 1);
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Statistic {
    /// The place: one frame (by line or file) or a whole traceback.
    pub traceback: Traceback,
    /// Total size in bytes.
    pub size: usize,
    /// Number of blocks.
    pub count: usize,
}

/// A place's statistic in a snapshot, and how it changed from an older one (Python's
/// `StatisticDiff`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc::{self, KeyType};
/// fn main() {
///     tracemalloc::start(1);
///     let old = tracemalloc::take_snapshot();
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let new = tracemalloc::take_snapshot();
///     let grew = &new.compare_to(&old, KeyType::Lineno)[0];
///     println!("{grew}"); // src/main.rs:6: size=1000 B (+1000 B), count=10 (+10), average=100 B
///     assert!(grew.size_diff >= 1000);
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatisticDiff {
    /// The place.
    pub traceback: Traceback,
    /// Total size in bytes in the new snapshot.
    pub size: usize,
    /// New size minus old size.
    pub size_diff: isize,
    /// Number of blocks in the new snapshot.
    pub count: usize,
    /// New count minus old count.
    pub count_diff: isize,
}

/// The traces of the blocks alive when it was taken (Python's `tracemalloc.Snapshot`).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc::{self, KeyType};
/// fn main() {
///     tracemalloc::start(1);
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let snapshot = tracemalloc::take_snapshot();
///     for stat in snapshot.statistics(KeyType::Lineno).iter().take(3) {
///         println!("{stat}");
///     }
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    traces: Vec<Trace>,
    traceback_limit: usize,
}

/// A trace copied out of the table, its traceback not resolved yet.
#[derive(Clone, Copy)]
struct RawTrace {
    size: usize,
    domain: u16,
    limit: u16,
    tb: usize,
}

/// Take a snapshot of the traces of the live blocks (Python's `tracemalloc.take_snapshot()`),
/// resolving their frames. Empty when not tracing (`stop` forgets every trace).
///
/// Threads allocate and free meanwhile: each of the 16 trace shards is copied under its
/// lock (a copy of plain records, no allocation under the lock), so a block is in the
/// snapshot if it was alive when its shard was copied. Resolving symbols takes the time
/// (the first snapshot of a process loads the debug info); it runs with no trace lock held.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
///     let snapshot = tracemalloc::take_snapshot();
///     assert!(snapshot.traces().iter().filter(|t| t.size == 100).count() >= 10);
///     drop(blocks);
///     tracemalloc::stop();
/// }
/// ```
pub fn take_snapshot() -> Snapshot {
    // Before the lock, which the first allocation's `PYHEAP_TRACEMALLOC` takes.
    crate::alloc::hooks::ensure_init();
    let _g = super::control();
    untraced(|| {
        let mut raw: Vec<RawTrace> = Vec::new();
        for i in 0..SHARDS {
            loop {
                let n = TABLE.shards.with(i, |s| s.traces.len());
                raw.reserve(n + 16);
                let copied = TABLE.shards.with(i, |s| {
                    if s.traces.len() > raw.capacity() - raw.len() {
                        return false;
                    }
                    s.traces.for_each(|_, t| {
                        raw.push(RawTrace {
                            size: t.size,
                            domain: t.domain,
                            limit: t.limit,
                            tb: t.tb,
                        });
                    });
                    true
                });
                if copied {
                    break;
                }
            }
        }
        let limit = super::nframes();
        let mut resolver = Resolver::new();
        let mut tracebacks: HashMap<(usize, u16), Traceback> = HashMap::new();
        let traces = raw
            .iter()
            .map(|r| {
                let traceback = tracebacks
                    .entry((r.tb, r.limit))
                    .or_insert_with(|| {
                        // SAFETY: a traceback of the table; `clear` (which unmaps them) waits
                        // for the control lock we hold.
                        let frames = unsafe { TbStore::frames(r.tb) };
                        resolver.traceback(frames, usize::from(r.limit))
                    })
                    .clone();
                Trace {
                    domain: r.domain,
                    size: r.size,
                    traceback,
                }
            })
            .collect();
        Snapshot {
            traces,
            traceback_limit: limit,
        }
    })
}

fn key_of(tb: &Traceback, key: KeyType) -> Traceback {
    match key {
        KeyType::Traceback => tb.clone(),
        KeyType::Lineno => Traceback::new(tb.line().map(Frame::line_only).into_iter().collect()),
        KeyType::Filename => Traceback::new(tb.line().map(Frame::file_only).into_iter().collect()),
    }
}

impl Snapshot {
    /// The traces (Python's `Snapshot.traces`), in no particular order.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     let total: usize = snapshot.traces().iter().map(|t| t.size).sum();
    ///     assert!(total >= 1000);
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn traces(&self) -> &[Trace] {
        &self.traces
    }

    /// The traceback limit when the snapshot was taken.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     tracemalloc::start(4);
    ///     assert_eq!(tracemalloc::take_snapshot().traceback_limit(), 4);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn traceback_limit(&self) -> usize {
        self.traceback_limit
    }

    /// The traces kept by `filters` (Python's `Snapshot.filter_traces`): a trace is kept if
    /// it matches at least one inclusive filter (when there is any) and every exclusive one;
    /// no filter keeps everything.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     use tracemalloc::{Filter, POOL_DOMAIN};
    ///     let pool_only = snapshot.filter_traces(&[Filter::domain_only(true, POOL_DOMAIN)]);
    ///     assert!(pool_only.traces().iter().all(|t| t.domain == POOL_DOMAIN));
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn filter_traces(&self, filters: &[Filter]) -> Snapshot {
        let (inc, exc): (Vec<&Filter>, Vec<&Filter>) = filters.iter().partition(|f| f.inclusive);
        let traces = self
            .traces
            .iter()
            .filter(|t| {
                (inc.is_empty() || inc.iter().any(|f| f.matches(t)))
                    && exc.iter().all(|f| f.matches(t))
            })
            .cloned()
            .collect();
        Snapshot {
            traces,
            traceback_limit: self.traceback_limit,
        }
    }

    fn group_by(&self, key: KeyType, cumulative: bool) -> HashMap<Traceback, (usize, usize)> {
        let mut groups: HashMap<Traceback, (usize, usize)> = HashMap::new();
        let mut keys: HashMap<&Traceback, Traceback> = HashMap::new();
        for t in &self.traces {
            if cumulative && key != KeyType::Traceback {
                let mut seen = std::collections::HashSet::new();
                for f in t.traceback.frames() {
                    let k = Traceback::new(vec![if key == KeyType::Filename {
                        f.file_only()
                    } else {
                        f.line_only()
                    }]);
                    if seen.insert(k.clone()) {
                        let g = groups.entry(k).or_default();
                        g.0 += t.size;
                        g.1 += 1;
                    }
                }
                continue;
            }
            let k = keys
                .entry(&t.traceback)
                .or_insert_with(|| key_of(&t.traceback, key))
                .clone();
            let g = groups.entry(k).or_default();
            g.0 += t.size;
            g.1 += 1;
        }
        groups
    }

    /// Statistics grouped by `key`, largest first (Python's `Snapshot.statistics`: sorted by
    /// size, then count, then place, descending).
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc::{self, KeyType};
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     let stats = snapshot.statistics(KeyType::Lineno);
    ///     assert!(stats.windows(2).all(|w| w[0].size >= w[1].size)); // largest first
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn statistics(&self, key: KeyType) -> Vec<Statistic> {
        self.statistics_impl(key, false)
    }

    /// As [`Snapshot::statistics`] with `cumulative=True`: a block counts toward every frame
    /// of its traceback (once per distinct frame), not only the most recent. For
    /// [`KeyType::Traceback`] this is the same as `statistics`.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc::{self, KeyType};
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let snapshot = tracemalloc::take_snapshot();
    ///     let total: usize = snapshot.traces().iter().map(|t| t.size).sum();
    ///     // With one frame a traceback, cumulative statistics are the plain ones.
    ///     let cumulative: usize = snapshot.cumulative_statistics(KeyType::Lineno).iter().map(|s| s.size).sum();
    ///     assert_eq!(cumulative, total);
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn cumulative_statistics(&self, key: KeyType) -> Vec<Statistic> {
        self.statistics_impl(key, true)
    }

    fn statistics_impl(&self, key: KeyType, cumulative: bool) -> Vec<Statistic> {
        let mut stats: Vec<Statistic> = self
            .group_by(key, cumulative)
            .into_iter()
            .map(|(traceback, (size, count))| Statistic {
                traceback,
                size,
                count,
            })
            .collect();
        stats.sort_by(|a, b| (b.size, b.count, &b.traceback).cmp(&(a.size, a.count, &a.traceback)));
        stats
    }

    /// What changed from `old`, grouped by `key` (Python's `Snapshot.compare_to`): every place
    /// in either snapshot, sorted by the absolute size difference, then size, then absolute
    /// count difference, then count, then place, descending. A place only in `old` has size
    /// and count 0 and negative differences.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc::{self, KeyType};
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let old = tracemalloc::take_snapshot();
    ///     let blocks: Vec<Box<[u8; 100]>> = (0..10).map(|_| Box::new([0; 100])).collect();
    ///     let new = tracemalloc::take_snapshot();
    ///     let diffs = new.compare_to(&old, KeyType::Lineno);
    ///     assert!(diffs.iter().map(|d| d.size_diff).sum::<isize>() >= 1000);
    ///     drop(blocks);
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn compare_to(&self, old: &Snapshot, key: KeyType) -> Vec<StatisticDiff> {
        let new_g = self.group_by(key, false);
        let mut old_g = old.group_by(key, false);
        let mut diffs: Vec<StatisticDiff> = new_g
            .into_iter()
            .map(|(traceback, (size, count))| {
                let (os, oc) = old_g.remove(&traceback).unwrap_or((0, 0));
                StatisticDiff {
                    traceback,
                    size,
                    size_diff: size as isize - os as isize,
                    count,
                    count_diff: count as isize - oc as isize,
                }
            })
            .collect();
        diffs.extend(
            old_g
                .into_iter()
                .map(|(traceback, (size, count))| StatisticDiff {
                    traceback,
                    size: 0,
                    size_diff: -(size as isize),
                    count: 0,
                    count_diff: -(count as isize),
                }),
        );
        diffs.sort_by(|a, b| {
            (
                b.size_diff.unsigned_abs(),
                b.size,
                b.count_diff.unsigned_abs(),
                b.count,
                &b.traceback,
            )
                .cmp(&(
                    a.size_diff.unsigned_abs(),
                    a.size,
                    a.count_diff.unsigned_abs(),
                    a.count,
                    &a.traceback,
                ))
        });
        diffs
    }
}
