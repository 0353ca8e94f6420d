//! `Gc` objects of both flavors whose payloads are medium blocks (a span bin and a `malloc`
//! bin) under `PoolAlloc`: cycles built on four threads and collected by the shared collector
//! (so blocks allocated on one thread are freed on another, into the medium caches and spans),
//! and single-thread cycles collected by their thread's collector. Every payload keeps its
//! bytes until its `Drop`, every object is dropped exactly once, and once all threads exited
//! and `purge()` ran, every span still mapped holds a live block, and a second round ends with
//! no more live blocks or spans than the first.
//!
//! Run without libtest's harness, so that no other thread allocates while spans are counted.

use pyheap::alloc::{purge, stats};
use pyheap::{Gc, Trace};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

static DROPS: AtomicUsize = AtomicUsize::new(0);

/// A payload of `len` bytes (a medium block of its own), filled with `byte`, checked on drop.
struct Payload {
    bytes: Vec<u8>,
    byte: u8,
}

impl Payload {
    fn new(i: usize) -> Payload {
        // 1,000 B: a span bin; 6,000 B: a `malloc` bin.
        let len = if i % 2 == 0 { 1000 } else { 6000 };
        let byte = (i % 251) as u8;
        Payload {
            bytes: vec![byte; len],
            byte,
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        assert!(
            self.bytes.iter().all(|&b| b == self.byte),
            "a medium payload lost its bytes"
        );
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Shared {
    #[trace(skip)]
    _payload: Payload,
    next: Mutex<Option<Gc<Shared>>>,
}

#[derive(Trace)]
struct Local {
    #[trace(skip)]
    _payload: Payload,
    next: RefCell<Option<pyheap::unsync::Gc<Local>>>,
}

/// A ring of `n` shared nodes, dropped: garbage only the collector frees.
fn shared_ring(n: usize, seed: usize) {
    let first = Gc::new(Shared {
        _payload: Payload::new(seed),
        next: Mutex::new(None),
    });
    let mut last = first.clone();
    for i in 1..n {
        let node = Gc::new(Shared {
            _payload: Payload::new(seed + i),
            next: Mutex::new(None),
        });
        *last.next.lock().unwrap() = Some(node.clone());
        last = node;
    }
    *last.next.lock().unwrap() = Some(first);
}

/// The same with the single-thread flavor, collected here.
fn local_ring(n: usize, seed: usize) {
    let first = pyheap::unsync::Gc::new(Local {
        _payload: Payload::new(seed),
        next: RefCell::new(None),
    });
    let mut last = first.clone();
    for i in 1..n {
        let node = pyheap::unsync::Gc::new(Local {
            _payload: Payload::new(seed + i),
            next: RefCell::new(None),
        });
        *last.next.borrow_mut() = Some(node.clone());
        last = node;
    }
    *last.next.borrow_mut() = Some(first);
}

/// Four threads build rings of both flavors and collect; returns the objects dropped.
fn workload() -> usize {
    const THREADS: usize = 4;
    const RINGS: usize = 20;
    const NODES: usize = 50;
    let before = DROPS.load(Ordering::SeqCst);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for r in 0..RINGS {
                    shared_ring(NODES, (t * RINGS + r) * NODES);
                    local_ring(NODES, (t * RINGS + r) * NODES + 1);
                    if r % 5 == 4 {
                        // The shared collector frees other threads' rings here too.
                        pyheap::collect();
                    }
                }
                pyheap::unsync::gc::collect();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    while pyheap::collect() > 0 {}
    let dropped = DROPS.load(Ordering::SeqCst) - before;
    assert_eq!(
        dropped,
        2 * THREADS * RINGS * NODES,
        "every object of both flavors dropped exactly once"
    );
    dropped
}

fn main() {
    // A first round grows the collectors' own tables (live blocks of theirs, some medium) to
    // the workload's size; the second must end where the first did.
    workload();
    purge();
    let first = stats();
    let dropped = workload();
    purge();
    let s = stats();
    assert_eq!(s.medium_spans_empty, 0);
    assert!(
        s.fallback_count <= first.fallback_count,
        "{} live fallback blocks after the second round, {} after the first",
        s.fallback_count,
        first.fallback_count
    );
    // Every span still mapped (none empty) holds a live block or a cached one, and no thread
    // but this one (whose cache `purge` emptied) is left: at most one span per live block.
    assert_eq!(s.medium_cached_blocks, 0);
    assert!(
        s.medium_spans <= s.fallback_count,
        "{} medium spans for {} live fallback blocks: a span was not given back",
        s.medium_spans,
        s.fallback_count
    );
    assert!(
        s.medium_spans <= first.medium_spans,
        "{} medium spans after the second round, {} after the first: a block was lost",
        s.medium_spans,
        first.medium_spans
    );
    println!("alloc_medium_gc: 2 rounds of {dropped} objects of both flavors with medium payloads");
}
