//! glibc's `malloc` behind the pools: tuned so that it stops giving its heap top back to the OS
//! after every batch of medium blocks and faulting it in again.
//!
//! `PoolAlloc` sends requests above 512 bytes to the system allocator. With glibc that is
//! `malloc`, whose defaults trim the heap top as soon as more than 128 KiB of it is free
//! (`M_TRIM_THRESHOLD`) and map every block of 128 KiB or more on its own until it has seen one
//! freed (the *dynamic* mmap threshold). In a program whose small blocks live in pyheap's pools,
//! glibc's heap holds only the medium and large blocks, so freeing one batch of them (100
//! blocks of 0.5-32 KiB, say) empties the top: glibc trims it with `brk`, the next batch grows
//! it again and faults every page in (measured: 95 `brk` calls per such batch, 1.78 million
//! page faults and 7.5 s of CPU for the `medium_lifo` fixed-work run, against 225 faults and
//! 65 ms with the settings below; BENCHMARKS.md "glibc behind the pools").
//!
//! So at the first request `PoolAlloc` hands to glibc it sets, with `mallopt`:
//! - [`TOP_PAD`] (`M_TOP_PAD`): glibc grows its heap by this much more than it needs, and keeps
//!   this much of a free top when it trims;
//! - [`TRIM_THRESHOLD`] (`M_TRIM_THRESHOLD`): the top is trimmed once this much of it is free;
//! - [`MMAP_THRESHOLD`] (`M_MMAP_THRESHOLD`): blocks below it come from the heap. glibc's
//!   dynamic threshold rises to this value (its maximum on 64-bit targets) after the first
//!   such block is freed anyway; setting any of the three turns the dynamic adjustment off, so
//!   it is set to where the dynamic one ends, and no program gets more `mmap`s than before.
//!
//! A program that locks its memory (`mlockall(MCL_FUTURE)`) gets every page glibc maps
//! populated at once, the padding's too: there [`TOP_PAD`] is set back to glibc's default
//! (128 KiB) as soon as pyheap sees the lock: when the settings are applied (before `main`,
//! at the runtime's first request that reaches glibc), when pyheap maps a new thread's heap,
//! and in [`purge`](crate::alloc::purge). Threads started between the lock and the first of
//! these keep padded glibc arenas (8 MiB each, locked): such a program calls `purge()` right
//! after `mlockall`.
//!
//! The cost is memory kept between peaks: glibc keeps up to [`TRIM_THRESHOLD`] of free heap
//! top per arena (about what its dynamic threshold keeps after the program has freed one 8 MiB
//! block), resident if it was touched. Peak RSS did not change on any measured workload.
//! [`purge`](crate::alloc::purge) calls `malloc_trim(0)`, which gives back the free pages
//! inside glibc's free blocks in every arena and the free top of the main arena, but not the
//! free top of the arenas glibc gives threads other than the first: that memory stays
//! resident until glibc reuses it (measured in session 22: a thread's 8 MiB of freed medium
//! blocks above 4 KiB, merged into its arena's top, stayed resident after `purge`; the blocks
//! of 4 KiB and less come from pyheap's medium spans, which `purge` unmaps).
//!
//! Left alone (nothing is set) when the user tuned glibc: the environment has
//! `GLIBC_TUNABLES` naming one of these settings, or one of `MALLOC_TOP_PAD_`,
//! `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_MMAP_MAX_`; or
//! `PYHEAP_GLIBC_TUNING=0`. Only `PoolAlloc`'s own fallback (`System` through `PoolAlloc`) does
//! this: `PoolAllocWith<F>` never touches glibc, `PoolAllocWith::new(System)` included, which
//! is the way to keep glibc's defaults from code. The environment is read when the library is
//! loaded (from `.init_array`: for a program, before `main` and before any of its threads
//! exist, so reading it races with no `setenv`; a library loaded later with `dlopen` reads it
//! then, as glibc itself reads `GLIBC_TUNABLES` once).

#[cfg(all(target_os = "linux", target_env = "gnu", not(loom), not(miri)))]
mod imp {
    use crate::sync::unmodelled::{AtomicBool, AtomicU8, Ordering};

    /// `M_TOP_PAD`: 8 MiB.
    pub const TOP_PAD: usize = 8 << 20;
    /// `M_TRIM_THRESHOLD`: 16 MiB.
    pub const TRIM_THRESHOLD: usize = 16 << 20;
    /// `M_MMAP_THRESHOLD`: 32 MiB (glibc's `DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit targets).
    pub const MMAP_THRESHOLD: usize = 32 << 20;

    /// Not decided yet (the environment not read, or read and tuning allowed but not applied).
    const PENDING: u8 = 0;
    /// The environment says to leave glibc alone.
    const LEFT_ALONE: u8 = 1;
    /// The settings were applied (or are being applied by another thread).
    const APPLIED: u8 = 2;

    /// One of the three states above; only moves from `PENDING`.
    static STATE: AtomicU8 = AtomicU8::new(PENDING);

    /// Reads the environment at load time (see the module doc).
    #[used]
    #[link_section = ".init_array"]
    static READ_ENV_AT_LOAD: extern "C" fn() = read_env_at_load;

    extern "C" fn read_env_at_load() {
        if user_tuned_glibc() {
            STATE.store(LEFT_ALONE, Ordering::Relaxed);
        }
    }

    fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
        // SAFETY: called only from the load-time constructor, before `main` and any thread of
        // the program (a `dlopen`ing program that changes its environment on another thread
        // meanwhile breaks glibc's own getenv contract), and the bytes are used at once.
        unsafe { crate::alloc::os::getenv(name) }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn user_tuned_glibc() -> bool {
        if getenv(c"PYHEAP_GLIBC_TUNING") == Some(b"0") {
            return true;
        }
        if [
            c"MALLOC_TOP_PAD_",
            c"MALLOC_TRIM_THRESHOLD_",
            c"MALLOC_MMAP_THRESHOLD_",
            c"MALLOC_MMAP_MAX_",
        ]
        .into_iter()
        .any(|name| getenv(name).is_some())
        {
            return true;
        }
        getenv(c"GLIBC_TUNABLES").is_some_and(|t| {
            [
                &b"glibc.malloc.top_pad"[..],
                b"glibc.malloc.trim_threshold",
                b"glibc.malloc.mmap_threshold",
                b"glibc.malloc.mmap_max",
            ]
            .into_iter()
            .any(|n| contains(t, n))
        })
    }

    /// Called before each request `PoolAlloc` hands to glibc: one load and a branch once
    /// decided.
    #[inline(always)]
    pub fn ensure() {
        if STATE.load(Ordering::Relaxed) == PENDING {
            apply();
        }
    }

    #[cold]
    #[inline(never)]
    fn apply() {
        // One thread applies; another that raced past `ensure` meanwhile goes on with
        // glibc's settings of the moment, which is harmless (the next trim or growth uses
        // the new ones).
        if STATE
            .compare_exchange(PENDING, APPLIED, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let pad = !maps_are_populated();
        if !pad {
            PAD_DROPPED.store(true, Ordering::Relaxed);
        }
        for (param, value) in [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        ]
        .into_iter()
        .chain(pad.then_some((libc::M_TOP_PAD, TOP_PAD)))
        {
            // SAFETY: mallopt has no preconditions; it takes glibc's own locks and does not
            // allocate. A refused value (0 returned) leaves glibc's default for it.
            unsafe { libc::mallopt(param, value as libc::c_int) };
        }
    }

    /// Whether the OS populates memory as it is mapped: the program locked its future memory
    /// (`mlockall(MCL_FUTURE)` without `MCL_ONFAULT`). Then glibc's heap top padding would be
    /// resident and locked, never used, as soon as glibc grows a heap: 8 MiB for the main
    /// heap and for each thread's arena (measured in session 34: 40 MiB for a program with
    /// four threads). A page mapped and never touched tells: `mincore` says it is resident.
    /// Three system calls.
    fn maps_are_populated() -> bool {
        // SAFETY: an anonymous mapping of our own, queried and unmapped here; `mincore` writes
        // one byte per page of the 4 KiB asked (one page at most) into `resident`.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return false;
            }
            let mut resident = 0u8;
            let known = libc::mincore(p, PAGE, &mut resident) == 0;
            libc::munmap(p, PAGE);
            known && resident & 1 != 0
        }
    }

    /// The bytes the lock probes ask `mincore` about: one page (every page size in use is a
    /// multiple of it).
    const PAGE: usize = 4096;

    /// Whether [`TOP_PAD`] was dropped, or never set, because the program locks its memory.
    static PAD_DROPPED: AtomicBool = AtomicBool::new(false);

    /// glibc's own `M_TOP_PAD` (`DEFAULT_TOP_PAD`, 128 KiB).
    const GLIBC_TOP_PAD: usize = 128 * 1024;

    /// The program may have locked its memory since the settings were applied (they are
    /// applied before `main`: the runtime's first requests reach glibc). `page` is the first
    /// page of a mapping made just now and not touched yet: if the OS populated it, the
    /// program locks its future memory, and the padding goes back to glibc's default, the
    /// padding glibc already keeps above its heap tops with it (`malloc_trim`). Called where
    /// pyheap maps a new thread's heap: the threads started after that get no padded arenas.
    /// (The calling thread's own glibc arena exists already: the first `malloc` of a Rust
    /// thread is glibc's own, `pthread_getattr_np` from std's stack-overflow handler, before
    /// the thread runs any pyheap code.) One `mincore` there, nothing once dropped.
    #[cold]
    pub fn note_fresh_mapping(page: *mut u8) {
        if STATE.load(Ordering::Relaxed) != APPLIED || PAD_DROPPED.load(Ordering::Relaxed) {
            return;
        }
        let mut resident = 0u8;
        // SAFETY: `page` starts a mapping of ours (caller), at least a page long; `mincore`
        // writes one byte per page asked (one) into `resident`.
        let known = unsafe { libc::mincore(page.cast(), PAGE, &mut resident) } == 0;
        if known && resident & 1 != 0 {
            drop_pad();
        }
    }

    /// `purge`'s part: the padding dropped if the program locks its memory (see
    /// [`note_fresh_mapping`]), then the heap tops trimmed.
    pub fn purge() {
        if !applied() {
            return;
        }
        if !PAD_DROPPED.load(Ordering::Relaxed) && maps_are_populated() {
            drop_pad();
        }
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
    }

    /// Every thread that saw the lock sets the padding itself before it goes on to glibc
    /// (so none makes a padded arena while another is still trimming); one trims.
    #[cold]
    fn drop_pad() {
        // SAFETY: as in `apply`.
        unsafe { libc::mallopt(libc::M_TOP_PAD, GLIBC_TOP_PAD as libc::c_int) };
        if !PAD_DROPPED.swap(true, Ordering::Relaxed) {
            // SAFETY: malloc_trim has no preconditions: the free heap tops beyond the new
            // padding go back.
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// Whether the top padding is off because the program locks its memory.
    pub fn pad_dropped() -> bool {
        PAD_DROPPED.load(Ordering::Relaxed)
    }

    pub fn applied() -> bool {
        STATE.load(Ordering::Relaxed) == APPLIED
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(loom), not(miri))))]
mod imp {
    #[inline(always)]
    pub fn ensure() {}
    pub fn applied() -> bool {
        false
    }
    pub fn pad_dropped() -> bool {
        false
    }
    pub fn purge() {}
    pub fn note_fresh_mapping(_page: *mut u8) {}
}

pub(crate) use imp::{ensure, note_fresh_mapping, purge};

/// Whether `PoolAlloc` tuned glibc's `malloc`, its fallback for requests above 512 bytes:
/// `true` once the program has made such a request through `PoolAlloc` on Linux with glibc,
/// unless the environment asked to leave glibc alone (`PYHEAP_GLIBC_TUNING=0`, or the user's
/// own `GLIBC_TUNABLES` / `MALLOC_*_` settings of the heap top and the mmap threshold).
///
/// What is set and why: 8 MiB of heap top padding (`M_TOP_PAD`), a 16 MiB trim threshold
/// (`M_TRIM_THRESHOLD`) and a 32 MiB mmap threshold (`M_MMAP_THRESHOLD`), so that glibc stops
/// trimming its heap top after every batch of medium blocks and faulting it in again (up to
/// 100× faster on batches of 0.5-32 KiB blocks; see `BENCHMARKS.md`). glibc then keeps up to
/// 16 MiB of free heap top per arena between peaks; [`purge`](crate::alloc::purge) gives it
/// back. `PoolAllocWith::new(System)` never tunes glibc.
///
/// In a program that locks its memory (`mlockall(MCL_FUTURE)`) the padding is not set, or is
/// set back to glibc's default once pyheap sees the lock (see [`glibc_top_pad_dropped`]).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
///
/// fn main() {
///     let v = vec![0u8; 4096]; // above 512 bytes: glibc's
///     assert_eq!(v.len(), 4096);
///     if cfg!(all(target_os = "linux", target_env = "gnu"))
///         && std::env::var_os("PYHEAP_GLIBC_TUNING").is_none()
///         && std::env::var_os("GLIBC_TUNABLES").is_none()
///     {
///         assert!(pyheap::alloc::glibc_tuned());
///     }
/// }
/// ```
pub fn glibc_tuned() -> bool {
    imp::applied()
}

/// Whether `PoolAlloc` set glibc's heap top padding back to glibc's default (or never set it)
/// because the program locks its memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`): every page of
/// the padding would be resident and locked, 8 MiB per glibc arena, never used. pyheap looks
/// when it applies its settings (before `main`), when it maps a heap for a new thread, and in
/// [`purge`](crate::alloc::purge). The other two settings stay.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
///
/// fn main() {
///     // This program does not lock its memory.
///     pyheap::alloc::purge();
///     assert!(!pyheap::alloc::glibc_top_pad_dropped());
/// }
/// ```
pub fn glibc_top_pad_dropped() -> bool {
    imp::pad_dropped()
}
