//! The shared object space of `pyheap::Gc`: one set of generations for the whole process,
//! kept in per-thread *shards*, and the background thread that runs automatic collections.
//!
//! # Shards and locks (`docs/concurrency.md` §2.4, §0)
//!
//! Every thread that creates tracked objects gets a [`Shard`]: its own generation lists
//! (0, 1, 2 and permanent) behind its own lock. A tracked object stays in the shard that
//! created it for its whole life; its shard id, in its counts, is set before it is first
//! linked and never changes. So:
//!
//! * **a shard's lists, and the links of every object in them, are only touched by a thread
//!   holding that shard's lock** (the one invariant of this file). Creating an object locks
//!   the creating thread's shard; the last drop, `get_mut` and a later re-link lock the
//!   object's shard (read from the object, no retry needed since it never changes);
//! * **a collection holds the space lock and every shard's lock** (taken in id order) for its
//!   scan: it splices the generations being collected out of every shard into one list
//!   (`with_scan_state`), runs the collector's passes on it, and gives each survivor back to
//!   its own shard's next generation. It runs no user code meanwhile (only `Trace` impls,
//!   which never block);
//! * mutators hold at most one shard lock and never the space lock together with it, and the
//!   collector waits for nothing while holding them: no deadlock. A mutator whose last drop
//!   waits for its shard's lock during a scan keeps its object out of the garbage (its count
//!   is zero: a root, see `collect::find_roots`) and destroys it after the scan.
//!
//! Threads share nothing on the allocation path but their own shard's lock (uncontended unless
//! a scan runs or another thread drops one of its objects). A thread that exits hands its shard
//! back (its objects stay, still scanned); the next new thread adopts it. Threads beyond
//! `MAX_SHARDS`, and threads allocating after their thread-locals are gone, use shard 0.
//!
//! # Counting and automatic collection
//!
//! Each shard counts its creations minus deaths under its lock and adds them to the space's
//! `young` count every `BATCH`; past `threshold0` the thread that flushed raises `pending`
//! (once for any number of racing threads), runs the due generation's *scan* itself (no user
//! code runs in a scan) and queues the garbage found for the collector thread (spawned on
//! first need), which runs the teardown — finalizers, `Drop`s — with no caller lock held: a
//! garbage object's `Drop` that needs a `Mutex` the allocating thread holds then simply waits
//! for it, instead of deadlocking that thread (§5.1). An explicit `collect()` finishes the
//! queued teardowns itself and waits for the one the collector thread is running.
//! `gc::count().0` is exact up to `BATCH` per thread.

use core::cell::Cell;

use crate::gc::collect::{self, Garbage};
use crate::gc::debug::{CollectionInfo, Phase};
use crate::gc::destroy::destroy;
use crate::gc::flavor::{CollectionToken, Flavor};
use crate::gc::generations::{GenState, NUM_GENERATIONS};
use crate::gc::header::{counts_of, Counts, Links, FLAG_DEAD, FLAG_UNIQUE};
use crate::gc::list;
use crate::gc::panics::FirstPanic;
use crate::sync::{fence, AtomicBool, AtomicPtr, AtomicUsize, Mutex, MutexGuard, Ordering};

use super::counts::SharedCounts;
use super::fairness::{self, lock_counted};

/// How many shards exist at most (threads beyond this share shard 0).
#[cfg(not(loom))]
const MAX_SHARDS: usize = 256;
#[cfg(loom)]
const MAX_SHARDS: usize = 4;
/// A shard adds its young count to the space's every `BATCH` creations (or deaths); every
/// one under loom, so that the models see each crossing of the threshold.
const BATCH: isize = if cfg!(loom) { 1 } else { 32 };
/// "No shard yet" in the thread-local slot.
const NO_SHARD: u32 = u32::MAX;

/// One thread's part of the object space: generation lists behind a lock.
pub(crate) struct Shard {
    lock: Mutex<()>,
    /// Only its lists are used (thresholds and statistics live in the space's `GenState`).
    lists: GenState,
    /// Creations minus deaths not yet added to `SharedSpace::young`.
    unflushed: Cell<isize>,
}

// SAFETY: `lists` and `unflushed` (and the links of the objects in the lists) are only used
// by a thread holding `lock` (the invariant of this module); the objects are `Send + Sync`.
unsafe impl Sync for Shard {}
// SAFETY: as above.
unsafe impl Send for Shard {}

impl Shard {
    /// A new shard, leaked (shards live as long as the process), its lists initialised.
    fn leak() -> &'static Shard {
        let sh: &'static Shard = Box::leak(Box::new(Shard {
            lock: Mutex::new(()),
            lists: GenState::new(),
            unflushed: Cell::new(0),
        }));
        // SAFETY: the shard never moves (leaked box).
        unsafe { sh.lists.init() };
        sh
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        lock_counted(&self.lock)
    }
}

/// What the space lock guards: the thresholds, statistics and the scan's working lists, and
/// the free shard ids.
pub(crate) struct Central {
    st: GenState,
    free: Vec<u32>,
}

// SAFETY: `Central` is only reached through the space `Mutex` (one thread at a time); the
// objects its lists link during a scan are `Send + Sync`.
unsafe impl Send for Central {}

/// Garbage found by automatic scans, waiting for teardown, and how many teardowns threads are
/// running right now (a queued batch, or an explicit collection from its scan to the end of
/// its teardown), for `gc::wait_for_teardowns`, the one thing that waits for them.
struct TeardownQueue {
    batches: std::collections::VecDeque<Garbage>,
    running: usize,
}

// SAFETY: a batch's pointers are to `Send + Sync` objects that only the batch's owner (the
// queue, then the one thread that pops it) may touch (Lemma A: nobody else can reach them).
unsafe impl Send for TeardownQueue {}

/// The process-wide object space.
pub(crate) struct SharedSpace {
    central: Mutex<Central>,
    /// Shard `i` (published with Release before any object carries id `i`; never freed).
    shards: Box<[AtomicPtr<Shard>]>,
    /// Number of shards published.
    nshards: AtomicUsize,
    /// Tracked creations minus deaths since generation 0 was last collected (flushed
    /// batches; an `isize` stored as `usize`).
    young: AtomicUsize,
    /// A copy of `threshold0` readable without the space lock.
    threshold0: AtomicUsize,
    /// `gc.isenabled()` for the shared space.
    pub(crate) enabled: AtomicBool,
    /// An automatic scan is running (or about to): other threads crossing the threshold
    /// meanwhile do not start another.
    pending: AtomicBool,
    /// Garbage sets found by automatic scans, waiting for their teardown on the collector
    /// thread (or on a thread running an explicit `collect()`, which takes them first). No
    /// pyheap lock is held while user code runs: teardowns of different sets may run at the
    /// same time on different threads, and nobody waits for a teardown (`pyheap::collect`).
    queue: Mutex<TeardownQueue>,
    /// Signalled when a teardown counted in `running` ends (`wait_for_teardowns`).
    #[cfg(not(loom))]
    batch_done: std::sync::Condvar,
    #[cfg(not(loom))]
    collector: super::collector::CollectorThread,
    /// Loom models only: how many times `pending` went from false to true.
    #[cfg(loom)]
    requests: crate::sync::StatCounter,
}

impl SharedSpace {
    fn new() -> Self {
        let shards: Box<[AtomicPtr<Shard>]> = (0..MAX_SHARDS)
            .map(|_| AtomicPtr::new(core::ptr::null_mut()))
            .collect();
        #[cfg(not(loom))]
        super::fork::register();
        let zero = Shard::leak();
        shards[0].store((zero as *const Shard).cast_mut(), Ordering::Release);
        let central = Central {
            st: GenState::new(),
            free: Vec::new(),
        };
        // `central.st` moves into the mutex below; `lock_central` initialises it in place.
        Self {
            central: Mutex::new(central),
            shards,
            nshards: AtomicUsize::new(1),
            young: AtomicUsize::new(0),
            threshold0: AtomicUsize::new(700),
            enabled: AtomicBool::new(true),
            pending: AtomicBool::new(false),
            queue: Mutex::new(TeardownQueue {
                batches: std::collections::VecDeque::new(),
                running: 0,
            }),
            #[cfg(not(loom))]
            batch_done: std::sync::Condvar::new(),
            #[cfg(not(loom))]
            collector: super::collector::CollectorThread::new(),
            #[cfg(loom)]
            requests: crate::sync::StatCounter::new(),
        }
    }

    /// Lock the space. Nothing panics under this lock (a panicking `Trace` aborts), so
    /// poisoning cannot happen; should it, the state is consistent and is used as is.
    fn lock_central(&self) -> MutexGuard<'_, Central> {
        let g = lock_counted(&self.central);
        // SAFETY: the state lives in the space, which is never moved (a static).
        unsafe { g.st.init() };
        g
    }

    /// Shard `id`.
    #[inline]
    fn shard(&self, id: u32) -> &'static Shard {
        let p = self.shards[id as usize].load(Ordering::Acquire);
        // SAFETY: ids are only handed out (and stored in objects) after their shard was
        // published with Release; shards are leaked, so the reference lives forever.
        unsafe { &*p }
    }

    /// The shard of the object at `links`.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor.
    #[inline]
    unsafe fn shard_of(&self, links: *const Links) -> &'static Shard {
        // SAFETY: per the caller; the id never changes after the object was first linked,
        // and whoever reaches the object synchronised with its creation.
        let id = unsafe { counts_of::<SharedCounts>(links) }
            .shard
            .load(Ordering::Relaxed);
        self.shard(id)
    }

    /// Run `f` with the thresholds, counts and statistics, under the space lock.
    #[inline]
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&GenState) -> R) -> R {
        let g = self.lock_central();
        let young = self.young.load(Ordering::Relaxed) as isize;
        g.st.gens[0].count.set(young.max(0) as usize);
        f(&g.st)
    }

    /// Run `f` under the space lock, which every scan holds from its first count read to its
    /// last condemnation (and the resurrection check throughout): `f` runs while no scan is
    /// deciding. For `SharedCounts::version_top_seen` (I8). The caller holds no lock of the
    /// space (so this waits at most for a scan).
    pub(crate) fn with_space_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.lock_central();
        f()
    }

    /// `gc.set_threshold` for the shared space.
    pub(crate) fn set_thresholds(&self, t0: usize, t1: usize, t2: usize) {
        self.with_state(|st| st.set_thresholds(t0, t1, t2));
        self.threshold0.store(t0, Ordering::Relaxed);
    }

    /// Run `f` with the space lock and every shard's lock held, and the generations
    /// `0..=gen` of every shard spliced into the central lists; then give the objects left in
    /// the generation survivors go to back to their shards. With `gen == NUM_GENERATIONS`,
    /// nothing is spliced (`f` gets the shards through `each_shard` instead).
    fn with_all_locked<R>(
        &self,
        gen: usize,
        f: impl FnOnce(&GenState, &[&'static Shard]) -> R,
    ) -> R {
        fairness::before_scan();
        let central = self.lock_central();
        let n = self.nshards.load(Ordering::Acquire);
        let shards: Vec<&'static Shard> = (0..n as u32).map(|i| self.shard(i)).collect();
        let guards: Vec<MutexGuard<'_, ()>> = shards.iter().map(|s| s.lock()).collect();
        let held = fairness::LocksTaken::now();
        let st = &central.st;
        let young = self.young.load(Ordering::Relaxed);
        st.gens[0].count.set((young as isize).max(0) as usize);
        if gen < NUM_GENERATIONS {
            for sh in &shards {
                for g in 0..=gen {
                    // SAFETY: we hold the shard's lock and the space lock; both lists intact.
                    unsafe { list::merge(sh.lists.gen_head(g), st.gen_head(g)) };
                }
            }
        }
        let r = f(st, &shards);
        if gen < NUM_GENERATIONS {
            // The collector merged everything it kept into one central generation; the other
            // central lists are empty again. Give each object back to its own shard.
            for g in 0..NUM_GENERATIONS {
                let head = st.gen_head(g);
                // SAFETY: all locks are held; the central list is intact; every object in it
                // is live and carries the id of a published shard.
                unsafe {
                    while !list::is_empty(head) {
                        let p = (*head).next.get();
                        list::unlink(p);
                        list::push_back(self.shard_of(p).lists.gen_head(g), p);
                    }
                }
            }
        }
        if st.gens[0].count.get() == 0 {
            // Generation 0 was emptied: take back what was counted up to our reading, with a
            // read-modify-write, so that counts flushed since (their objects may or may not
            // have been in this scan: an over-count only brings the next collection forward)
            // are not lost, as a store of 0 could lose them (a loom model found that).
            self.sub_young(young);
            for sh in &shards {
                sh.unflushed.set(0);
            }
        }
        fairness::after_scan(held);
        drop(guards);
        drop(central);
        r
    }

    /// `gc.freeze()`, `gc.unfreeze()` and `gc.get_freeze_count()` over every shard.
    pub(crate) fn freeze(&self) {
        self.with_all_locked(NUM_GENERATIONS, |st, shards| {
            for sh in shards {
                // SAFETY: the shard's lock is held.
                unsafe { sh.lists.freeze() };
            }
            st.gens[0].count.set(0);
        })
    }

    /// See [`SharedSpace::freeze`].
    pub(crate) fn unfreeze(&self) {
        self.with_all_locked(NUM_GENERATIONS, |_, shards| {
            for sh in shards {
                // SAFETY: the shard's lock is held.
                unsafe { sh.lists.unfreeze() };
            }
        })
    }

    /// See [`SharedSpace::freeze`].
    pub(crate) fn freeze_count(&self) -> usize {
        self.with_all_locked(NUM_GENERATIONS, |_, shards| {
            // SAFETY: the shards' locks are held.
            shards
                .iter()
                .map(|sh| unsafe { sh.lists.freeze_count() })
                .sum()
        })
    }

    /// Number of objects linked into the space's lists (every shard's generations and
    /// permanent lists). Objects under `get_mut` and garbage being torn down are in none.
    #[cfg(loom)]
    pub(crate) fn tracked_count(&self) -> usize {
        self.with_all_locked(NUM_GENERATIONS, |_, shards| {
            let mut n = 0;
            for sh in shards {
                for g in 0..NUM_GENERATIONS {
                    // SAFETY: the shard's lock is held; its lists are intact.
                    n += unsafe { list::len(sh.lists.gen_head(g)) };
                }
                // SAFETY: as above.
                n += unsafe { list::len(&sh.lists.permanent) };
            }
            n
        })
    }

    /// This thread's shard id (taking one on first use; 0 once its thread-locals are gone).
    fn my_shard(&self) -> u32 {
        SHARD
            .try_with(|slot| {
                let id = slot.0.get();
                if id != NO_SHARD {
                    return id;
                }
                let id = self.acquire_shard();
                slot.0.set(id);
                id
            })
            .unwrap_or(0)
    }

    /// A free shard, or a new one, or shard 0 if `MAX_SHARDS` exist.
    fn acquire_shard(&self) -> u32 {
        let mut c = self.lock_central();
        if let Some(id) = c.free.pop() {
            return id;
        }
        let n = self.nshards.load(Ordering::Relaxed);
        if n == MAX_SHARDS {
            return 0;
        }
        let sh = Shard::leak();
        self.shards[n].store((sh as *const Shard).cast_mut(), Ordering::Release);
        self.nshards.store(n + 1, Ordering::Release);
        n as u32
    }

    /// An exiting thread's shard goes back to the free list (its objects stay in it).
    fn release_shard(&self, id: u32) {
        self.lock_central().free.push(id);
    }

    /// Take `n` off the young count, stopping at zero (a read-modify-write loop: counts
    /// flushed concurrently are never lost).
    fn sub_young(&self, n: usize) {
        let mut cur = self.young.load(Ordering::Relaxed);
        loop {
            let new = (cur as isize).saturating_sub(n as isize).max(0) as usize;
            match self
                .young
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Add `delta` to the young count; past the threshold, request an automatic collection.
    fn add_young(&self, delta: isize) {
        if delta < 0 {
            // Deaths bring the count down, but never below zero (CPython's `count > 0` test
            // in `PyObject_GC_Del`): the deaths of old objects must not leave credit that
            // delays the next young collection indefinitely (a million-node chain dropped
            // after its nodes were promoted would otherwise hold it off for a million
            // allocations; a test found it).
            self.sub_young(delta.unsigned_abs());
            return;
        }
        let y =
            (self.young.fetch_add(delta as usize, Ordering::Relaxed) as isize).wrapping_add(delta);
        let t = self.threshold0.load(Ordering::Relaxed);
        if delta > 0 && t != 0 && y > t as isize && self.enabled.load(Ordering::Relaxed) {
            // Pairs with the fence in `request_collection` (store `pending`, fence, load
            // `young`): either that scanner sees our count, or we see `pending` cleared.
            fence(Ordering::SeqCst);
            self.request_collection();
        }
    }

    /// Link a new, fully built tracked object into generation 0 of this thread's shard.
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor in no list, not yet
    /// reachable by other threads.
    pub(crate) unsafe fn track_new(&self, links: *const Links) {
        let id = self.my_shard();
        // SAFETY: per the caller the object is ours alone; its id is set before it is
        // linked, never to change.
        unsafe { counts_of::<SharedCounts>(links) }
            .shard
            .store(id, Ordering::Relaxed);
        let sh = self.shard(id);
        let g = sh.lock();
        // SAFETY: the shard's lock is held; `links` is unlinked per the caller.
        unsafe { list::push_back(sh.lists.gen_head(0), links) };
        let u = sh.unflushed.get() + 1;
        if u >= BATCH {
            sh.unflushed.set(0);
            drop(g);
            self.add_young(u);
        } else {
            sh.unflushed.set(u);
        }
    }

    /// Take a live tracked object out of its generation (`try_unwrap`, a death).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor.
    pub(crate) unsafe fn untrack(&self, links: *const Links) {
        // SAFETY: per the caller.
        let sh = unsafe { self.shard_of(links) };
        let g = sh.lock();
        // SAFETY: the object's shard lock is held; a self-loop stays one.
        unsafe { list::unlink(links) };
        let u = sh.unflushed.get() - 1;
        if u <= -BATCH {
            sh.unflushed.set(0);
            drop(g);
            self.add_young(u);
        } else {
            sh.unflushed.set(u);
        }
    }

    /// Generation 0 crossed its threshold: run the due scan **on this thread** (once for any
    /// number of racing threads), and hand the garbage it finds to the collector thread for
    /// its teardown.
    ///
    /// Why here and why split: a scan runs no user code (only `Trace` impls, which never
    /// block), so it is safe on any thread whatever locks that thread holds, and doing it at
    /// the threshold keeps the young generation at its configured size (CPython's cadence;
    /// a collector thread that scans too falls behind a fast allocator, see BENCHMARKS.md).
    /// The teardown runs `Drop`s and finalizers: on the collector thread, where no caller
    /// lock is held (§5.1). After the scan `pending` is cleared and the threshold checked
    /// again, so a crossing skipped while this scan ran is not lost.
    fn request_collection(&self) {
        loop {
            if self.pending.swap(true, Ordering::AcqRel) {
                return;
            }
            #[cfg(loom)]
            self.requests.add_shared(1);
            let garbage = self
                .with_state(|st| st.generation_due())
                .map(collect::scan_generation::<Shared>);
            self.pending.store(false, Ordering::Release);
            if let Some(g) = garbage {
                self.hand_over(g);
            }
            // A thread whose count crossed the threshold while we scanned found `pending` set
            // and left. Store-buffering: it wrote `young` then read `pending`, we wrote
            // `pending` then read `young`; with a SeqCst fence on both sides (the other in
            // `add_young`) at least one of us sees the other's write, so its crossing is not
            // lost (loom model M7 found the race without them).
            fence(Ordering::SeqCst);
            let young = self.young.load(Ordering::Relaxed) as isize;
            let t = self.threshold0.load(Ordering::Relaxed);
            if t == 0 || young <= t as isize || !self.enabled.load(Ordering::Relaxed) {
                return;
            }
        }
    }

    /// Queue a scan's garbage for teardown (or record an empty collection at once).
    fn hand_over(&self, g: Garbage) {
        if g.set.is_empty() && !super::callbacks::has_callbacks() {
            return;
        }
        self.lock_queue().batches.push_back(g);
        #[cfg(not(loom))]
        self.collector.wake();
    }

    fn lock_queue(&self) -> MutexGuard<'_, TeardownQueue> {
        // Nothing panics under this lock.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loom models only: whether an automatic scan is running.
    #[cfg(loom)]
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Loom models only: how many scans were requested (`pending` from false to true).
    #[cfg(loom)]
    pub(crate) fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Tear down the queued garbage sets on this thread (the collector thread's loop body;
    /// an explicit `collect()` also calls it; under loom the models do). Returns the number
    /// of objects freed; panics of their user code are kept in `panics` (every set is torn
    /// down all the same). A `collect()` called from one of these `Drop`s returns 0.
    pub(crate) fn service_pending(&self, panics: &mut FirstPanic) -> usize {
        let token = Shared::enter_teardown();
        let freed = self.drain_batches(panics);
        drop(token);
        freed
    }

    /// The collector thread's loop body: [`SharedSpace::service_pending`], with the first
    /// panic reported on stderr (`context`) before the teardown counts as ended, so that a
    /// `wait_for_teardowns` returns after the report (a program that exits right after it
    /// does not lose it).
    #[cfg(not(loom))]
    pub(crate) fn service_pending_reporting(&self, context: &str) {
        let token = Shared::enter_teardown();
        let mut panics = FirstPanic::new();
        self.drain_batches(&mut panics);
        panics.report(context);
        drop(token);
    }

    /// Tear down the queued batches, one at a time, until the queue is empty.
    fn drain_batches(&self, panics: &mut FirstPanic) -> usize {
        let mut freed = 0;
        loop {
            let Some(g) = self.lock_queue().batches.pop_front() else {
                break;
            };
            // SAFETY: the batch came from `scan_generation` through the queue, which hands
            // each batch to one thread once.
            freed += unsafe { collect::finish_notified::<Shared>(g, panics) };
        }
        freed
    }

    /// A teardown counted in `running` ended.
    fn teardown_ended(&self) {
        // Saturating: a fork from inside a teardown leaves the child's count reset under it.
        let mut q = self.lock_queue();
        q.running = q.running.saturating_sub(1);
        drop(q);
        #[cfg(not(loom))]
        self.batch_done.notify_all();
    }

    /// `gc::wait_for_teardowns`: tear down the queued batches here, then wait until no other
    /// thread is running a teardown (a batch, or an explicit collection). Returns the objects freed here. From a `Drop` a teardown on this
    /// thread runs, returns 0 at once (never waits for itself).
    pub(crate) fn wait_for_teardowns(&self, panics: &mut FirstPanic) -> usize {
        if COLLECTING.with(|c| c.get()) {
            return 0;
        }
        let freed = self.service_pending(panics);
        let mut q = self.lock_queue();
        while q.running > 0 || !q.batches.is_empty() {
            #[cfg(not(loom))]
            {
                q = self.batch_done.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            #[cfg(loom)]
            {
                drop(q);
                crate::sync::spin_wait(0);
                q = self.lock_queue();
            }
        }
        freed
    }

    /// After an explicit collection: tear down here the garbage automatic scans queued and no
    /// thread has started on. A batch another thread is tearing down (the collector thread,
    /// or another `collect()`) is not waited for: one of its `Drop`s may be waiting for this
    /// thread (issue 12: that wait was a deadlock). Returns the objects freed here.
    pub(crate) fn finish_pending(&self, panics: &mut FirstPanic) -> usize {
        if COLLECTING.with(|c| c.get()) {
            // Called from a `Drop` of a teardown on this thread: never wait for ourselves.
            return 0;
        }
        self.service_pending(panics)
    }

    /// The collector thread's wait for a request.
    #[cfg(not(loom))]
    pub(crate) fn collector_wait(&self) {
        self.collector.wait()
    }

    /// `get_mut`: take the object out of the generations (once) and mark it `FLAG_UNIQUE`, so
    /// no scan reads the value while the `&mut` may live. Waits out a running scan. False if
    /// the object is not unique after all (introspection took a handle meanwhile).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor whose only handle was
    /// the caller's (strong 1, no `Weak`) when it checked, and the caller holds that handle
    /// mutably borrowed.
    pub(crate) unsafe fn untrack_unique(&self, links: *const Links) -> bool {
        // SAFETY: per the caller.
        let sh = unsafe { self.shard_of(links) };
        let _g = sh.lock();
        // SAFETY: under the object's shard lock; per the caller.
        unsafe {
            // Uniqueness again, under the lock: the caller's check raced with introspection
            // (`gc::get_objects`, `get_referents`), which takes handles holding every shard
            // lock; with this one held no such handle appears, and once the flag is set and
            // the object unlinked, introspection neither finds nor takes it. (Other threads
            // cannot make a handle otherwise: the caller's is the only one, and no `Weak`.)
            let c = counts_of::<SharedCounts>(links);
            if c.strong() != 1 || c.weak() != 1 {
                return false;
            }
            if SharedCounts::flags(links) & FLAG_UNIQUE == 0 {
                list::unlink(links);
                SharedCounts::set_flag(links, FLAG_UNIQUE);
            }
        }
        true
    }

    /// A shared use of a `FLAG_UNIQUE` object's handle proves `get_mut`'s borrow over: put it
    /// back into generation 0 of its shard (unless a collection already did).
    ///
    /// # Safety
    /// `links` is the header of a live tracked object of this flavor.
    pub(crate) unsafe fn retrack(&self, links: *const Links) {
        // SAFETY: per the caller.
        let sh = unsafe { self.shard_of(links) };
        let _g = sh.lock();
        // SAFETY: under the object's shard lock; the flag says whether it is in a list.
        unsafe {
            if SharedCounts::flags(links) & FLAG_UNIQUE != 0 {
                SharedCounts::clear_flag(links, FLAG_UNIQUE);
                list::push_back(sh.lists.gen_head(0), links);
            }
        }
    }
}

/// Every lock of the shared space, held by the forking thread across `fork()` (`fork.rs`).
/// Fields drop in order, which unlocks them.
#[cfg(not(loom))]
pub(crate) struct ForkGuards {
    _central: MutexGuard<'static, Central>,
    _shards: [Option<MutexGuard<'static, ()>>; MAX_SHARDS],
    _spares: crate::gc::scratch::SparesGuard,
    queue: MutexGuard<'static, TeardownQueue>,
    _wake: MutexGuard<'static, bool>,
}

#[cfg(not(loom))]
impl SharedSpace {
    /// `fork()` prepare handler: take every lock of the space, in the scan's order (the space
    /// lock, the shards by id) and then the leaf locks (kept vectors, teardown queue,
    /// collector wake-up), which no holder keeps while waiting for anything. Only scans and
    /// the operations of mutators and of the collector thread hold these locks, none of
    /// them waits for the forking thread, and the forking thread holds none of them (it runs
    /// user code): so this waits at most for a scan to end. The `collection` lock is not
    /// taken: its holder runs user `Drop`s, which may wait for the forking thread.
    pub(crate) fn lock_for_fork(&'static self) -> ForkGuards {
        let central = self.lock_central();
        let n = self.nshards.load(Ordering::Acquire);
        let mut shards = [const { None }; MAX_SHARDS];
        for (i, slot) in shards.iter_mut().enumerate().take(n) {
            *slot = Some(self.shard(i as u32).lock());
        }
        ForkGuards {
            _central: central,
            _shards: shards,
            _spares: crate::gc::scratch::lock_spares(),
            queue: self.lock_queue(),
            _wake: self.collector.lock_for_fork(),
        }
    }

    /// `fork()` child handler, with the locks still held: the child has one thread, the one
    /// that forked. Forget the others: a teardown the collector thread was running is
    /// abandoned (its objects stay allocated, unreachable: a leak, never a use), the queued
    /// sets wait for the child's own collector thread or `collect()`, threads counted as
    /// blocked are gone, an automatic scan another thread requested is forgotten, and a
    /// `collection` lock held by another thread is replaced.
    pub(crate) fn after_fork_in_child(&'static self, guards: &mut ForkGuards) {
        // A batch a thread that did not come along was tearing down is abandoned (its
        // objects leaked, never used).
        guards.queue.running = 0;
        // An automatic scan another thread had requested (or was running) will not finish
        // here: without this, no automatic collection would ever run in the child.
        self.pending.store(false, Ordering::Relaxed);
        self.collector.forget_thread();
        fairness::reset_in_child();
    }
}

/// This thread's shard id; gives it back when the thread exits.
struct ShardSlot(Cell<u32>);

impl ShardSlot {
    /// Hand the shard back (what a thread's exit does).
    fn release(&self) {
        let id = self.0.replace(NO_SHARD);
        if id != NO_SHARD && id != 0 {
            space().release_shard(id);
        }
    }
}

impl Drop for ShardSlot {
    fn drop(&mut self) {
        // Under loom a thread's thread-locals are destroyed by loom's `thread_done` (the main
        // thread's after the execution's statics, the space among them), and handing shards
        // back from there crashed the models with heap corruption (cause not found): so loom
        // threads keep their shards on exit; the models simulate an exit with
        // `gc::model::release_my_shard`, which runs the same `release`.
        #[cfg(not(loom))]
        self.release();
    }
}

/// Loom models only: the calling thread hands its shard back as its exit would (a later
/// thread adopts it); a later allocation on this thread takes a shard again.
#[cfg(loom)]
pub(crate) fn release_my_shard() {
    SHARD.with(|slot| slot.release());
}

/// Loom models only: this thread's shard id (taking one if it has none).
#[cfg(loom)]
pub(crate) fn my_shard_id() -> u32 {
    space().my_shard()
}

#[cfg(not(loom))]
static SPACE: std::sync::LazyLock<SharedSpace> = std::sync::LazyLock::new(SharedSpace::new);

#[cfg(loom)]
loom::lazy_static! {
    static ref SPACE: SharedSpace = SharedSpace::new();
}

/// The shared space.
#[inline]
pub(crate) fn space() -> &'static SharedSpace {
    &SPACE
}

crate::sync::thread_local! {
    /// This thread's shard.
    static SHARD: ShardSlot = const { ShardSlot(Cell::new(NO_SHARD)) };
    /// This thread is running a collection of the shared space (re-entrant `collect()` from a
    /// `Drop` returns 0).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
    /// This thread is destroying shared objects; new deaths go onto `PENDING`.
    static DROPPING: Cell<bool> = const { Cell::new(false) };
    /// Objects whose destruction is queued, linked through their own `next` (they are in no
    /// list, and no other thread can reach them: their strong count is zero).
    static PENDING: Cell<*const Links> = const { Cell::new(core::ptr::null()) };
}

/// Clears `DROPPING` when the outermost destroyer is done. If a `Drop` unwinds through it
/// (the refcount path, which propagates the panic as `Arc` does), the objects queued
/// meanwhile are destroyed first, still as the outermost destroyer (no recursion), their own
/// panics dropped: a second panic in flight would abort.
struct DroppingGuard;

impl DroppingGuard {
    fn enter() -> Self {
        DROPPING.with(|d| d.set(true));
        DroppingGuard
    }
}

impl Drop for DroppingGuard {
    fn drop(&mut self) {
        if !PENDING.with(|q| q.get()).is_null() {
            // Only when unwinding: the normal paths drain before the guard goes. Dropping the
            // `FirstPanic` discards what it caught.
            drain(&mut FirstPanic::new());
        }
        DROPPING.with(|d| d.set(false));
    }
}

/// Destroy every queued object (and those their drops queue), catching their panics.
fn drain(panics: &mut FirstPanic) {
    loop {
        let p = PENDING.with(|q| q.get());
        if p.is_null() {
            break;
        }
        // SAFETY: queued objects are dead, unlinked, with strong zero and their value not yet
        // dropped; the queue owns them. A panic leaves the object destroyed all the same
        // (`destroy`) and the queue intact.
        unsafe {
            PENDING.with(|q| q.set((*p).next.get()));
            (*p).next.set(p);
            panics.run(|| destroy::<SharedCounts>(p));
        }
    }
}

/// The thread-safe flavor, as the collector sees it.
pub(crate) enum Shared {}

impl Shared {
    /// Mark this thread as collecting while it tears down queued batches (so a `collect()`
    /// from their `Drop`s returns 0); nothing if it already is. Clears the mark when dropped.
    fn enter_teardown() -> Option<CollectionToken<Shared>> {
        if COLLECTING.with(|c| c.replace(true)) {
            None
        } else {
            // Counted until the token goes (`leave_collection`), for `wait_for_teardowns`.
            space().lock_queue().running += 1;
            Some(CollectionToken::new())
        }
    }
}

// SAFETY: `with_scan_state` holds the space lock and every shard's lock for the whole
// closure, with the generations asked for spliced into the central lists, so it gives
// exclusive use of every object of those generations; the rest keeps the stated contracts.
unsafe impl Flavor for Shared {
    type Counts = SharedCounts;
    const CONCURRENT: bool = true;

    #[inline]
    fn with_state<R>(f: impl FnOnce(&GenState) -> R) -> R {
        space().with_state(f)
    }

    fn with_scan_state<R>(gen: usize, f: impl FnOnce(&GenState) -> R) -> R {
        space().with_all_locked(gen, |st, _| f(st))
    }

    unsafe fn relink(links: *const Links, gen: usize) {
        // SAFETY: per the caller.
        let sh = unsafe { space().shard_of(links) };
        let _g = sh.lock();
        // SAFETY: under the object's shard lock; the object is a self-loop per the caller.
        unsafe { list::push_back(sh.lists.gen_head(gen), links) };
    }

    fn enter_collection() -> Option<CollectionToken<Self>> {
        if COLLECTING.with(|c| c.replace(true)) {
            return None;
        }
        // Counted until its teardown ends, for `wait_for_teardowns` (nothing else waits).
        space().lock_queue().running += 1;
        Some(CollectionToken::new())
    }

    fn leave_collection() {
        COLLECTING.with(|c| c.set(false));
        space().teardown_ended();
    }

    fn destroying<R>(panics: &mut FirstPanic, f: impl FnOnce(&mut FirstPanic) -> R) -> R {
        if DROPPING.with(|d| d.replace(true)) {
            return f(panics);
        }
        let _g = DroppingGuard;
        let r = f(panics);
        drain(panics);
        r
    }

    unsafe fn object_died(links: *const Links) {
        // SAFETY: per the caller a live tracked object with strong zero: no other thread can
        // reach it any more; unlinked under the lock, then ours alone.
        unsafe {
            space().untrack(links);
            SharedCounts::set_flag(links, FLAG_DEAD);
        }
        if DROPPING.with(|d| d.get()) {
            // SAFETY: the object is unlinked, so `next` is free to chain the queue.
            unsafe { (*links).next.set(PENDING.with(|q| q.get())) };
            PENDING.with(|q| q.set(links));
            return;
        }
        let _g = DroppingGuard::enter();
        if std::thread::panicking() {
            // A death during another panic's unwinding (`gc::panics`): no second panic may
            // escape. The guard drains the queue the same way when it goes.
            // SAFETY: as below.
            crate::gc::panics::while_unwinding(|| unsafe { destroy::<SharedCounts>(links) });
            return;
        }
        // SAFETY: dead, unlinked, strong zero, value not dropped: ours to destroy. A panic
        // unwinds through the guard, which destroys what was queued meanwhile.
        unsafe { destroy::<SharedCounts>(links) };
        if !PENDING.with(|q| q.get()).is_null() {
            let mut panics = FirstPanic::new();
            drain(&mut panics);
            panics.resume();
        }
    }

    fn for_each_tracked(gen: Option<usize>, f: &mut dyn FnMut(Option<*const Links>)) {
        space().with_all_locked(NUM_GENERATIONS, |_, shards| {
            let f = &mut *f;
            let mut each = |p| f(Some(p));
            let gens = match gen {
                None => 0..NUM_GENERATIONS,
                Some(g) => g.min(NUM_GENERATIONS)..(g + 1).min(NUM_GENERATIONS),
            };
            for sh in shards {
                for g in gens.clone() {
                    // SAFETY: every shard's lock is held (and the space lock: no scan), so the
                    // lists are intact and nothing links or unlinks meanwhile; `f` does not.
                    unsafe { list::for_each_node(sh.lists.gen_head(g), &mut each) };
                }
                if gen.is_none() {
                    // SAFETY: as above.
                    unsafe { list::for_each_node(&sh.lists.permanent, &mut each) };
                }
            }
            // Still under every lock: the walk's tracer (if any) drops here.
            f(None);
        })
    }

    fn with_walk_locks(f: &mut dyn FnMut()) {
        space().with_all_locked(NUM_GENERATIONS, |_, _| f())
    }

    unsafe fn acquire_in_walk(p: *const Links) -> bool {
        // SAFETY: per the caller the object is alive; the walk holds the space lock.
        unsafe { counts_of::<SharedCounts>(p).try_acquire_under_space_lock() }
    }

    unsafe fn clone_erased_locked(p: *const Links) {
        // SAFETY: per the caller the object is alive; the space lock is held.
        unsafe { counts_of::<SharedCounts>(p).clone_strong_under_space_lock() }
    }

    fn notify(phase: Phase, info: CollectionInfo, panics: &mut FirstPanic) {
        super::callbacks::notify(phase, info, panics)
    }

    fn has_callbacks() -> bool {
        super::callbacks::has_callbacks()
    }

    unsafe fn clone_erased(p: *const Links) {
        // SAFETY: per the caller the object is alive.
        unsafe { counts_of::<SharedCounts>(p).clone_strong() };
    }

    unsafe fn release_erased(p: *const Links) {
        // As `Gc::drop` for a tracked value.
        // SAFETY: per the caller we own a strong reference to the live object `p`.
        unsafe {
            if counts_of::<SharedCounts>(p).drop_strong() {
                if SharedCounts::flags(p) & FLAG_DEAD != 0 {
                    crate::gc::destroy::release_token::<SharedCounts>(p);
                } else {
                    Self::object_died(p);
                }
            }
        }
    }

    unsafe fn resurrected(set: &[*const Links]) -> Option<Vec<bool>> {
        // A validated scan of the set alone, under the space lock, which every scan holds
        // throughout: so no other scan reads or writes collection bits meanwhile (another
        // scan's tracer could otherwise meet a member through a live object's edge and take
        // its bits for its own).
        // SAFETY: per the caller the members are pinned, unlinked and not dead; the space
        // lock is held for the call, and only `Trace` impls run.
        Self::with_state(|_| unsafe {
            crate::gc::collect::validated_external_refs::<SharedCounts>(set)
        })
    }
}
