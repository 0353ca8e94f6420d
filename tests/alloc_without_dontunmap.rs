//! Large blocks on a kernel without `MREMAP_DONTUNMAP` (Linux before 5.7): the paths that
//! move pages with it fall back, and nothing a program sees changes.
//!
//! Two places use the flag (`src/alloc/arena/large_blocks.rs`):
//! * `fill_purged` moves the pages of spare (resident) places into a new block's purged
//!   places. Refused, the destinations stay purged (the block faults its pages in) and the
//!   sources stay resident and spare.
//! * A block growing into more arenas in a region has its old places moved behind the copy of
//!   its head's part. Refused, the rest of the block is copied too and the old block freed.
//!
//! The kernel here has the flag, so this process takes it away: a seccomp filter makes every
//! `mremap` with `MREMAP_DONTUNMAP` fail with `EINVAL`, which is what an older kernel
//! answers to a flag it does not know. The test checks the filter works (a direct call
//! fails), then runs what needs those paths: blocks beyond the spare limit then zeroed blocks
//! that need fills, a `Vec` grown through several arena counts, and random allocations,
//! resizes and frees of 256 KiB to 12 MiB with 160 MiB live. Every block's bytes are checked
//! before it is resized or freed, zeroed blocks are checked zero, and the arena counts must
//! add up throughout. The filter lasts for the process, so this binary holds this one test.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;

use common::{counted, Rng};
use pyheap::alloc::{purge, set_purge_delay};
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::time::Duration;

#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// `AUDIT_ARCH_*` of the target (`<linux/audit.h>`): the filter checks it before it trusts a
/// system call number.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Make every `mremap` of this process (all its threads) whose flags include
/// `MREMAP_DONTUNMAP` fail with `EINVAL`, and let every other system call through.
fn refuse_mremap_dontunmap() {
    // Classic BPF over `struct seccomp_data`: `nr` at 0, `arch` at 4, `args[i]` at 16 + 8i
    // (the low 32 bits first: both targets are little-endian). `mremap`'s flags are args[3].
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let allow = libc::SECCOMP_RET_ALLOW;
    let refuse = libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32;
    let mut program = [
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 1, 0, AUDIT_ARCH),
        op(RET_K, 0, 0, allow),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 3, libc::SYS_mremap as u32),
        op(LD_W_ABS, 0, 0, 16 + 8 * 3),
        op(JSET_K, 0, 1, libc::MREMAP_DONTUNMAP as u32),
        op(RET_K, 0, 0, refuse),
        op(RET_K, 0, 0, allow),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain system calls; `prog` points at a valid program for the duration of the
    // call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let r = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &prog as *const libc::sock_fprog,
        );
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

/// Whether this process may still `mremap` with `MREMAP_DONTUNMAP` (on a mapping of its own).
fn dontunmap_works() -> bool {
    let size = 4 * PAGE;
    // SAFETY: anonymous mappings of our own, unmapped below.
    unsafe {
        let map = || {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let (from, to) = (map(), map());
        assert!(from != libc::MAP_FAILED && to != libc::MAP_FAILED);
        let p = libc::mremap(
            from,
            size,
            size,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
            to,
        );
        let errno = std::io::Error::last_os_error().raw_os_error();
        libc::munmap(from, size);
        libc::munmap(to, size);
        if p == libc::MAP_FAILED {
            assert_eq!(errno, Some(libc::EINVAL));
        }
        p != libc::MAP_FAILED
    }
}

/// A block of `size` bytes with its `tag` in every page, at a page offset of its own (so a
/// block whose pages were swapped with another's shows).
struct Big {
    ptr: *mut u8,
    size: usize,
    tag: u8,
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

impl Big {
    fn new(size: usize, tag: u8) -> Big {
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout(size)) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        let b = Big { ptr, size, tag };
        b.write(0);
        b
    }

    fn zeroed(size: usize, tag: u8) -> Big {
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout(size)) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        // SAFETY: the block's bytes, initialized (zeroed).
        let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!(
                "alloc_zeroed({size}) = {ptr:p}: byte {i} is {:#x}",
                bytes[i]
            );
        }
        let b = Big { ptr, size, tag };
        b.write(0);
        b
    }

    /// Where the tag goes in page `page`.
    fn offset(&self, page: usize) -> usize {
        page * PAGE + (page * 8 + self.tag as usize) % PAGE
    }

    /// Write the tag in every page from byte `from` on.
    fn write(&self, from: usize) {
        for page in from / PAGE..self.size.div_ceil(PAGE) {
            let o = self.offset(page);
            if from <= o && o < self.size {
                // SAFETY: inside the block.
                unsafe { self.ptr.add(o).write(self.tag ^ page as u8) };
            }
        }
    }

    /// Check the tag in every page of the first `len` bytes.
    fn check(&self, len: usize) {
        for page in 0..len.min(self.size).div_ceil(PAGE) {
            let o = self.offset(page);
            if o < len.min(self.size) {
                // SAFETY: inside the block.
                let b = unsafe { *self.ptr.add(o) };
                assert_eq!(
                    b,
                    self.tag ^ page as u8,
                    "block {:p} of {} B (tag {}), page {page}",
                    self.ptr,
                    self.size,
                    self.tag
                );
            }
        }
    }

    /// Resize to `size` bytes; the old bytes must survive, the new ones get the tag.
    fn resize(&mut self, size: usize) {
        self.check(self.size);
        // SAFETY: allocated with `layout(self.size)`; `size` is non-zero.
        let p = unsafe { realloc(self.ptr, layout(self.size), size) };
        assert!(!p.is_null(), "realloc to {size} bytes failed");
        let old = self.size;
        self.ptr = p;
        self.size = size;
        self.check(old);
        self.write(old);
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        self.check(self.size);
        // SAFETY: allocated with this layout, freed once.
        unsafe { dealloc(self.ptr, layout(self.size)) }
    }
}

#[test]
fn large_blocks_work_without_mremap_dontunmap() {
    common::wait_for_harness_idle();
    refuse_mremap_dontunmap();
    assert!(
        !dontunmap_works(),
        "the filter let MREMAP_DONTUNMAP through"
    );
    set_purge_delay(Duration::MAX);
    purge();
    let base = counted("start");
    let rss_base = common::rss_bytes();

    // Fills refused: 100 blocks of 1.5 MiB freed leave 64 spare places, the rest purged;
    // blocks of 32 MiB then need purged places filled (`fill_purged`), which the kernel
    // refuses here: those places fault in as zero pages.
    let blocks: Vec<Big> = (0..100).map(|i| Big::new(1536 * 1024, i as u8)).collect();
    drop(blocks);
    counted("after the 1.5 MiB blocks");
    let z: Vec<Big> = (0..4)
        .map(|i| Big::zeroed(32 * MIB, 200 + i as u8))
        .collect();
    let mid: Vec<Big> = (0..6)
        .map(|i| Big::zeroed(3 * MIB + 12_345, 210 + i as u8))
        .collect();
    drop(z);
    drop(mid);
    counted("after the zeroed blocks");

    // Growth into more arenas, refused the move: each step copies. A `Vec` grown by hand
    // from 300 KiB to 24 MiB, then shrunk.
    let mut v = Big::new(300 * 1024, 77);
    for size in [
        600 * 1024,
        MIB + 5,
        3 * MIB,
        3 * MIB + 700 * 1024,
        9 * MIB,
        24 * MIB,
        2 * MIB,
        400 * 1024,
    ] {
        v.resize(size);
        counted("after a resize");
    }
    drop(v);

    // Random allocations, resizes and frees, 160 MiB live at most: trims, fills (refused) and
    // growing resizes (copied) interleave.
    let mut rng = Rng::new(0x5eed);
    let mut live: Vec<Big> = Vec::new();
    let mut bytes = 0usize;
    for k in 0..1_500 {
        let size = rng.range(256 * 1024, 12 * MIB);
        let tag = (k % 251) as u8;
        match rng.below(4) {
            0 | 1 if bytes + size <= 160 * MIB => {
                bytes += size;
                live.push(if rng.below(3) == 0 {
                    Big::zeroed(size, tag)
                } else {
                    Big::new(size, tag)
                });
            }
            2 if !live.is_empty() => {
                let i = rng.below(live.len());
                if bytes - live[i].size + size <= 160 * MIB {
                    bytes = bytes - live[i].size + size;
                    live[i].resize(size);
                }
            }
            _ if !live.is_empty() => {
                let b = live.swap_remove(rng.below(live.len()));
                bytes -= b.size;
            }
            _ => {}
        }
        if k % 100 == 0 {
            counted("random operations");
        }
    }
    drop(live);
    let freed = counted("all freed");

    // What was kept resident goes back with `purge()`: spare places the refused fills left
    // resident are still counted as such, and purged.
    purge();
    let purged = counted("after purge()");
    let beyond = purged.arenas_mapped.saturating_sub(base.arenas_mapped);
    assert!(
        beyond <= 2.max(purged.arenas_mapped / 8) + 2,
        "purge() left {beyond} arenas' worth beyond the start:\n{purged}\n(before purge():\n{freed})"
    );
    let rss = common::rss_bytes();
    assert!(
        rss <= rss_base + 24 * MIB,
        "RSS {rss} bytes after purge(), {rss_base} at the start"
    );
}
