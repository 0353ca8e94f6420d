//! The allocator's controls: purging free memory now, and the delay after which it is purged
//! on its own (`purge.rs` holds the mechanism).

use super::global::GLOBAL;
use super::purge as mechanism;
use super::size_class::POOL_SIZE;
use core::time::Duration;

/// Give the memory of every free pool back to the OS now, whatever the purge delay; returns
/// the bytes given back. The pools keep their addresses (their arenas stay mapped, but empty
/// arenas beyond the retained few are unmapped now, whatever the delay) and fault fresh pages
/// in when they are used again. Like `malloc_trim(0)` or `mi_collect(true)`: for a program that
/// goes idle after a peak, since the automatic purge rides on pool requests and releases.
///
/// It takes the allocator's arena lock for the time of the `madvise` calls (one per run of
/// free pools). When `PoolAlloc` tuned glibc ([`glibc_tuned`](crate::alloc::glibc_tuned)), it
/// then calls `malloc_trim(0)` (outside pyheap's locks), which gives back the free pages
/// inside glibc's free blocks and its main arena's kept heap top (not the free top of the
/// arenas glibc gives other threads: see [`glibc_tuned`](crate::alloc::glibc_tuned)); the bytes returned count the pools' and the
/// medium spans' only. Before that it empties the medium cache (the blocks of 513 B to 32 KiB
/// that `PoolAlloc` keeps per thread for reuse, see [`PoolAlloc`](crate::alloc::PoolAlloc)):
/// the calling thread's at once, every other thread's at that thread's next medium free; and
/// it unmaps the medium spans (the 64 KiB pieces that blocks of 513 B to 4 KiB are carved
/// from) that hold no block in use. The calling thread's spare pools (the empty pools it
/// keeps for its next pools, at most [`SPARE_POOLS`](crate::alloc::SPARE_POOLS)) go back to
/// their arenas first and are purged with the other free pools; other threads keep theirs
/// until they exit or call `purge()` themselves.
///
/// In a program that locks its memory (`mlockall(MCL_FUTURE)`), call it once right after the
/// lock: pyheap then sets glibc's heap-top padding back to glibc's default, so that the
/// threads started next do not get 8 MiB of locked, unused padding each (see
/// [`glibc_top_pad_dropped`](crate::alloc::glibc_top_pad_dropped)).
///
/// ```
/// use allocator_api2::vec::Vec;
/// let mut v: Vec<Vec<u8, _>, _> = Vec::new_in(pyheap::PoolAlloc);
/// for _ in 0..10_000 {
///     let mut inner = Vec::new_in(pyheap::PoolAlloc);
///     inner.extend_from_slice(&[7u8; 300]);
///     v.push(inner);
/// }
/// drop(v); // the pools are free but resident until the delay passes
/// let bytes = pyheap::alloc::purge();
/// let s = pyheap::alloc::stats();
/// assert_eq!(s.free_pools_resident, 0);
/// println!("gave back {bytes} bytes; {} free pools purged", s.free_pools_purged);
/// ```
pub fn purge() -> usize {
    // The arena lock needs the fork handlers first (normally registered at load time).
    super::fork::register_once();
    // What the caller freed into other threads' pools goes to them first.
    super::thread::flush_remote_batches();
    // The medium blocks cached for reuse go back to their spans or to `malloc` (before the
    // spans' unmapping and `malloc`'s trim): the caller's now, every other thread's at its next
    // medium free.
    super::medium_cache::request_flush_all();
    super::thread::flush_medium_cache();
    let bytes =
        GLOBAL.arenas.purge_all(&GLOBAL.map) * POOL_SIZE + super::medium_spans::unmap_all_empty();
    super::glibc_tuning::purge();
    bytes
}

/// Set how long a pool must stay free before its memory goes back to the OS
/// (default [`DEFAULT_PURGE_DELAY_MS`](crate::alloc::DEFAULT_PURGE_DELAY_MS), one second),
/// with millisecond resolution. `Duration::ZERO` purges at the first pool request or release
/// after a pool is freed; `Duration::MAX` never purges on its own (only [`purge`] does).
/// A shorter delay gives memory back sooner after a peak and costs page faults in programs
/// that free and refill pools in a loop. An arena whose pools are all free waits for the same
/// delay before it is unmapped (or, within the few empty arenas kept, purged); with
/// `Duration::ZERO` it is unmapped as soon as it empties, and with `Duration::MAX` only by
/// [`purge`].
///
/// ```
/// use std::time::Duration;
/// pyheap::alloc::set_purge_delay(Duration::from_millis(250));
/// assert_eq!(pyheap::alloc::purge_delay(), Duration::from_millis(250));
/// pyheap::alloc::set_purge_delay(Duration::from_millis(pyheap::alloc::DEFAULT_PURGE_DELAY_MS));
/// ```
pub fn set_purge_delay(delay: Duration) {
    mechanism::set_delay_ms(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
}

/// The purge delay in force (see [`set_purge_delay`]); `Duration::MAX` if purging on its own
/// is off.
///
/// ```
/// assert!(pyheap::alloc::purge_delay() > std::time::Duration::ZERO);
/// ```
pub fn purge_delay() -> Duration {
    match mechanism::delay_ms() {
        u64::MAX => Duration::MAX,
        ms => Duration::from_millis(ms),
    }
}
