//! tracemalloc across threads: traces of blocks other threads allocate, blocks freed by
//! another thread than their allocator's, tracing started and stopped while threads allocate
//! (no trace of a freed block survives), and snapshots, object tracebacks and clears while
//! threads allocate (nothing deadlocks).

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

use pyheap::tracemalloc::{self, Filter, KeyType, Snapshot};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const FILE: &str = file!();

/// (size, count) of this file's traces at `line`.
fn at_line(s: &Snapshot, line: u32) -> (usize, usize) {
    s.filter_traces(&[Filter::include(FILE).lineno(line)])
        .statistics(KeyType::Lineno)
        .first()
        .map_or((0, 0), |st| (st.size, st.count))
}

/// A watchdog: a hang is reported and the process stopped (a bound for a deadlock, not a
/// timing claim).
fn watchdog(what: &'static str) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        for _ in 0..1200 {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{what}: still running after 120 s: deadlock");
        std::process::abort();
    });
    done
}

#[test]
fn traces_of_other_threads_and_cross_thread_frees() {
    let _g = serial();
    tracemalloc::start(2);
    let line = line!() + 1;
    let make = |t: u8| (0..250).map(|i| vec![t; 100 + i % 3]).collect::<Vec<_>>();
    let handles: Vec<_> = (0..4u8)
        .map(|t| std::thread::spawn(move || make(t)))
        .collect();
    let blocks: Vec<Vec<Vec<u8>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let snap = tracemalloc::take_snapshot();
    let expect: usize = (0..250).map(|i| 100 + i % 3).sum::<usize>() * 4;
    // The blocks, and each thread's vector of them (collected at the same line).
    let (size, count) = at_line(&snap, line);
    assert_eq!(count, 4 * 250 + 4);
    assert_eq!(size, expect + 4 * 250 * 24);
    // The traceback's second frame is the thread's closure, in this file.
    let st = snap
        .filter_traces(&[Filter::include(FILE).lineno(line)])
        .statistics(KeyType::Traceback);
    assert!(st
        .iter()
        .all(|s| s.traceback.frames()[0].filename() == FILE));
    // Freed by another thread than the one that allocated them: the traces go.
    std::thread::spawn(move || drop(blocks)).join().unwrap();
    assert_eq!(at_line(&tracemalloc::take_snapshot(), line), (0, 0));
    tracemalloc::stop();
}

#[test]
fn start_and_stop_while_threads_allocate() {
    let _g = serial();
    let done = watchdog("start_and_stop_while_threads_allocate");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let line = line!() + 8;
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            let rounds = rounds.clone();
            std::thread::spawn(move || {
                let mut live: Vec<Box<[u64; 6]>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..64u64 {
                        live.push(Box::new([i + t; 6]));
                    }
                    // Free most, in an order unlike the allocation's; keep some for later.
                    let keep = live.split_off(live.len() - 8);
                    live.retain(|b| b[0] % 3 != 0);
                    live.clear();
                    live.extend(keep);
                    if live.len() > 256 {
                        live.drain(..128);
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                live
            })
        })
        .collect();
    let mut toggles = 0;
    while toggles < 60 || rounds.load(Ordering::Relaxed) < 300 {
        tracemalloc::start(1 + toggles % 3);
        std::thread::yield_now();
        if toggles % 4 == 0 {
            tracemalloc::clear_traces();
        }
        tracemalloc::stop();
        assert_eq!(
            tracemalloc::get_traced_memory(),
            (0, 0),
            "stop forgets every trace"
        );
        std::thread::yield_now();
        toggles += 1;
    }
    // Tracing on while the workers finish and free everything they still hold.
    tracemalloc::start(1);
    stop.store(true, Ordering::Relaxed);
    let left: Vec<Vec<Box<[u64; 6]>>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let still = left.iter().map(Vec::len).sum::<usize>();
    let snap = tracemalloc::take_snapshot();
    let (_, count) = at_line(&snap, line);
    assert!(
        count <= still,
        "{count} traces at the workers' line, {still} blocks alive"
    );
    drop(left);
    // No trace of a freed block survives, whatever the toggles met.
    assert_eq!(at_line(&tracemalloc::take_snapshot(), line), (0, 0));
    tracemalloc::stop();
    done.store(true, Ordering::Relaxed);
}

#[test]
fn snapshots_while_threads_allocate_do_not_deadlock() {
    let _g = serial();
    let done = watchdog("snapshots_while_threads_allocate_do_not_deadlock");
    tracemalloc::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut n = 0usize;
                let mut keep = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let s = format!("{n}-{}", "y".repeat(n % 700));
                    let v: Vec<u32> = (0..(n % 50) as u32).collect();
                    if n % 7 == 0 {
                        keep.push((s, v));
                    }
                    if keep.len() > 500 {
                        keep.clear();
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    barrier.wait();
    for i in 0..20 {
        let snap = tracemalloc::take_snapshot();
        let stats = snap.statistics(KeyType::Lineno);
        let total: usize = stats.iter().map(|s| s.size).sum();
        assert_eq!(total, snap.traces().iter().map(|t| t.size).sum::<usize>());
        if let Some(t) = snap.traces().first() {
            let _ = t.to_string();
        }
        let probe = Box::new([i as u8; 100]);
        assert!(tracemalloc::get_object_traceback(probe.as_ptr()).is_some());
        if i % 5 == 4 {
            tracemalloc::clear_traces();
        }
        let _ = tracemalloc::get_traced_memory();
    }
    stop.store(true, Ordering::Relaxed);
    let ops: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(ops > 0);
    tracemalloc::stop();
    done.store(true, Ordering::Relaxed);
}
