//! Model: **purging free pools while pools are taken and given back** (`purge.rs`:
//! `DirtyArenas`, the arenas' dirty masks, `madvise` under the arena lock;
//! `ArenaManager::purge_all`, `take_pool`, `release_pool`).
//!
//! Arena A has two free pools, resident. One thread purges every free pool while the main
//! thread gives a pool back to A, takes a pool (the one just given back, A's free list being
//! LIFO, or another), and writes a pattern over all of the taken pool's memory.
//!
//! Interleavings that matter: the purge before the release (it purges the two old pools, the
//! new one stays dirty), between the release and the take (the pool taken is purged before
//! it is handed out: fine, its memory is read only after the take), after the take (the pool
//! taken must not be purged: its dirty bit went with the take). Under loom the clock stands
//! still, so only the explicit purge purges.
//!
//! Asserts: the taken pool's pattern is intact after the purge (a purge of a pool in use
//! would zero it: `MADV_DONTNEED` on real memory), the dirty masks and the queue agree with
//! the free lists (`check_arenas`), and the free pools are exactly the resident ones plus the
//! purged ones, with the number purged what the interleaving implies.
#![cfg(loom)]

mod common;

use common::{model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::ModelAllocator;
use pyheap::alloc::POOL_SIZE;

#[test]
fn purge_while_a_pool_goes_back_and_is_taken() {
    model(|| {
        let a = ModelAllocator::new(0);
        let mut pools: Vec<_> = (0..4).map(|_| a.acquire_raw_pool(LARGE)).collect();
        for p in pools.drain(..2) {
            // SAFETY: empty raw pools, each given back once.
            unsafe { a.release_raw_pool(p) };
        }
        assert_eq!(a.free_pools_resident_and_purged(), (2, 0));

        let a2 = a.clone();
        let t = thread::spawn(move || a2.purge());
        let back = pools.pop().unwrap();
        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(back) };
        let got = a.acquire_raw_pool(SMALL);
        // SAFETY: the pool is ours (handed out to this thread) and POOL_SIZE bytes long.
        unsafe { core::ptr::write_bytes(got.memory(), 0xA5, POOL_SIZE) };
        let purged = t.join().unwrap();

        // SAFETY: as above; still ours.
        let mem = unsafe { core::slice::from_raw_parts(got.memory(), POOL_SIZE) };
        assert!(mem.iter().all(|&b| b == 0xA5), "a pool in use was purged");
        a.check_arenas();
        // The take gets `back` (A's free list is LIFO) whatever the purge did: the purge ran
        // before the release (2 purged), between release and take (3: `back` too, purged
        // before it was handed out) or after the take (2). Either way the two old pools end
        // purged and nothing free stays resident.
        assert!(purged == 2 || purged == 3, "purged {purged} pools");
        assert_eq!(got, back, "the take did not get the pool given back last");
        assert_eq!(a.free_pools_resident_and_purged(), (0, 2));

        for p in pools.into_iter().chain([got]) {
            // SAFETY: empty raw pools, each given back once.
            unsafe { a.release_raw_pool(p) };
        }
        a.check_arenas();
        assert_eq!(a.arena_free_pools(), Vec::<usize>::new());
    });
}
