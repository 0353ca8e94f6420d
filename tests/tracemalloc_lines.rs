//! tracemalloc, what users rely on: the lines a snapshot reports are the callers' lines
//! (checked against `line!()`), sizes add up to `get_traced_memory()`, `compare_to` finds
//! exactly the growth a test made, freed blocks lose their traces, `get_object_traceback`
//! finds the allocation of a pointer and of a `Gc` of either flavor, filters, the controls.
//!
//! Tracing is process-wide: the tests of this file take one lock, and look only at traces
//! whose line is in this file (the test harness allocates too).

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

use pyheap::tracemalloc::{self, Filter, KeyType, Snapshot, Statistic};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Tracing with `nframes` frames for one test, stopped at the end.
struct Tracing(#[allow(dead_code)] MutexGuard<'static, ()>);

fn tracing(nframes: usize) -> Tracing {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tracemalloc::start(nframes);
    Tracing(g)
}

impl Drop for Tracing {
    fn drop(&mut self) {
        tracemalloc::stop();
    }
}

const FILE: &str = file!();

/// The traces of this file's lines, but line 1: the test harness's `main`, generated there,
/// whose threads allocate as tests start and end.
fn this_file() -> [Filter; 2] {
    [Filter::include(FILE), Filter::exclude(FILE).lineno(1)]
}

/// This file's statistics by line, as a map line -> (size, count).
fn by_line(s: &Snapshot) -> HashMap<u32, (usize, usize)> {
    s.filter_traces(&this_file())
        .statistics(KeyType::Lineno)
        .into_iter()
        .map(|st| {
            let f = st.traceback.line().unwrap();
            assert_eq!(f.filename(), FILE);
            (f.lineno(), (st.size, st.count))
        })
        .collect()
}

#[test]
fn lines_are_the_callers_lines() {
    let _t = tracing(1);
    let l_vec = line!() + 1;
    let v: Vec<u64> = (0..1000).collect();
    let l_box = line!() + 1;
    let b = Box::new([7u8; 100]);
    let l_string = line!() + 1;
    let s = format!("{}-{}", "x".repeat(200), v.len());
    let l_push = line!() + 3;
    let mut grown: Vec<u32> = Vec::new();
    for i in 0..100 {
        grown.push(i);
    }
    let l_map = line!() + 3;
    let mut m = HashMap::new();
    for i in 0..100u32 {
        m.insert(i, i);
    }
    let l_gc = line!() + 1;
    let g = pyheap::Gc::new([1u64; 8]);
    let l_ugc = line!() + 1;
    let u = pyheap::unsync::Gc::new([2u64; 8]);
    let l_api = line!() + 2;
    let mut a = allocator_api2::vec::Vec::new_in(pyheap::PoolAlloc);
    a.extend_from_slice(&[9u8; 300]);
    let l_large = line!() + 1;
    let big = vec![0u8; 100_000];
    let snap = tracemalloc::take_snapshot();
    let lines = by_line(&snap);
    for (what, line, size) in [
        ("Vec collect", l_vec, Some(8000)),
        ("Box::new", l_box, Some(100)),
        ("format!", l_string, None),
        ("Vec::push", l_push, Some(128 * 4)),
        ("HashMap::insert", l_map, None),
        ("pyheap::Gc::new", l_gc, None),
        ("pyheap::unsync::Gc::new", l_ugc, None),
        ("allocator_api2 Vec", l_api, Some(300)),
        ("a large block (system allocator)", l_large, Some(100_000)),
    ] {
        let (sz, count) = *lines
            .get(&line)
            .unwrap_or_else(|| panic!("no trace at line {line} ({what}); lines: {lines:?}"));
        assert!(count >= 1, "{what}");
        if let Some(size) = size {
            assert_eq!(sz, size, "{what} at line {line}");
        }
    }
    drop((v, b, s, grown, m, g, u, a, big));
}

#[test]
fn sizes_add_up_to_traced_memory() {
    // In a child process running this test alone: the test harness's other threads, which
    // allocate as tests start and end, would be traced meanwhile.
    if std::env::var_os("TRACEMALLOC_QUIET_CHILD").is_none() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sizes_add_up_to_traced_memory",
                "--exact",
                "--test-threads=1",
            ])
            .env("TRACEMALLOC_QUIET_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let _t = tracing(3);
    let keep: Vec<Vec<u8>> = (1..200).map(|n| vec![0u8; n * 7]).collect();
    // The harness's main thread may still allocate as this test starts (it files the running
    // test): take the snapshot again while the traced memory moved under it.
    let mut tries = 0;
    let (snap, after, peak) = loop {
        let (before, _) = tracemalloc::get_traced_memory();
        let snap = tracemalloc::take_snapshot();
        let (after, peak) = tracemalloc::get_traced_memory();
        if before == after {
            break (snap, after, peak);
        }
        tries += 1;
        assert!(
            tries < 20,
            "the traced memory never stood still: {before} then {after}"
        );
    };
    let total: usize = snap.traces().iter().map(|t| t.size).sum();
    assert_eq!(total, after);
    let by_stat: usize = snap
        .statistics(KeyType::Filename)
        .iter()
        .map(|s| s.size)
        .sum();
    assert_eq!(by_stat, total);
    let by_tb: usize = snap
        .statistics(KeyType::Traceback)
        .iter()
        .map(|s| s.size)
        .sum();
    assert_eq!(by_tb, total);
    assert!(peak >= after);
    let mine: usize = (1..200).map(|n| n * 7).sum::<usize>() + 199 * 24;
    let this_file: usize = by_line(&snap).values().map(|v| v.0).sum();
    assert_eq!(this_file, mine);
    let (c1, p1) = tracemalloc::get_traced_memory();
    drop(keep);
    let (c2, p2) = tracemalloc::get_traced_memory();
    assert_eq!(
        c1 - c2,
        mine,
        "freeing forgets exactly the freed blocks' sizes"
    );
    assert_eq!(p2, p1, "freeing leaves the peak");
}

#[test]
fn compare_to_finds_exactly_the_growth() {
    let _t = tracing(1);
    let mut cache: Vec<Box<[u8; 64]>> = Vec::with_capacity(1000);
    let old = tracemalloc::take_snapshot();
    let line = line!() + 2;
    for i in 0..1000 {
        cache.push(Box::new([i as u8; 64]));
    }
    let new = tracemalloc::take_snapshot();
    let diffs: Vec<_> = new
        .filter_traces(&this_file())
        .compare_to(&old.filter_traces(&this_file()), KeyType::Lineno);
    let top = &diffs[0];
    assert_eq!(top.traceback.line().unwrap().lineno(), line);
    assert_eq!((top.size, top.size_diff), (64_000, 64_000));
    assert_eq!((top.count, top.count_diff), (1000, 1000));
    // Nothing else in this file changed.
    assert!(
        diffs[1..]
            .iter()
            .all(|d| d.size_diff == 0 && d.count_diff == 0),
        "{diffs:#?}"
    );
    let text = top.to_string();
    assert_eq!(
        text,
        format!("{FILE}:{line}: size=62.5 KiB (+62.5 KiB), count=1000 (+1000), average=64 B")
    );
    // Freeing half: the diff from `new` shrinks by exactly that.
    cache.truncate(500);
    let newer = tracemalloc::take_snapshot();
    let d = newer
        .filter_traces(&[Filter::include(FILE).lineno(line)])
        .compare_to(
            &new.filter_traces(&[Filter::include(FILE).lineno(line)]),
            KeyType::Lineno,
        );
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].size, d[0].size_diff, d[0].count_diff),
        (32_000, -32_000, -500)
    );
}

#[test]
fn freed_blocks_lose_their_traces() {
    let _t = tracing(1);
    let line = line!() + 1;
    let blocks: Vec<Box<[u8; 40]>> = (0..50).map(|_| Box::new([0u8; 40])).collect();
    let (with, _) = tracemalloc::get_traced_memory();
    // 50 boxes and the vector holding them.
    assert_eq!(
        by_line(&tracemalloc::take_snapshot())[&line],
        (2000 + 50 * 8, 51)
    );
    drop(blocks);
    // (The exact drop of the traced memory is checked in `sizes_add_up_to_traced_memory`,
    // alone in its process: here the harness's threads allocate meanwhile.)
    let (_, peak) = tracemalloc::get_traced_memory();
    assert!(peak >= with);
    assert!(!by_line(&tracemalloc::take_snapshot()).contains_key(&line));
    tracemalloc::reset_peak();
    assert_eq!(
        tracemalloc::get_traced_memory().1,
        tracemalloc::get_traced_memory().0
    );
}

/// Medium blocks (513 B to 32 KiB: the medium spans up to 4 KiB, `malloc` above, both through
/// the thread's medium cache) are traced at their lines by their requested sizes, lose their
/// traces when freed into the cache, and are traced again at the new line when the cache
/// hands them out again.
#[test]
fn medium_blocks_through_the_cache_are_traced() {
    let _t = tracing(1);
    let size = |i: usize| 600 + 16 * (i % 2) + 5000 * (i % 3);
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(200);
    let line = line!() + 1;
    blocks.extend((0..200).map(|i| vec![1u8; size(i)]));
    let want: usize = (0..200).map(size).sum();
    assert_eq!(by_line(&tracemalloc::take_snapshot())[&line], (want, 200));
    drop(blocks);
    // Freed into the medium cache (or to their spans): no trace left at the line.
    assert!(!by_line(&tracemalloc::take_snapshot()).contains_key(&line));
    let mut again: Vec<Vec<u8>> = Vec::with_capacity(200);
    let again_line = line!() + 1;
    again.extend((0..200).map(|_| vec![2u8; 610]));
    assert_eq!(
        by_line(&tracemalloc::take_snapshot())[&again_line],
        (200 * 610, 200),
        "blocks the cache handed out again are traced at their new line"
    );
    drop(again);
    assert!(!by_line(&tracemalloc::take_snapshot()).contains_key(&again_line));
}

/// Large blocks (256 KiB to 32 MiB: runs of pools carved from the arenas) are traced at their
/// lines by their requested sizes, lose their traces when freed (into the thread's kept
/// blocks, or back to the arenas), are traced again at the new line when a kept block serves
/// a request again, and a `realloc` between shapes moves the trace to the new size (at the
/// `realloc`'s line).
#[test]
fn large_blocks_kept_and_resized_are_traced() {
    let _t = tracing(1);
    let sizes = [300_000, 1 << 20, 3 << 20, 5 << 20];
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(4);
    let line = line!() + 1;
    blocks.extend(sizes.iter().map(|&n| vec![1u8; n]));
    let want: usize = sizes.iter().sum();
    assert_eq!(by_line(&tracemalloc::take_snapshot())[&line], (want, 4));
    drop(blocks);
    // Kept by the thread (the first three) or given back (5 MiB): no trace left.
    assert!(!by_line(&tracemalloc::take_snapshot()).contains_key(&line));
    let again_line = line!() + 1;
    let mut again: Vec<u8> = Vec::with_capacity(1 << 20);
    assert_eq!(
        by_line(&tracemalloc::take_snapshot())[&again_line],
        (1 << 20, 1),
        "a kept block handed out again is traced at its new line"
    );
    // Grown into more arenas (`realloc` moves the old block's arenas into the new one): the
    // trace is the `realloc`'s, as in CPython, of the new size.
    let grow_line = line!() + 1;
    again.reserve_exact((6 << 20) - again.len());
    let cap = again.capacity();
    assert!(cap >= 6 << 20);
    let by = by_line(&tracemalloc::take_snapshot());
    assert_eq!(by[&grow_line], (cap, 1), "the trace follows the block");
    assert!(!by.contains_key(&again_line));
    drop(again);
    assert!(!by_line(&tracemalloc::take_snapshot()).contains_key(&grow_line));
}

#[test]
fn object_tracebacks_of_pointers_and_both_gc_flavors() {
    let _t = tracing(2);
    let l1 = line!() + 1;
    let shared = pyheap::Gc::new(std::sync::Mutex::new(vec![1, 2, 3]));
    let l2 = line!() + 1;
    let local = pyheap::unsync::Gc::new(String::from("x"));
    let l3 = line!() + 1;
    let unit = pyheap::unsync::Gc::new(());
    let l4 = line!() + 1;
    let boxed = Box::new([5u64; 20]);
    let l5 = line!() + 1;
    let big = vec![1u32; 10_000];
    for (what, tb, line) in [
        ("Gc", tracemalloc::get_object_traceback(&shared), l1),
        ("unsync::Gc", tracemalloc::get_object_traceback(&local), l2),
        (
            "unsync::Gc<()>",
            tracemalloc::get_object_traceback(&unit),
            l3,
        ),
        ("Box", tracemalloc::get_object_traceback(&boxed), l4),
        // A pointer into the middle of a pool block, and of a large block.
        (
            "&boxed[7]",
            tracemalloc::get_object_traceback(&boxed[7] as *const u64),
            l4,
        ),
        (
            "&big[5000]",
            tracemalloc::get_object_traceback(&big[5000] as *const u32),
            l5,
        ),
    ] {
        let tb = tb.unwrap_or_else(|| panic!("{what}: no traceback"));
        let f = tb.line().unwrap();
        assert_eq!((f.filename(), f.lineno()), (FILE, line), "{what}: {tb}");
        assert!(tb.len() <= 2);
    }
    // Not traced: allocated before tracing started, or not a heap block.
    let x = 5u64;
    assert!(tracemalloc::get_object_traceback(&x as *const u64).is_none());
    drop((shared, local, unit, boxed, big));
}

#[test]
fn tracebacks_have_the_limit_and_read_like_python() {
    let _t = tracing(4);
    assert_eq!(tracemalloc::get_traceback_limit(), 4);
    let line = helper_allocates();
    let snap = tracemalloc::take_snapshot().filter_traces(&this_file());
    let st: Vec<Statistic> = snap.statistics(KeyType::Traceback);
    let st = st
        .iter()
        .find(|s| s.traceback.line().unwrap().lineno() == line)
        .unwrap();
    let frames = st.traceback.frames();
    assert!(frames.len() >= 2 && frames.len() <= 4, "{:?}", frames);
    assert_eq!(frames[0].name(), "tracemalloc_lines::helper_allocates");
    assert_eq!(frames[1].filename(), FILE);
    assert!(frames[1].name().contains("tracebacks_have_the_limit"));
    let text = st.traceback.to_string();
    // Python's order: oldest first, the allocation last, with the source lines.
    let last_two: Vec<&str> = text.lines().rev().take(2).collect();
    assert_eq!(
        last_two[0],
        "    let v = std::hint::black_box(vec![0u8; 777]);"
    );
    assert_eq!(
        last_two[1],
        format!("  File \"{FILE}\", line {line}, in tracemalloc_lines::helper_allocates")
    );
    assert_eq!(
        st.to_string(),
        format!("{FILE}:{line}: size=777 B, count=1, average=777 B")
    );
    drop(LEAK.lock().unwrap().take());
}

static LEAK: Mutex<Option<Vec<u8>>> = Mutex::new(None);

#[inline(never)]
fn helper_allocates() -> u32 {
    let line = line!() + 1;
    let v = std::hint::black_box(vec![0u8; 777]);
    *LEAK.lock().unwrap() = Some(v);
    line
}

#[test]
fn filters_by_file_line_and_domain() {
    let _t = tracing(2);
    let l_small = line!() + 1;
    let small: Vec<Box<u64>> = (0..10).map(Box::new).collect();
    let l_big = line!() + 1;
    let big = vec![0u8; 4096];
    let snap = tracemalloc::take_snapshot();
    let mine = snap.filter_traces(&this_file());
    let lines = |s: &Snapshot| {
        let mut v: Vec<u32> = by_line(s).keys().copied().collect();
        v.sort();
        v
    };
    assert!(lines(&mine).contains(&l_small) && lines(&mine).contains(&l_big));
    let only_small = mine.filter_traces(&[Filter::include(FILE).lineno(l_small)]);
    assert_eq!(lines(&only_small), [l_small]);
    let no_small = mine.filter_traces(&[Filter::exclude(FILE).lineno(l_small)]);
    assert!(!lines(&no_small).contains(&l_small));
    let pool = mine.filter_traces(&[Filter::domain_only(true, tracemalloc::POOL_DOMAIN)]);
    assert!(lines(&pool).contains(&l_small) && !lines(&pool).contains(&l_big));
    let system = mine.filter_traces(&[Filter::domain_only(false, tracemalloc::POOL_DOMAIN)]);
    assert!(!lines(&system).contains(&l_small) && lines(&system).contains(&l_big));
    // A pattern that matches no file, on any frame, keeps nothing when inclusive.
    assert!(snap
        .filter_traces(&[Filter::include("*/nowhere.rs").all_frames(true)])
        .traces()
        .is_empty());
    // No filter: a copy.
    assert_eq!(snap.filter_traces(&[]).traces().len(), snap.traces().len());
    drop((small, big));
}

#[test]
fn controls() {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(!tracemalloc::is_tracing());
    // Nothing traced while not tracing.
    let before = vec![1u8; 1000];
    assert!(tracemalloc::take_snapshot().traces().is_empty());
    tracemalloc::start(1);
    assert!(tracemalloc::is_tracing());
    assert!(tracemalloc::get_object_traceback(before.as_ptr()).is_none());
    let during = vec![1u8; 1000];
    assert!(tracemalloc::get_traced_memory().0 >= 1000);
    assert!(tracemalloc::get_tracemalloc_memory() > 0);
    tracemalloc::clear_traces();
    assert!(tracemalloc::is_tracing());
    assert!(tracemalloc::get_object_traceback(during.as_ptr()).is_none());
    let after = vec![1u8; 1000];
    assert!(tracemalloc::get_object_traceback(after.as_ptr()).is_some());
    tracemalloc::stop();
    assert!(!tracemalloc::is_tracing());
    assert_eq!(tracemalloc::get_traced_memory(), (0, 0));
    assert!(tracemalloc::get_object_traceback(after.as_ptr()).is_none());
    assert!(std::panic::catch_unwind(|| tracemalloc::start(0)).is_err());
    assert!(std::panic::catch_unwind(|| tracemalloc::start(tracemalloc::MAX_NFRAMES + 1)).is_err());
    drop((before, during, after, g));
}
