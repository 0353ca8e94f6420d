//! Workload 6, `fragmentation`: resident memory after freeing a random 90% of 2M small
//! objects. A memory measurement, not a timing.
//!
//! Allocate 2,000,000 objects of 24..=64 bytes (mixed, as `Box<[u8; N]>` would ask), write
//! every byte, then free a random 90% and keep the rest. The survivors are spread over all
//! the memory touched, so an allocator gets pages back only where a whole page (pool,
//! segment, run) emptied. RSS (`/proc/self/statm`) is read before, at the peak, after the
//! frees, and after freeing the survivors too. The table of object pointers (17 MiB) is
//! mapped directly with `mmap`, outside the allocator under test, and made resident before
//! the first reading, so it is part of every reading and the same for all contenders.
//!
//! Run first in the process, before any timing bench, so earlier benches don't leave memory
//! behind; the baseline still includes whatever the allocator and the runtime set up at
//! start. Results go to `<criterion dir>/fragmentation/<contender>.tsv` and stdout.

use super::rng::XorShift;
use std::alloc::{alloc, dealloc, Layout};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::ptr;

const OBJECTS: usize = 2_000_000;
const MIN: usize = 24;
const MAX: usize = 64;
const ALIGN: usize = 8;
/// One survivor in this many.
const KEEP_ONE_IN: usize = 10;

/// Resident set size in bytes, from `/proc/self/statm` (0 where unavailable).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// `len` zeroed `T`s mapped from the OS and made resident, bypassing the global allocator.
struct OsArray<T> {
    ptr: *mut T,
    len: usize,
}

impl<T: Copy> OsArray<T> {
    fn new(len: usize) -> OsArray<T> {
        let bytes = len * std::mem::size_of::<T>();
        // SAFETY: an anonymous private mapping; checked below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap failed");
        OsArray { ptr: p.cast(), len }
    }

    fn get(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: in bounds; zeroed memory is a valid T for the raw pointers/sizes used here.
        unsafe { self.ptr.add(i).read() }
    }

    fn set(&mut self, i: usize, v: T) {
        assert!(i < self.len);
        // SAFETY: in bounds.
        unsafe { self.ptr.add(i).write(v) }
    }
}

impl<T> Drop for OsArray<T> {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        unsafe { libc::munmap(self.ptr.cast(), self.len * std::mem::size_of::<T>()) };
    }
}

/// Where criterion writes: `$CRITERION_HOME`, `$CARGO_TARGET_DIR/criterion`, or
/// `<target>/criterion` found from this executable's path (`<target>/release/deps/...`).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    match exe.ancestors().nth(3) {
        Some(target) if !target.as_os_str().is_empty() => target.join("criterion"),
        _ => PathBuf::from("target/criterion"),
    }
}

pub fn run(contender: &str) {
    let mut ptrs: OsArray<*mut u8> = OsArray::new(OBJECTS);
    let mut sizes: OsArray<u8> = OsArray::new(OBJECTS);
    let mut rng = XorShift::new(6);

    let rss_before = rss();
    let mut live_peak = 0u64;
    for i in 0..OBJECTS {
        let size = rng.range(MIN, MAX);
        // SAFETY: non-zero size, valid alignment.
        let p = unsafe { alloc(Layout::from_size_align(size, ALIGN).unwrap()) };
        assert!(!p.is_null(), "allocation failed");
        // SAFETY: `p` has `size` writable bytes.
        unsafe { ptr::write_bytes(p, 0xA5, size) };
        ptrs.set(i, p);
        sizes.set(i, size as u8);
        live_peak += size as u64;
    }
    let rss_peak = rss();

    let mut live_after = 0u64;
    let free = |ptrs: &OsArray<*mut u8>, sizes: &OsArray<u8>, i: usize| {
        let layout = Layout::from_size_align(sizes.get(i) as usize, ALIGN).unwrap();
        // SAFETY: allocated above with this layout, freed once (the pointer is nulled).
        unsafe { dealloc(ptrs.get(i), layout) };
    };
    for i in 0..OBJECTS {
        if rng.below(KEEP_ONE_IN) == 0 {
            live_after += sizes.get(i) as u64;
        } else {
            free(&ptrs, &sizes, i);
            ptrs.set(i, ptr::null_mut());
        }
    }
    let rss_after_free = rss();

    for i in 0..OBJECTS {
        if !ptrs.get(i).is_null() {
            free(&ptrs, &sizes, i);
        }
    }
    let rss_all_freed = rss();

    let rows = [
        ("objects", OBJECTS as u64),
        ("live_bytes_peak", live_peak),
        ("live_bytes_after_free", live_after),
        ("rss_before", rss_before),
        ("rss_peak", rss_peak),
        ("rss_after_free", rss_after_free),
        ("rss_all_freed", rss_all_freed),
    ];
    let mut tsv = String::from("metric\tbytes\n");
    for (k, v) in rows {
        writeln!(tsv, "{k}\t{v}").unwrap();
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "fragmentation/{contender}: rss before {:.1} MiB, peak {:.1} MiB, after freeing 90% \
         {:.1} MiB, after freeing all {:.1} MiB (live {:.1} -> {:.1} MiB)",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after_free),
        mib(rss_all_freed),
        mib(live_peak),
        mib(live_after),
    );
    let dir = criterion_dir().join("fragmentation");
    let path = dir.join(format!("{contender}.tsv"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, tsv)) {
        eprintln!("fragmentation: cannot write {}: {e}", path.display());
    }
}
