//! Check of the models themselves: **nothing leaks across loom executions**.
//!
//! Every execution makes a fresh `ModelAllocator` (heaps, arenas, released `PROT_NONE`
//! arenas and heaps, and a 32 MiB `MAP_NORESERVE` arena bitmap, all mapped from the OS) and drops it at
//! the end. A mapping left behind per execution would grow the process by thousands of
//! mappings (or by 32 MiB of address space each) over a model run; this test runs a model of
//! a few thousand executions, which maps, releases and adopts everything the other models
//! do, and compares `/proc/self/maps` and `/proc/self/status` before and after.
#![cfg(loom)]

mod common;

use common::{model, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

fn status_kib(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn workload() {
    let a = ModelAllocator::new(0);
    let owner = a.heap();
    let h1 = a.heap();
    let b0 = BlockPtr(owner.alloc(SMALL));
    let b1 = BlockPtr(owner.alloc(SMALL));
    let t_owner = thread::spawn(move || owner.exit());
    let t1 = thread::spawn(move || {
        // SAFETY: b0 is live and given to this thread.
        unsafe { h1.dealloc(b0.0, SMALL) };
        h1.exit();
    });
    // SAFETY: b1 is live and ours.
    unsafe { a.dealloc_without_heap(b1.0, SMALL) };
    t_owner.join().unwrap();
    t1.join().unwrap();
    assert_eq!(a.check_heaps(), 0);
    // A new heap (the others were retired) maps an arena again.
    let h = a.heap();
    let x = h.alloc(SMALL);
    // SAFETY: our own live block.
    unsafe { h.dealloc(x, SMALL) };
    h.exit();
    assert_eq!(a.stats().arenas_mapped, 0);
}

#[test]
fn no_mapping_leaks_across_executions() {
    // Warm up loom and the allocator of the test harness, then measure.
    model(workload);
    let (maps0, vm0, rss0) = (mappings(), status_kib("VmSize:"), status_kib("VmRSS:"));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    model(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        workload();
    });
    let (maps1, vm1, rss1) = (mappings(), status_kib("VmSize:"), status_kib("VmRSS:"));
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{runs} executions: mappings {maps0} -> {maps1}, VmSize {vm0} -> {vm1} KiB, \
         VmRSS {rss0} -> {rss1} KiB"
    );
    assert!(
        runs >= 1000,
        "the workload should take many executions ({runs})"
    );
    assert!(maps1 <= maps0 + 8, "mappings grew: {maps0} -> {maps1}");
    assert!(
        vm1 <= vm0 + 64 * 1024,
        "address space grew: {vm0} -> {vm1} KiB"
    );
    assert!(
        rss1 <= rss0 + 32 * 1024,
        "resident memory grew: {rss0} -> {rss1} KiB"
    );
}
