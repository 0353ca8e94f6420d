//! What pyheap costs a program that locks its memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`,
//! as real-time programs and programs holding secrets do). Then the OS populates, and locks,
//! every page of every mapping that can be read, when the mapping is made (or at the call,
//! for the mappings already there), whether the program ever touches it. pyheap reserved
//! address space counting on pages being populated only when touched, and before session 34
//! such a program paid (measured, `Rss` of each mapping):
//!
//! * 32 MiB at the lock for the arena map (`arena_map.rs`: a bitmap of the address space);
//! * 64 MiB at its first large block for a region (`arena/regions.rs`), and 128 MiB more for
//!   a moment (the alignment's over-mapping);
//! * 8 MiB of glibc heap top padding (`glibc_tuning.rs`) for the main heap and for every
//!   thread's glibc arena: 40 MiB with four threads.
//!
//! Now the map is read-only where no arena is, regions are inaccessible where no place was
//! ever taken, and the padding goes once pyheap sees the lock (at `purge()` here; also when it
//! maps a new thread's heap). The test measures the resident memory of the process's
//! anonymous mappings (its heap's and pyheap's; not its binary's) step by step and bounds
//! each step well below what the old layout cost.
//!
//! The lock lasts for the process, so this binary runs without the test harness (its first
//! requests are this program's). Without the privilege to lock enough (`RLIMIT_MEMLOCK`
//! without `CAP_IPC_LOCK`) it says so and passes.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[cfg(not(target_os = "linux"))]
fn main() {}

#[cfg(target_os = "linux")]
fn main() {
    imp::main();
}

#[cfg(target_os = "linux")]
mod imp {
    use crate::common;
    use std::alloc::{alloc, dealloc, Layout};
    use std::sync::{Arc, Barrier};

    const KIB: usize = 1024;
    const MIB: usize = 1 << 20;

    /// One mapping of `/proc/self/smaps`: its header line and its resident bytes.
    struct Mapping {
        header: String,
        anonymous: bool,
        rss: usize,
    }

    fn mappings() -> Vec<Mapping> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read smaps");
        let mut out: Vec<Mapping> = Vec::new();
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                // address perms offset dev inode [path]
                let path = fields.nth(4);
                out.push(Mapping {
                    header: line.to_string(),
                    anonymous: path.is_none() || path == Some("[heap]"),
                    rss: 0,
                });
            } else if first == "Rss:" {
                let kib: usize = fields.next().unwrap().parse().unwrap();
                out.last_mut().expect("Rss before a mapping").rss = kib * KIB;
            }
        }
        out
    }

    /// Resident bytes of the anonymous mappings and `[heap]` (the binary's and the shared
    /// libraries' pages, locked as well, are the same with any allocator).
    fn anonymous_rss() -> usize {
        mappings()
            .iter()
            .filter(|m| m.anonymous)
            .map(|m| m.rss)
            .sum()
    }

    /// The anonymous mappings with 256 KiB or more resident, for a failure's message.
    fn big_mappings() -> String {
        mappings()
            .iter()
            .filter(|m| m.anonymous && m.rss >= 256 * KIB)
            .map(|m| format!("{:>8} KiB  {}\n", m.rss / KIB, m.header))
            .collect()
    }

    /// Panics unless the anonymous memory grew by at most `limit` since `before`; returns
    /// the new figure.
    fn step(what: &str, before: usize, limit: usize) -> usize {
        let now = anonymous_rss();
        let grown = now.saturating_sub(before);
        eprintln!("{what}: +{} KiB (at most {} KiB)", grown / KIB, limit / KIB);
        assert!(
            grown <= limit,
            "{what}: the locked anonymous memory grew by {} KiB, more than {} KiB:\n{}",
            grown / KIB,
            limit / KIB,
            big_mappings()
        );
        now
    }

    pub fn main() {
        // SAFETY: a plain system call; it changes only whether our pages may be swapped.
        if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
            eprintln!(
                "skipped: mlockall failed ({}); RLIMIT_MEMLOCK too low without CAP_IPC_LOCK",
                std::io::Error::last_os_error()
            );
            return;
        }
        if !common::can_lock(256 * MIB) {
            // SAFETY: a plain system call.
            unsafe { libc::munlockall() };
            eprintln!(
                "skipped: locked, but 256 MiB more cannot be (RLIMIT_MEMLOCK without CAP_IPC_LOCK)"
            );
            return;
        }
        // The padding glibc's heap got before `main` goes back once pyheap sees the lock.
        pyheap::alloc::purge();
        assert!(
            !pyheap::alloc::glibc_tuned() || pyheap::alloc::glibc_top_pad_dropped(),
            "purge() in a locked program left glibc's 8 MiB heap top padding"
        );
        // At the start: an arena or two, a heap, the runtime's blocks; 32 MiB more with the
        // arena map writable, 8 MiB more with glibc's padding.
        let start = step("at the start (from nothing)", 0, 8 * MIB);

        // Small blocks, a few arenas' worth, and medium ones.
        let small: Vec<Vec<u8>> = (0..20_000).map(|i| vec![1; 16 + i % 400]).collect();
        let medium: Vec<Vec<u8>> = (0..200).map(|i| vec![2; 600 + i * 20]).collect();
        let in_use = small.iter().chain(&medium).map(|v| v.len()).sum::<usize>();
        let now = step("small and medium blocks", start, in_use + 4 * MIB);

        // The first large block: its places (4 MiB) only. A whole region was 64 MiB.
        let layout = Layout::from_size_align(3 * MIB, 16).unwrap();
        // SAFETY: a non-zero size; the block is written whole and freed below.
        let big = unsafe { alloc(layout) };
        assert!(!big.is_null());
        // SAFETY: the block's bytes.
        unsafe { big.write_bytes(3, 3 * MIB) };
        let now = step("the first large block (3 MiB)", now, 6 * MIB);

        // Four threads with small stacks, each with small, medium and glibc blocks. With
        // glibc's padding each thread's arena was 8 MiB.
        let barrier = Arc::new(Barrier::new(5));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let barrier = barrier.clone();
                std::thread::Builder::new()
                    .stack_size(256 * KIB)
                    .spawn(move || {
                        let blocks: Vec<Vec<u8>> = (0..300)
                            .map(|i| vec![t as u8; [24, 200, 3000, 20_000][i % 4]])
                            .collect();
                        let glibc = vec![5u8; 200 * KIB];
                        barrier.wait();
                        barrier.wait();
                        drop((blocks, glibc));
                    })
                    .unwrap()
            })
            .collect();
        barrier.wait();
        let per_thread = 256 * KIB + 75 * (24 + 200 + 3000 + 20_000) + 200 * KIB;
        step("four threads", now, 4 * per_thread + 6 * MIB);
        barrier.wait();
        for t in threads {
            t.join().unwrap();
        }

        // SAFETY: allocated above with this layout, freed once.
        unsafe { dealloc(big, layout) };
        drop((small, medium));
        pyheap::alloc::purge();
        common::counted("end");
        eprintln!("{}", big_mappings());
    }
}
