//! Helpers shared by the allocator's integration tests: a small deterministic random number
//! generator, per-owner byte patterns for checking that blocks keep their contents, and
//! reading the process's resident memory.
#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::Layout;

/// xorshift64*: deterministic, dependency-free, good enough to pick sizes and actions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

/// The byte at offset `i` of a block filled for `tag`.
#[inline]
pub fn pattern_byte(tag: u64, i: usize) -> u8 {
    (tag as u8) ^ (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_mul(7) ^ (tag >> 8) as u8
}

/// Fill `len` bytes at `p` with `tag`'s pattern.
///
/// # Safety
/// `p` is valid for `len` bytes of writes.
pub unsafe fn fill(p: *mut u8, len: usize, tag: u64) {
    for i in 0..len {
        // SAFETY: `i < len` (caller's contract).
        unsafe { p.add(i).write(pattern_byte(tag, i)) };
    }
}

/// The first offset in `len` bytes at `p` that does not hold `tag`'s pattern.
///
/// # Safety
/// `p` is valid for `len` bytes of reads.
pub unsafe fn first_mismatch(p: *const u8, len: usize, tag: u64) -> Option<usize> {
    // SAFETY: `i < len` (caller's contract).
    (0..len).find(|&i| unsafe { p.add(i).read() } != pattern_byte(tag, i))
}

/// A raw allocation: the pointer, its layout, and the tag its contents were filled with.
/// `Send` so that tests can hand blocks to other threads to free.
pub struct Block {
    pub ptr: *mut u8,
    pub layout: Layout,
    pub tag: u64,
}

// SAFETY: a `Block` owns its allocation exclusively; the global allocator's blocks may be
// freed by any thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocate through the global allocator and fill with `tag`'s pattern.
    pub fn new(size: usize, align: usize, tag: u64) -> Block {
        let layout = Layout::from_size_align(size, align).unwrap();
        assert!(size > 0, "zero-size layouts are not for GlobalAlloc");
        // SAFETY: a valid layout of non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "allocation of {layout:?} failed");
        assert_eq!(ptr as usize % align, 0, "{layout:?} misaligned: {ptr:p}");
        // SAFETY: a fresh block of `size` bytes.
        unsafe { fill(ptr, size, tag) };
        Block { ptr, layout, tag }
    }

    /// Panics if the contents are not the pattern written at creation.
    pub fn verify(&self) {
        // SAFETY: the block is live and `layout.size()` bytes long.
        if let Some(i) = unsafe { first_mismatch(self.ptr, self.layout.size(), self.tag) } {
            panic!(
                "block {:p} ({:?}, tag {}) corrupted at offset {i}",
                self.ptr, self.layout, self.tag
            );
        }
    }

    /// Verify, then free.
    pub fn free(self) {
        self.verify();
        // SAFETY: allocated by `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// Resident memory of this process in bytes (`/proc/self/statm`, field 2, times the page
/// size).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .expect("statm field 2")
        .parse()
        .expect("statm number");
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

/// Wait until the test harness's main thread is asleep (blocked waiting for test results).
///
/// libtest's main thread spawns the test thread and then allocates a little (channel waiter
/// state) before it blocks; in a binary whose tests assert exact process-wide allocator
/// stats, a baseline taken before that would count those blocks as leaked by the test. Call
/// this before taking such a baseline. Gives up (and returns) after about ten seconds.
pub fn wait_for_harness_idle() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: gettid has no preconditions.
    if unsafe { libc::gettid() } == pid {
        return; // running on the main thread itself (--test-threads=1)
    }
    let path = format!("/proc/self/task/{pid}/stat");
    for _ in 0..10_000 {
        if let Ok(stat) = std::fs::read_to_string(&path) {
            // The state is the first field after the parenthesized command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.trim_start().chars().next());
            if state == Some('S') {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Address space of this process in bytes (`VmSize`).
pub fn vm_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// The allocator's stats, after checking that its arena counts add up (`mapped_total -
/// returned == mapped`); `what` names the moment in the message.
pub fn counted(what: &str) -> pyheap::alloc::AllocStats {
    let s = pyheap::alloc::stats();
    assert_eq!(
        s.arenas_mapped_total - s.arenas_returned,
        s.arenas_mapped,
        "{what}: mapped total - returned != mapped\n{s}"
    );
    assert_eq!(
        s.arenas_in_flight, 0,
        "{what}: places in flight with no large block being made\n{s}"
    );
    s
}

/// Panics unless the `size` bytes at `p` (a block `alloc_zeroed` returned) are all zero,
/// naming the first that is not; `what` names the block in the message.
///
/// # Safety
/// `p` is a live block of at least `size` bytes.
pub unsafe fn assert_zeroed(p: *const u8, size: usize, what: &str) {
    // SAFETY: the caller's live block of `size` bytes, initialized (zeroed by contract).
    let bytes = unsafe { std::slice::from_raw_parts(p, size) };
    if let Some(i) = bytes.iter().position(|&b| b != 0) {
        panic!(
            "{what}: alloc_zeroed({size}) = {p:p}: byte {i} is {:#x}",
            bytes[i]
        );
    }
}

/// In a process that locked its memory (`mlockall` with `MCL_FUTURE`): whether `bytes` more
/// can be mapped and locked (a mapping is locked at once: beyond `RLIMIT_MEMLOCK`, without
/// `CAP_IPC_LOCK`, it fails, and so would the allocator's own mappings, which is not what the
/// tests of locked processes are about).
pub fn can_lock(bytes: usize) -> bool {
    // SAFETY: an anonymous mapping of our own, unmapped at once.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        libc::munmap(p, bytes);
        true
    }
}
