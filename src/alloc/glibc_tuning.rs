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
    use crate::sync::unmodelled::{AtomicU8, Ordering};

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
        for (param, value) in [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (libc::M_TOP_PAD, TOP_PAD),
        ] {
            // SAFETY: mallopt has no preconditions; it takes glibc's own locks and does not
            // allocate. A refused value (0 returned) leaves glibc's default for it.
            unsafe { libc::mallopt(param, value as libc::c_int) };
        }
    }

    pub fn applied() -> bool {
        STATE.load(Ordering::Relaxed) == APPLIED
    }

    /// `malloc_trim(0)`, when the settings were applied: the kept heap top back to the OS.
    pub fn trim() {
        if applied() {
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(loom), not(miri))))]
mod imp {
    #[inline(always)]
    pub fn ensure() {}
    pub fn applied() -> bool {
        false
    }
    pub fn trim() {}
}

pub(crate) use imp::{ensure, trim};

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
