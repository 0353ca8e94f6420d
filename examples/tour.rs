//! A tour of pyheap. Run it with `cargo run --release --example tour`.
//!
//! Chapter 1, the allocator: `PoolAlloc` is installed as the global allocator below, a short
//! realistic workload (strings, maps, a few threads handing blocks to each other) runs and is
//! freed, and the allocator's statistics are printed before, at the peak and after, showing
//! the pools filling and the arenas going back to the OS.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as usize)
}

fn summary(label: &str) {
    let s = pyheap::alloc::stats();
    let rss = resident_bytes().map_or("n/a".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    });
    println!(
        "{label:<8} blocks in use {:>9}  pools {:>6}  arenas mapped {:>4} (high-water {:>4}, returned {:>4})  resident {rss}",
        s.blocks_in_use(),
        s.pools_in_use(),
        s.arenas_mapped,
        s.arenas_high_water,
        s.arenas_returned,
    );
}

/// What the workload leaves alive until the tour frees it.
type WorkloadData = (
    BTreeMap<String, Vec<u32>>,
    HashMap<u64, String>,
    Vec<Vec<Box<[u8]>>>,
);

/// The workload: an index of words, a map of small records, and worker threads whose results
/// are freed by the main thread (cross-thread frees).
fn workload() -> WorkloadData {
    let mut index: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in 0..200_000u32 {
        let word = format!("word-{}", i.wrapping_mul(2_654_435_761) % 50_000);
        index.entry(word).or_default().push(i);
    }
    let records: HashMap<u64, String> = (0..100_000u64)
        .map(|i| (i, format!("record #{i:08}")))
        .collect();

    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..4u8)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for batch in 0..8 {
                    let blocks: Vec<Box<[u8]>> = (0..10_000)
                        .map(|i| vec![t; 8 + (i * 7 + batch) % 500].into_boxed_slice())
                        .collect();
                    tx.send(blocks).expect("main thread is listening");
                }
            })
        })
        .collect();
    drop(tx);
    let batches: Vec<Vec<Box<[u8]>>> = rx.iter().collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    (index, records, batches)
}

fn main() {
    println!("== Chapter 1: PoolAlloc, pymalloc's scheme as the global allocator ==\n");
    println!(
        "requests <= {} bytes come from {} size classes in {} KiB pools of {} KiB arenas\n",
        pyheap::alloc::SMALL_REQUEST_THRESHOLD,
        pyheap::alloc::NUM_SIZE_CLASSES,
        pyheap::alloc::POOL_SIZE / 1024,
        pyheap::alloc::ARENA_SIZE / 1024
    );
    summary("before");
    let data = workload();
    summary("peak");
    println!("\n-- the allocator at the peak (sys._debugmallocstats style) --\n");
    println!("{}", pyheap::alloc::stats());
    let (index, records, batches) = data;
    println!(
        "workload: {} distinct words, {} records, {} blocks from 4 worker threads (freed here, by main)\n",
        index.len(),
        records.len(),
        batches.iter().map(Vec::len).sum::<usize>()
    );
    drop((index, records, batches));
    summary("after");
    let s = pyheap::alloc::stats();
    println!(
        "\n{} of {} arenas went back to the OS; {} stay mapped (kept empty for reuse, or holding live blocks).",
        s.arenas_returned, s.arenas_mapped_total, s.arenas_mapped
    );
}
