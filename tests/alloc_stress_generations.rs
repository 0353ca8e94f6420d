//! Stress in the style of mimalloc's `test-stress`: generations of threads that allocate,
//! transfer and free random-size objects, some of which outlive the thread that made them by
//! several generations, with every block's contents checked before it is freed.
//!
//! Each round starts `THREADS` threads, then joins the previous round's (threads are
//! constantly created and exit, two generations at a time: their heaps are abandoned,
//! adopted, and given back when their last block is freed).
//! A thread runs `OPS` random steps over its own objects: allocate (mostly pool sizes, some
//! above the threshold, a few large), free one, or *transfer* one through a shared array of
//! slots (it swaps its object in and takes whatever was there, often an object of an earlier
//! generation). When it exits it leaves part of its objects in a list of survivors, which the
//! main thread frees a few generations later. Every object carries its size and a tag and is
//! filled with a pattern derived from them; the pattern is checked whenever an object changes
//! hands and before every free.
//!
//! Brief under `cargo test`; `PYHEAP_STRESS_SECS=N` runs rounds for N seconds instead (and
//! `PYHEAP_STRESS_THREADS=T` sets the threads per round), e.g.
//! `PYHEAP_STRESS_SECS=600 cargo test --release --test alloc_stress_generations -- --nocapture`.
//!
//! At the end every object is freed and the allocator must be back where it started: no block,
//! no system-allocator block, no heap left behind.
//!
//! One test in this binary: it asserts on process-wide stats.

mod common;

use common::Rng;
use pyheap::alloc::stats;
use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const THREADS: usize = 6;
const ROUNDS: u64 = 12;
const OPS: usize = 2500;
const SLOTS: usize = 512;
/// Survivors are freed this many generations after their thread exited.
const SURVIVOR_GENERATIONS: u64 = 3;

/// An object: `size` bytes at `ptr`, starting with a header (size, tag) and filled after it
/// with the tag's pattern.
struct Obj {
    ptr: *mut u64,
}

// SAFETY: an `Obj` owns its allocation; the global allocator's blocks may be freed by any
// thread.
unsafe impl Send for Obj {}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn word(tag: u64, i: usize) -> u64 {
    tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl Obj {
    /// `size` is a multiple of 8, at least 16.
    fn new(size: usize, tag: u64) -> Obj {
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc(layout(size)) }.cast::<u64>();
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        // SAFETY: `size / 8` words, 8-aligned.
        unsafe {
            ptr.write(size as u64);
            ptr.add(1).write(tag);
            for i in 2..size / 8 {
                ptr.add(i).write(word(tag, i));
            }
        }
        Obj { ptr }
    }

    fn check(&self) {
        // SAFETY: a live object: its header says its size.
        unsafe {
            let size = self.ptr.read() as usize;
            let tag = self.ptr.add(1).read();
            assert!(
                (16..=1 << 16).contains(&size) && size % 8 == 0,
                "object {:p}: header corrupt (size {size})",
                self.ptr
            );
            for i in 2..size / 8 {
                let w = self.ptr.add(i).read();
                assert_eq!(
                    w,
                    word(tag, i),
                    "object {:p} ({size} bytes, tag {tag:#x}) corrupt at word {i}",
                    self.ptr
                );
            }
        }
    }

    fn free(self) {
        self.check();
        // SAFETY: allocated by `new` with this size, freed once.
        unsafe {
            let size = self.ptr.read() as usize;
            dealloc(self.ptr.cast(), layout(size));
        }
    }

    fn into_raw(self) -> *mut u64 {
        self.ptr
    }

    fn from_raw(ptr: *mut u64) -> Option<Obj> {
        (!ptr.is_null()).then_some(Obj { ptr })
    }
}

/// Mostly pool sizes; some just above the threshold; a few large ones.
fn random_size(rng: &mut Rng) -> usize {
    let size = match rng.below(100) {
        0..=89 => rng.range(16, 512),
        90..=98 => rng.range(513, 4096),
        _ => rng.range(4097, 1 << 16),
    };
    size & !7
}

struct Shared {
    slots: Vec<AtomicPtr<u64>>,
    /// (generation it was left in, object).
    survivors: Mutex<Vec<(u64, Obj)>>,
    tags: AtomicU64,
}

fn worker(shared: Arc<Shared>, generation: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut mine: Vec<Obj> = Vec::new();
    let tag = |shared: &Shared| shared.tags.fetch_add(1, Ordering::Relaxed);
    for _ in 0..OPS {
        match rng.below(100) {
            0..=49 => mine.push(Obj::new(random_size(&mut rng), tag(&shared))),
            50..=74 if !mine.is_empty() => {
                let i = rng.below(mine.len());
                mine.swap_remove(i).free();
            }
            75..=94 if !mine.is_empty() => {
                // Transfer: our object into a slot, whatever was there to us.
                let i = rng.below(mine.len());
                let o = mine.swap_remove(i);
                o.check();
                let slot = &shared.slots[rng.below(SLOTS)];
                if let Some(theirs) = Obj::from_raw(slot.swap(o.into_raw(), Ordering::AcqRel)) {
                    theirs.check();
                    mine.push(theirs);
                }
            }
            _ => {
                if let Some(o) = mine.last() {
                    o.check();
                }
            }
        }
    }
    // Leave about a quarter behind for later generations; free the rest.
    let keep = mine.len() / 4;
    let mut survivors = shared.survivors.lock().unwrap();
    for o in mine.drain(..keep) {
        o.check();
        survivors.push((generation, o));
    }
    drop(survivors);
    for o in mine {
        o.free();
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn generations_of_threads_allocate_transfer_and_free() {
    common::wait_for_harness_idle();
    // Warm-up: std's one-time thread machinery.
    thread::spawn(|| drop(vec![1u8; 10])).join().unwrap();
    let base = stats();

    let secs = env_number("PYHEAP_STRESS_SECS");
    let threads = env_number("PYHEAP_STRESS_THREADS").map_or(THREADS, |t| t as usize);
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    let shared = Arc::new(Shared {
        slots: (0..SLOTS)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        survivors: Mutex::new(Vec::new()),
        tags: AtomicU64::new(1),
    });

    let start = Instant::now();
    let mut generation = 0u64;
    let mut peak_heaps = 0;
    // The generations overlap: generation g starts before generation g - 1 is joined.
    let mut running: Vec<thread::JoinHandle<()>> = Vec::new();
    loop {
        let done = match deadline {
            Some(d) => Instant::now() >= d,
            None => generation >= ROUNDS,
        };
        let started: Vec<_> = if done {
            Vec::new()
        } else {
            (0..threads as u64)
                .map(|t| {
                    let shared = shared.clone();
                    let seed = generation * 1000 + t + 1;
                    thread::spawn(move || worker(shared, generation, seed))
                })
                .collect()
        };
        for h in std::mem::replace(&mut running, started) {
            h.join().unwrap();
        }
        // Survivors of old generations are freed now, on this thread (their heaps are
        // abandoned: these frees give them back).
        let old: Vec<Obj> = {
            let mut s = shared.survivors.lock().unwrap();
            let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut *s)
                .into_iter()
                .partition(|(g, _)| g + SURVIVOR_GENERATIONS <= generation);
            *s = young;
            old.into_iter().map(|(_, o)| o).collect()
        };
        for o in old {
            o.free();
        }
        let s = stats();
        peak_heaps = peak_heaps.max(s.heaps_active + s.heaps_abandoned);
        assert!(
            s.heaps_active <= base.heaps_active + running.len(),
            "generation {generation}: {} heaps held with {} threads running",
            s.heaps_active,
            running.len()
        );
        if done {
            break;
        }
        generation += 1;
    }

    // Free everything: the slots and the survivors.
    let mut left = 0;
    for slot in &shared.slots {
        if let Some(o) = Obj::from_raw(slot.swap(std::ptr::null_mut(), Ordering::AcqRel)) {
            o.free();
            left += 1;
        }
    }
    for (_, o) in std::mem::take(&mut *shared.survivors.lock().unwrap()) {
        o.free();
        left += 1;
    }
    let objects = shared.tags.load(Ordering::Relaxed) - 1;
    drop(shared);
    let after = stats();
    println!(
        "{generation} generations of {threads} threads in {:.1?}: {} objects, {left} alive at \
         the end; at most {peak_heaps} heaps; {} arenas mapped in total",
        start.elapsed(),
        objects,
        after.arenas_mapped_total
    );
    assert_eq!(after.blocks_in_use(), base.blocks_in_use(), "blocks leaked");
    assert_eq!(
        after.fallback_count, base.fallback_count,
        "system blocks leaked"
    );
    assert_eq!(after.fallback_bytes, base.fallback_bytes);
    assert_eq!(after.heaps_active, base.heaps_active);
    assert_eq!(
        after.heaps_abandoned, base.heaps_abandoned,
        "heaps of exited threads left behind after their last block was freed"
    );
}
