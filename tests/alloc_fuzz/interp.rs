//! Running a program: a coordinating thread (the child's main thread) walks the operations
//! and hands each to the worker thread that holds its slot, through a channel; workers run
//! their queues concurrently, so frees from other threads race with their owners' allocations.
//! The coordinator keeps the model (which slot holds what, and who holds it) and waits only
//! where the model needs a quiet thread (`Send`, `ThreadExit`) or a quiet program (`Stats`,
//! the end). Blocks live in [`SLOT_BLOCKS`], each slot touched only by its holder.

use crate::child::violation;
use crate::oracle::{self, check, check_align, check_zero, fill};
use crate::program::{Op, KIB, LARGE_ALIGN, LARGE_MAX, LARGE_MIN, MIB, SLOTS, THREADS};
use allocator_api2::alloc::Allocator;
use pyheap::alloc::{purge, set_purge_delay, stats, AllocStats};
use pyheap::PoolAlloc;
use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Most bytes live at once (requests), over all slots.
pub const LIVE_MAX: usize = 200 * MIB;
/// Most bytes in one slot's group of several blocks.
const GROUP_MAX: usize = 4 * MIB;

/// Deliberate bugs on the test's side, for the oracle's self-test (`oracle_selftest.rs`).
pub static SABOTAGE: AtomicU8 = AtomicU8::new(0);
/// `realloc` does not write the pattern into the bytes it adds.
pub const SAB_NO_FILL_AFTER_GROW: u8 = 1;
/// The large-block count expected is one more than the model's.
pub const SAB_LARGE_COUNT: u8 = 2;
/// The end frees every block but one.
pub const SAB_LEAK: u8 = 3;
/// The end counts one block fewer held by the program than there is (as if `PoolAlloc`
/// counted a freed block as in use).
pub const SAB_MISCOUNT: u8 = 4;
/// A forked child (`Op::Fork`) finds a block's pattern wrong.
pub const SAB_FORK_CHILD: u8 = 5;

/// A live block: address, request size and alignment, and the tag of its pattern.
struct Blk {
    p: usize,
    size: usize,
    align: usize,
    tag: u64,
}

static SLOT_BLOCKS: [Mutex<Vec<Blk>>; SLOTS] = [const { Mutex::new(Vec::new()) }; SLOTS];

fn blocks(slot: usize) -> std::sync::MutexGuard<'static, Vec<Blk>> {
    SLOT_BLOCKS[slot].lock().unwrap_or_else(|e| e.into_inner())
}

enum Job {
    Alloc {
        slot: usize,
        size: usize,
        align: usize,
        zeroed: bool,
        api: bool,
        count: usize,
        gen: u64,
    },
    Realloc {
        slot: usize,
        size: usize,
        api: Option<usize>,
        zeroed: bool,
    },
    Free {
        slot: usize,
        api: bool,
    },
    /// Check the blocks of a slot just received from another thread.
    Adopt {
        slot: usize,
    },
    Purge,
    Ping(mpsc::Sender<()>),
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("valid layout")
}

fn verify(b: &Blk, when: &str) {
    // SAFETY: `b` is live, `b.size` bytes long (zero-size blocks read nothing).
    unsafe {
        check(b.p as *const u8, b.size, b.size, b.tag, &|| {
            format!(
                "{when}: block of {} B align {} tag {:#x}",
                b.size, b.align, b.tag
            )
        })
    };
}

fn alloc_block(size: usize, align: usize, zeroed: bool, api: bool, tag: u64) -> Blk {
    let api = api || size == 0;
    let l = layout(size, align);
    let what = || format!("alloc of {l:?} (zeroed {zeroed}, Allocator API {api}, tag {tag:#x})");
    let p = if api {
        let r = if zeroed {
            PoolAlloc.allocate_zeroed(l)
        } else {
            PoolAlloc.allocate(l)
        };
        if r.is_ok() {
            crate::counting::held_through_api(1);
        }
        match r {
            Ok(s) if s.len() >= size => s.as_ptr().cast::<u8>() as usize,
            Ok(s) => violation(format!("{}: only {} bytes", what(), s.len())),
            Err(_) => violation(format!("{}: AllocError", what())),
        }
    } else {
        // SAFETY: `size > 0` here (size 0 goes through the Allocator API).
        let p = unsafe {
            if zeroed {
                std::alloc::alloc_zeroed(l)
            } else {
                std::alloc::alloc(l)
            }
        };
        if p.is_null() {
            violation(format!("{}: null", what()));
        }
        p as usize
    };
    check_align(p, align, &what);
    if zeroed {
        // SAFETY: a fresh block of `size` bytes.
        unsafe { check_zero(p as *const u8, 0, size, &what) };
    }
    oracle::insert(p, size, tag, &what);
    // SAFETY: a fresh block of `size` bytes, ours alone.
    unsafe { fill(p as *mut u8, size, tag) };
    Blk {
        p,
        size,
        align,
        tag,
    }
}

fn realloc_block(b: &mut Blk, size: usize, api: Option<usize>, zeroed: bool) {
    verify(b, "before realloc");
    oracle::remove(b.p, b.size);
    let use_api = api.is_some() || b.size == 0 || size == 0;
    let align = api.unwrap_or(b.align);
    let (old, new) = (layout(b.size, b.align), layout(size, align));
    let zero_tail = use_api && zeroed && size > b.size;
    let what = || {
        format!(
            "realloc of {old:?} at {:#x} to {new:?} (Allocator API {use_api}, zeroed {zero_tail}, tag {:#x})",
            b.p, b.tag
        )
    };
    let q = if use_api {
        let p = NonNull::new(b.p as *mut u8).expect("live blocks are non-null");
        // SAFETY: `p` is a live block of layout `old` from `PoolAlloc` (the global allocator,
        // or its Allocator API: the same blocks); `grow` gets a layout at least as large,
        // `shrink` one no larger; `p` is not used again unless this fails (a violation).
        let r = unsafe {
            match (size >= b.size, zero_tail) {
                (true, true) => PoolAlloc.grow_zeroed(p, old, new),
                (true, false) => PoolAlloc.grow(p, old, new),
                (false, _) => PoolAlloc.shrink(p, old, new),
            }
        };
        match r {
            Ok(s) if s.len() >= size => s.as_ptr().cast::<u8>() as usize,
            _ => violation(format!("{}: failed", what())),
        }
    } else {
        // SAFETY: a live block of layout `old` from the global allocator, `size > 0`.
        let q = unsafe { std::alloc::realloc(b.p as *mut u8, old, size) };
        if q.is_null() {
            violation(format!("{}: null", what()));
        }
        q as usize
    };
    check_align(q, align, &what);
    oracle::insert(q, size, b.tag, &what);
    // SAFETY: the new block is `size` bytes long; the old prefix is `min(old, size)` bytes.
    unsafe {
        check(q as *const u8, b.size, size.min(b.size), b.tag, &|| {
            format!("{}: prefix not kept", what())
        });
        if zero_tail {
            check_zero(q as *const u8, b.size, size, &what);
        }
        if !(size > b.size && SABOTAGE.load(Ordering::Relaxed) == SAB_NO_FILL_AFTER_GROW) {
            fill(q as *mut u8, size, b.tag);
        }
    }
    b.p = q;
    b.size = size;
    b.align = align;
}

fn free_block(b: Blk, api: bool) {
    verify(&b, "before free");
    oracle::remove(b.p, b.size);
    let l = layout(b.size, b.align);
    if api || b.size == 0 {
        let p = NonNull::new(b.p as *mut u8).expect("live blocks are non-null");
        // SAFETY: a live block of layout `l` from `PoolAlloc`, freed once.
        unsafe { PoolAlloc.deallocate(p, l) };
        crate::counting::held_through_api(-1);
    } else {
        // SAFETY: a live block of layout `l` from the global allocator, freed once.
        unsafe { std::alloc::dealloc(b.p as *mut u8, l) };
    }
}

fn worker(rx: mpsc::Receiver<Job>) {
    for job in rx {
        match job {
            Job::Alloc {
                slot,
                size,
                align,
                zeroed,
                api,
                count,
                gen,
            } => {
                let mut v = blocks(slot);
                for i in 0..count {
                    v.push(alloc_block(size, align, zeroed, api, gen << 16 | i as u64));
                }
            }
            Job::Realloc {
                slot,
                size,
                api,
                zeroed,
            } => {
                for b in blocks(slot).iter_mut() {
                    realloc_block(b, size, api, zeroed);
                }
            }
            Job::Free { slot, api } => {
                for b in std::mem::take(&mut *blocks(slot)) {
                    free_block(b, api);
                }
            }
            Job::Adopt { slot } => blocks(slot).iter().for_each(|b| verify(b, "received")),
            Job::Purge => {
                purge();
            }
            Job::Ping(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// What the coordinator knows of a slot.
#[derive(Clone, Copy)]
struct SlotModel {
    holder: usize,
    size: usize,
    align: usize,
    count: usize,
}

struct Coordinator {
    base: AllocStats,
    /// `counting::live()` when `base` was taken.
    base_live: isize,
    slots: [Option<SlotModel>; SLOTS],
    /// The thread that last held each slot (the one whose queue may still touch it).
    last_holder: [usize; SLOTS],
    live: usize,
    gen: u64,
    workers: Vec<(mpsc::Sender<Job>, JoinHandle<()>)>,
}

fn spawn_worker() -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    (tx, thread::spawn(move || worker(rx)))
}

impl Coordinator {
    fn send(&self, t: usize, job: Job) {
        self.workers[t].0.send(job).expect("worker alive");
    }

    /// Wait until thread `t` has run every job sent to it so far.
    fn quiet(&self, t: usize) {
        let (tx, rx) = mpsc::channel();
        self.send(t, Job::Ping(tx));
        rx.recv().expect("worker alive");
    }

    /// The first slot from `s` that is empty (`want_empty`) or occupied.
    fn find(&self, s: u8, want_empty: bool) -> Option<usize> {
        (0..SLOTS)
            .map(|i| (s as usize + i) % SLOTS)
            .find(|&i| self.slots[i].is_none() == want_empty)
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Alloc {
                thread,
                slot,
                size,
                align,
                zeroed,
                api,
                count,
            } => {
                let Some(slot) = self.find(slot, true) else {
                    return;
                };
                let count = (count as usize).clamp(1, (GROUP_MAX / size.max(1)).max(1));
                if self.live + count * size > LIVE_MAX {
                    return;
                }
                let holder = thread as usize % THREADS;
                // The slot's last holder may not have run its `Free` yet.
                if self.last_holder[slot] != holder {
                    self.quiet(self.last_holder[slot]);
                    self.last_holder[slot] = holder;
                }
                self.live += count * size;
                self.gen += 1;
                self.slots[slot] = Some(SlotModel {
                    holder,
                    size,
                    align,
                    count,
                });
                let gen = self.gen;
                self.send(
                    holder,
                    Job::Alloc {
                        slot,
                        size,
                        align,
                        zeroed,
                        api,
                        count,
                        gen,
                    },
                );
            }
            Op::Realloc {
                slot,
                size,
                api,
                zeroed,
            } => {
                let Some(slot) = self.find(slot, false) else {
                    return;
                };
                let m = self.slots[slot].as_mut().expect("occupied");
                let (old, new) = (m.count * m.size, m.count * size);
                if (m.count > 1 && new > GROUP_MAX) || self.live - old + new > LIVE_MAX {
                    return;
                }
                self.live = self.live - old + new;
                m.size = size;
                m.align = api.unwrap_or(m.align);
                let holder = m.holder;
                self.send(
                    holder,
                    Job::Realloc {
                        slot,
                        size,
                        api,
                        zeroed,
                    },
                );
            }
            Op::Free { slot, api } => {
                if let Some(slot) = self.find(slot, false) {
                    self.free(slot, api);
                }
            }
            Op::Send { slot, to } => {
                let Some(slot) = self.find(slot, false) else {
                    return;
                };
                let m = self.slots[slot].as_mut().expect("occupied");
                let from = m.holder;
                m.holder = to as usize % THREADS;
                let to = m.holder;
                self.last_holder[slot] = to;
                self.quiet(from);
                self.send(to, Job::Adopt { slot });
            }
            Op::ThreadExit { thread } => {
                let t = thread as usize % THREADS;
                let (tx, h) = std::mem::replace(&mut self.workers[t], spawn_worker());
                drop(tx);
                h.join().expect("worker exits");
            }
            Op::Purge { thread } => self.send(thread as usize % THREADS, Job::Purge),
            Op::SetPurgeDelay { ms } => set_purge_delay(match ms {
                u32::MAX => Duration::MAX,
                ms => Duration::from_millis(ms.into()),
            }),
            Op::Stats => {
                (0..THREADS).for_each(|t| self.quiet(t));
                self.check_stats("Stats");
            }
            Op::Sleep { ms } => thread::sleep(Duration::from_millis(ms.into())),
            Op::Trace { frames: 0 } => {
                pyheap::tracemalloc::stop();
                if pyheap::tracemalloc::get_traced_memory() != (0, 0) {
                    violation("tracemalloc::stop() left traced memory".into());
                }
            }
            Op::Trace { frames } => pyheap::tracemalloc::start(frames.into()),
            Op::Fork => fork_and_check(),
            Op::Lock => lock_memory(),
        }
    }

    fn free(&mut self, slot: usize, api: bool) {
        let m = self.slots[slot].take().expect("occupied");
        self.live -= m.count * m.size;
        self.send(m.holder, Job::Free { slot, api });
    }

    /// The large blocks the model holds, and their bytes (Linux only: elsewhere none).
    fn large(&self) -> (usize, usize) {
        let large = |m: &&SlotModel| {
            cfg!(target_os = "linux")
                && (LARGE_MIN..=LARGE_MAX).contains(&m.size)
                && m.align <= LARGE_ALIGN
        };
        let ls = self.slots.iter().flatten().filter(large);
        ls.fold((0, 0), |(n, b), m| (n + m.count, b + m.count * m.size))
    }

    /// `stats()`' identities at a quiet point (every worker idle).
    fn check_stats(&self, when: &str) -> AllocStats {
        let s = stats();
        let base = &self.base;
        let mut bad = Vec::new();
        if s.arenas_mapped_total - s.arenas_returned != s.arenas_mapped {
            bad.push("arenas_mapped_total - arenas_returned != arenas_mapped");
        }
        if s.arenas_in_flight != 0 {
            bad.push("arenas_in_flight != 0 with no large block being made");
        }
        if s.arenas_mapped > s.arenas_high_water {
            bad.push("arenas_mapped > arenas_high_water");
        }
        let (mut n, bytes) = self.large();
        if SABOTAGE.load(Ordering::Relaxed) == SAB_LARGE_COUNT {
            n += 1;
        }
        // Under the debug allocator a block is the data of a larger one: the model's sizes
        // say nothing about which blocks are large.
        if !debug_allocator()
            && (s.large_blocks != base.large_blocks + n
                || s.large_bytes != base.large_bytes + bytes)
        {
            bad.push("large_blocks/large_bytes differ from the model's large blocks");
        }
        if pyheap::tracemalloc::is_tracing() {
            let (now, peak) = pyheap::tracemalloc::get_traced_memory();
            if now > peak {
                bad.push("tracemalloc: traced memory above its peak");
            }
        }
        // Per thread: at most 8 MiB of large blocks kept, 4 MiB of medium blocks cached.
        if s.large_cached_bytes > base.large_cached_bytes + THREADS * 8 * MIB {
            bad.push("large_cached_bytes above 8 MiB per thread");
        }
        if s.medium_cached_bytes > base.medium_cached_bytes + (THREADS + 1) * 4 * MIB {
            bad.push("medium_cached_bytes above 4 MiB per thread");
        }
        if !bad.is_empty() {
            violation(format!(
                "{when}: {bad:?}\nmodel: {n} large blocks, {bytes} B, {} B live\n\
                 base:\n{base}\nnow:\n{s}",
                self.live
            ));
        }
        s
    }

    /// Free everything, end the workers, purge, and check that the allocator is back where
    /// it started.
    fn finish(mut self) {
        let leak = SABOTAGE.load(Ordering::Relaxed) == SAB_LEAK;
        for slot in 0..SLOTS {
            if self.slots[slot].is_some() {
                if leak && self.slots[slot].is_some_and(|m| m.count * m.size > 0) {
                    self.slots[slot] = None; // its blocks stay allocated
                    continue;
                }
                self.free(slot, false);
            }
        }
        for (tx, h) in std::mem::take(&mut self.workers) {
            drop(tx);
            h.join().expect("worker exits");
        }
        oracle::reset();
        if !leak {
            (0..SLOTS).for_each(|s| drop(std::mem::take(&mut *blocks(s))));
        }
        pyheap::tracemalloc::stop();
        purge();
        let s = self.check_stats("end, after purge");
        let base = &self.base;
        let mut bad = Vec::new();
        if s.large_cached_bytes != base.large_cached_bytes {
            bad.push("large_cached_bytes not back to the start's");
        }
        if s.free_pools_resident != 0 {
            bad.push("free pools resident after purge()");
        }
        if s.medium_spans_empty != 0 {
            bad.push("empty medium spans mapped after purge()");
        }
        // What `PoolAlloc` counts as held must change exactly as what the program holds.
        let held = |s: &AllocStats| (s.blocks_in_use() + s.fallback_count) as isize;
        let mut program = crate::counting::live() - self.base_live;
        if SABOTAGE.load(Ordering::Relaxed) == SAB_MISCOUNT {
            program -= 1;
        }
        if held(&s) - held(base) != program {
            let m = format!(
                "blocks in use + fallback count changed unlike the blocks held (leak): \
                 {} -> {}, the program's blocks by {program}",
                held(base),
                held(&s)
            );
            bad.push(m.leak());
        }
        // The program's own leaks: std keeps small blocks only (so `program` may be above 0),
        // never system-allocator ones.
        if (s.fallback_count, s.fallback_bytes) != (base.fallback_count, base.fallback_bytes) {
            bad.push("fallback_count/bytes not back to the start's (leak)");
        }
        if !bad.is_empty() {
            let classes: Vec<_> = (s.classes.iter().zip(&base.classes))
                .filter(|(c, b)| c.blocks_in_use != b.blocks_in_use)
                .map(|(c, b)| (c.block_size, b.blocks_in_use, c.blocks_in_use))
                .collect();
            violation(format!(
                "end: {bad:?}\n(block size, blocks in use at the start, now): {classes:?}\n\
                 base:\n{base}\nnow:\n{s}"
            ));
        }
    }
}

/// `Op::Lock`: lock the process's memory, where it may lock without limit (see `Op::Lock`).
fn lock_memory() {
    // SAFETY: plain system calls with valid out-parameters.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let unlimited = libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0
            && limit.rlim_cur == libc::RLIM_INFINITY;
        if libc::geteuid() == 0 || unlimited {
            // A refusal (no `CAP_IPC_LOCK` after all) leaves the program unlocked.
            libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE);
        }
    }
}

/// `Op::Fork`: fork while the workers run; the child's work is `forked_child`. A child that
/// fails reports as the oracle does (its message goes to the same stderr).
fn fork_and_check() {
    // SAFETY: the child runs `forked_child` (the allocator, std's allocation-free parts, and
    // libc) and `_exit`s, never returning into this program; the allocator's fork handlers
    // keep its locks usable in the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        violation("fork failed".into());
    }
    if pid == 0 {
        // SAFETY: `alarm` and `_exit` are async-signal-safe.
        unsafe {
            libc::alarm(20);
            forked_child();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid
        || !libc::WIFEXITED(status)
        || libc::WEXITSTATUS(status) != 0
    {
        violation(format!(
            "Fork: the child failed (wait status {status:#x}; 14 is SIGALRM: a deadlock)"
        ));
    }
}

/// The forked child's work (see `Op::Fork`).
fn forked_child() {
    for slot in &SLOT_BLOCKS {
        // A slot a worker held at the fork stays locked in the child: skipped.
        let Ok(mut bs) = slot.try_lock() else {
            continue;
        };
        for (i, b) in std::mem::take(&mut *bs).into_iter().enumerate() {
            let tag = if SABOTAGE.load(Ordering::Relaxed) == SAB_FORK_CHILD {
                !b.tag
            } else {
                b.tag
            };
            verify(&Blk { tag, ..b }, "in a forked child");
            if i % 2 == 0 && b.size > 0 {
                // SAFETY: a live block of this layout (from the global allocator or its
                // `Allocator` API: the same blocks), freed once (taken out of the slot).
                unsafe { std::alloc::dealloc(b.p as *mut u8, layout(b.size, b.align)) };
            }
        }
    }
    // Blocks of every regime, without the oracle's map (a worker may have held its lock at
    // the fork): zeroed ones checked zero, every one filled and checked.
    for (size, count) in [(100, 1000), (3000, 100), (300 * KIB, 2), (5 * MIB, 1)] {
        let l = layout(size, 16);
        let what = || format!("a forked child's block of {size} B");
        let bs: Vec<usize> = (0..count)
            .map(|k| {
                // SAFETY: a non-zero size.
                let p = unsafe {
                    if k % 3 == 0 {
                        std::alloc::alloc_zeroed(l)
                    } else {
                        std::alloc::alloc(l)
                    }
                };
                if p.is_null() {
                    violation(what());
                }
                // SAFETY: a fresh block of `size` bytes, ours.
                unsafe {
                    if k % 3 == 0 {
                        check_zero(p, 0, size, &what);
                    }
                    fill(p, size, 0xf0_0000 + k as u64);
                }
                p as usize
            })
            .collect();
        for (k, p) in bs.into_iter().enumerate() {
            // SAFETY: allocated just above with `l`, filled with this tag, freed once.
            unsafe {
                check(p as *const u8, size, size, 0xf0_0000 + k as u64, &what);
                std::alloc::dealloc(p as *mut u8, l);
            }
        }
    }
    purge();
    let s = stats();
    if s.arenas_mapped_total - s.arenas_returned != s.arenas_mapped
        || s.arenas_in_flight > THREADS * 33
    {
        violation(format!(
            "in a forked child: the arena counts do not add up\n{s}"
        ));
    }
}

/// Whether this process runs under the debug allocator (`PYHEAP_MALLOC=debug`: see
/// `fuzz_programs_under_the_debug_allocator`).
pub fn debug_allocator() -> bool {
    std::env::var("PYHEAP_MALLOC").as_deref() == Ok("debug")
}

/// Run `ops` (in a forked child: see `child.rs`).
pub fn run_program(ops: &[Op]) {
    oracle::reset();
    set_purge_delay(Duration::from_millis(pyheap::alloc::DEFAULT_PURGE_DELAY_MS));
    // Warm up what std keeps for the rest of a thread's life: the first blocking `recv` on
    // this thread caches a context (48 bytes) in a thread-local.
    let (tx, h) = spawn_worker();
    let (done, wait) = mpsc::channel();
    tx.send(Job::Ping(done)).expect("worker alive");
    wait.recv().expect("worker alive");
    drop(tx);
    h.join().expect("worker exits");
    purge();
    let base_live = crate::counting::live();
    let base = stats();
    let mut co = Coordinator {
        base,
        base_live,
        slots: [None; SLOTS],
        last_holder: [0; SLOTS],
        live: 0,
        gen: 0,
        workers: (0..THREADS).map(|_| spawn_worker()).collect(),
    };
    for &op in ops {
        co.step(op);
    }
    co.finish();
}
