//! The `pyheap-gc` thread gives back the medium blocks its teardowns free (stop 24): a
//! thread's medium cache empties only at its next use, since `purge()` only asks other
//! threads' caches, and the collector thread may sleep until the program's next garbage.
//! Before, up to 4 MiB of a collection's medium blocks stayed cached there for as long as it
//! slept (seen in CI as `alloc_medium_gc` finding 700 cached blocks after `purge()`).
//!
//! Rings of shared `Gc`s with 1,000-byte payloads (a medium span bin) are left to the
//! automatic collection, so that the `pyheap-gc` thread tears them down; once every payload
//! was dropped there, `purge()` on this thread must bring the cached medium blocks of all
//! threads to zero within seconds, with no further allocation on the collector thread.
//!
//! Run without libtest's harness, so that no other thread of the test allocates medium blocks.

use pyheap::alloc::{purge, stats};
use pyheap::{Gc, Trace};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

const RINGS: usize = 20;
const NODES: usize = 50;

static DROPS: AtomicUsize = AtomicUsize::new(0);
static DROPS_ON_COLLECTOR: AtomicUsize = AtomicUsize::new(0);

/// A medium block of 1,000 bytes, counted (and the thread that dropped it) on drop.
struct Payload(#[allow(dead_code)] Vec<u8>);

impl Drop for Payload {
    fn drop(&mut self) {
        if std::thread::current().name() == Some("pyheap-gc") {
            DROPS_ON_COLLECTOR.fetch_add(1, Ordering::SeqCst);
        }
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    _payload: Payload,
    next: Mutex<Option<Gc<Node>>>,
}

/// A ring of `NODES` nodes, dropped: garbage only the collector frees.
fn ring() {
    let node = || {
        Gc::new(Node {
            _payload: Payload(vec![7; 1000]),
            next: Mutex::new(None),
        })
    };
    let first = node();
    let mut last = first.clone();
    for _ in 1..NODES {
        let n = node();
        *last.next.lock().unwrap() = Some(n.clone());
        last = n;
    }
    *last.next.lock().unwrap() = Some(first);
}

/// Polls `f` every 10 ms for up to `limit`; whether it became true.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn main() {
    // Build the garbage with automatic collection off, then let a low threshold find it:
    // automatic collections queue their garbage for the pyheap-gc thread.
    pyheap::gc::disable();
    for _ in 0..RINGS {
        ring();
    }
    pyheap::gc::set_threshold(10, 10, 10);
    pyheap::gc::enable();
    let mut junk = Vec::new();
    let total = RINGS * NODES;
    let all_dropped = within(Duration::from_secs(60), || {
        // Each allocation counts towards the next automatic collection.
        junk.push(Gc::new(Mutex::new(None::<Gc<u8>>)));
        DROPS.load(Ordering::SeqCst) == total
    });
    pyheap::gc::disable();
    assert!(
        all_dropped,
        "{} of {total} payloads dropped",
        DROPS.load(Ordering::SeqCst)
    );
    let on_collector = DROPS_ON_COLLECTOR.load(Ordering::SeqCst);
    assert!(
        on_collector > 0,
        "no payload was dropped on the pyheap-gc thread: the test proves nothing"
    );
    // The collector thread frees the blocks after their Drops and then goes back to sleep:
    // its cache must be empty once it does, and this thread's once `purge()` ran.
    let mut cached = 0;
    let emptied = within(Duration::from_secs(10), || {
        purge();
        cached = stats().medium_cached_blocks;
        cached == 0
    });
    assert!(
        emptied,
        "{cached} medium blocks still cached 10 s after the pyheap-gc thread dropped \
         {on_collector} payloads: its cache kept them while it slept"
    );
    drop(junk);
    println!(
        "alloc_collector_thread_cache: {on_collector} of {total} payloads torn down by the \
         pyheap-gc thread, its medium cache given back"
    );
}
