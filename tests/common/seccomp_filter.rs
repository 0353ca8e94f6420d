//! What the tests of refused system calls share (`alloc_without_dontunmap`,
//! `alloc_remap_partly_refused`, `alloc_commit_refused`): seccomp filters that refuse
//! `mremap` with `MREMAP_DONTUNMAP` (as a kernel before 5.7 does, or, for some lengths only,
//! as a kernel out of mappings might) or `mprotect` of one length, and a large block that
//! carries a tag in every page. A test file includes it with
//! `#[path = "common/seccomp_filter.rs"] mod seccomp_filter;`; a filter lasts for the
//! process, so each such binary holds one test.

#![allow(dead_code)]

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};

pub const PAGE: usize = 4096;

/// `AUDIT_ARCH_*` of the target (`<linux/audit.h>`): the filter checks it before it trusts a
/// system call number.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Make every `mremap` of this process (all its threads) whose flags include
/// `MREMAP_DONTUNMAP` fail with `EINVAL` (with `Some(len)`, only those that move `len` bytes:
/// `len` below 4 GiB), and let every other system call through.
pub fn refuse_mremap_dontunmap(only_len: Option<u32>) {
    refuse(
        libc::SYS_mremap,
        Some((3, libc::MREMAP_DONTUNMAP as u32)),
        only_len.map(|len| (1, len)),
        libc::EINVAL,
    );
}

/// Make every `mprotect` of this process (all its threads) of exactly `len` bytes fail with
/// `ENOMEM` (as when the process is out of mappings), and let every other system call
/// through.
pub fn refuse_mprotect_of(len: u32) {
    refuse(libc::SYS_mprotect, None, Some((1, len)), libc::ENOMEM);
}

/// Install a filter: system call `nr` fails with `errno` when its argument `flag.0` has a bit
/// of `flag.1` set (if given) and its argument `len.0` equals `len.1` (if given; a value
/// below 4 GiB); everything else goes through. The filter lasts for the process.
fn refuse(nr: libc::c_long, flag: Option<(u32, u32)>, len: Option<(u32, u32)>, errno: i32) {
    // Classic BPF over `struct seccomp_data`: `nr` at 0, `arch` at 4, `args[i]` at 16 + 8i
    // (the low 32 bits first: both targets are little-endian).
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut tests: Vec<libc::sock_filter> = Vec::new();
    // Each test jumps to "allow" (the last instruction) when it fails: `jf` is patched below
    // to the distance from the instruction to it.
    tests.push(op(LD_W_ABS, 0, 0, 0));
    tests.push(op(JEQ_K, 0, u8::MAX, nr as u32));
    if let Some((arg, bits)) = flag {
        tests.push(op(LD_W_ABS, 0, 0, 16 + 8 * arg));
        tests.push(op(JSET_K, 0, u8::MAX, bits));
    }
    if let Some((arg, value)) = len {
        tests.push(op(LD_W_ABS, 0, 0, 16 + 8 * arg + 4));
        tests.push(op(JEQ_K, 0, u8::MAX, 0));
        tests.push(op(LD_W_ABS, 0, 0, 16 + 8 * arg));
        tests.push(op(JEQ_K, 0, u8::MAX, value));
    }
    let mut program = vec![
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 1, 0, AUDIT_ARCH),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let n = tests.len();
    for (i, mut t) in tests.into_iter().enumerate() {
        if t.jf == u8::MAX {
            // From instruction `i` of the tests: the refusal, then the allow.
            t.jf = (n - i) as u8;
        }
        program.push(t);
    }
    program.push(op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32));
    program.push(op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
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

/// Whether this process may still `mremap` `size` bytes with `MREMAP_DONTUNMAP` (on a
/// mapping of its own).
pub fn dontunmap_works(size: usize) -> bool {
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
pub struct Big {
    pub ptr: *mut u8,
    pub size: usize,
    pub tag: u8,
}

pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 16).unwrap()
}

impl Big {
    pub fn new(size: usize, tag: u8) -> Big {
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout(size)) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        let b = Big { ptr, size, tag };
        b.write(0);
        b
    }

    pub fn zeroed(size: usize, tag: u8) -> Big {
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout(size)) };
        assert!(!ptr.is_null(), "allocation of {size} bytes failed");
        // SAFETY: a live block of `size` bytes.
        unsafe { crate::common::assert_zeroed(ptr, size, "zeroed block") };
        let b = Big { ptr, size, tag };
        b.write(0);
        b
    }

    /// Where the tag goes in page `page`.
    pub fn offset(&self, page: usize) -> usize {
        page * PAGE + (page * 8 + self.tag as usize) % PAGE
    }

    /// Write the tag in every page from byte `from` on.
    pub fn write(&self, from: usize) {
        for page in from / PAGE..self.size.div_ceil(PAGE) {
            let o = self.offset(page);
            if from <= o && o < self.size {
                // SAFETY: inside the block.
                unsafe { self.ptr.add(o).write(self.tag ^ page as u8) };
            }
        }
    }

    /// Check the tag in every page of the first `len` bytes.
    pub fn check(&self, len: usize) {
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
    pub fn resize(&mut self, size: usize) {
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
