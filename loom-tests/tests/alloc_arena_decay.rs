//! Model: **empty arenas decaying** (`arena.rs`'s "Decay and hysteresis":
//! `ArenaManager::purge_due`, `take_victim`, `unlock_and_unmap`).
//!
//! With a purge delay, the release that empties an arena no longer unmaps it: a later pool
//! request or release does (the decay check, `purge_due`), once the arena's dirt is older than
//! the delay and more than the retained limit of empty arenas are mapped; an arena that is due
//! but not empty is only purged. `ModelAllocator::with_decay(0)` turns this on (loom models
//! otherwise keep unmapping at once) with no empty arena retained, and the models move the
//! clock past the delay themselves (`advance_clock`: the model clock stands still otherwise,
//! so every execution makes the same decisions). As in `alloc_arena_release.rs`, a released
//! arena is made `PROT_NONE` under loom: a touch after the release faults.
//!
//! Models:
//! 1. The owner's last block freed remotely while the owner collects and exits: the arena
//!    stays mapped (it decays), and goes back at the first pool request past the delay.
//! 2. Two threads request pools past the delay while the emptied arena is due: exactly one
//!    decay check unmaps it (under the lock), and both pools are usable.
//! 3. A due arena in use heads the dirty queue, with a due empty arena behind it, while two
//!    threads release a pool of the first each (each release runs the check; one of them also
//!    wrote a pool of the first that it keeps): the first arena is only purged, the second
//!    unmapped, once.
//!
//! Checked to fail when the decay check unmaps a due arena without checking that it is empty
//! (`loom-tests/sanity/a3_decay_unmaps_arena_in_use.patch`: model 3 faults writing its pool,
//! or finds the pool's arena gone).
#![cfg(loom)]

mod common;

use common::{assert_pools, free_last_block_remotely_while_owner_exits, model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};
use pyheap::alloc::{DEFAULT_PURGE_DELAY_MS, POOLS_PER_ARENA, POOL_SIZE};

/// Past the purge delay.
const PAST_DELAY: u64 = 2 * DEFAULT_PURGE_DELAY_MS;

/// Whether `pool`'s memory holds `byte` throughout.
fn holds(pool: *mut u8, byte: u8) -> bool {
    // SAFETY: callers pass the memory of a pool handed out to the model, POOL_SIZE long.
    let mem = unsafe { core::slice::from_raw_parts(pool, POOL_SIZE) };
    mem.iter().all(|&x| x == byte)
}

#[test]
fn remote_last_free_then_decay() {
    model(|| {
        let a = ModelAllocator::with_decay(0);
        let (b, h1) = free_last_block_remotely_while_owner_exits(&a);

        assert_eq!(a.check_heaps(), 0, "an abandoned heap is left");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!(
            s.arenas_mapped, 1,
            "the empty arena did not wait for the delay\n{s}"
        );
        assert!(a.owns(b.0));

        // Past the delay, the next pool request unmaps it (and maps another for itself).
        a.advance_clock(PAST_DELAY);
        let p = a.acquire_raw_pool(LARGE);
        let s = a.stats();
        assert_eq!(s.arenas_returned, 1, "\n{s}");
        assert!(!a.owns(b.0), "the decayed arena is still in the arena map");
        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(p) };
        drop(h1);
    });
}

#[test]
fn two_pool_requests_race_the_decay() {
    model(|| {
        let a = ModelAllocator::with_decay(0);
        let owner = a.heap();
        let b = BlockPtr(owner.alloc(SMALL));
        // SAFETY: b is live and ours.
        unsafe { owner.dealloc(b.0, SMALL) };
        owner.exit();
        assert_eq!(a.stats().arenas_mapped, 1);
        a.advance_clock(PAST_DELAY);

        let a2 = a.clone();
        let t = thread::spawn(move || {
            let p = a2.acquire_raw_pool(LARGE);
            // SAFETY: the pool is this thread's and POOL_SIZE bytes long.
            unsafe { core::ptr::write_bytes(p.memory(), 0x11, POOL_SIZE) };
            p
        });
        let q = a.acquire_raw_pool(LARGE);
        // SAFETY: as above, for this thread's pool.
        unsafe { core::ptr::write_bytes(q.memory(), 0x22, POOL_SIZE) };
        let p = t.join().unwrap();

        assert!(holds(p.memory(), 0x11) && holds(q.memory(), 0x22));
        assert!(a.owns(p.memory()) && a.owns(q.memory()));
        assert!(!a.owns(b.0), "the decayed arena is still in the arena map");
        let s = a.stats();
        assert_eq!(s.arenas_returned, 1, "the due arena unmapped once\n{s}");
        assert_eq!(a.check_arenas(), 2);
        for pool in [p, q] {
            // SAFETY: empty raw pools, each given back once.
            unsafe { a.release_raw_pool(pool) };
        }
    });
}

#[test]
fn a_due_arena_in_use_is_purged_not_unmapped() {
    model(|| {
        let a = ModelAllocator::with_decay(0);
        // Arena A: every usable pool handed out; arena B: one.
        let mut in_a: Vec<_> = (0..POOLS_PER_ARENA - 1)
            .map(|_| a.acquire_raw_pool(LARGE))
            .collect();
        let in_b = a.acquire_raw_pool(LARGE);
        assert_ne!(in_a[0].arena(), in_b.arena());
        // A gets a dirty free pool, then B empties: both on the dirty queue, A first, neither
        // due yet (the clock has not moved).
        // SAFETY: empty raw pools, each given back once.
        unsafe {
            a.release_raw_pool(in_a.pop().unwrap());
            a.release_raw_pool(in_b);
        }
        assert_eq!(a.stats().arenas_mapped, 2);
        a.advance_clock(PAST_DELAY);

        let mine = in_a.pop().unwrap();
        let theirs = in_a.pop().unwrap();
        let a2 = a.clone();
        let t = thread::spawn(move || {
            // SAFETY: a pool of A handed out to the model, POOL_SIZE bytes long.
            unsafe { core::ptr::write_bytes(mine.memory(), 0x33, POOL_SIZE) };
            // SAFETY: an empty raw pool, given back once.
            unsafe { a2.release_raw_pool(theirs) };
            mine
        });
        // Two releases, each running the decay check: the first finds A due but in use (it
        // purges A's dirty pools) and B due and empty (it unmaps B); the second finds nothing
        // due (its own pool made A dirty again, now).
        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(in_a.pop().unwrap()) };
        let mine = t.join().unwrap();

        assert!(a.owns(mine.memory()), "an arena in use was unmapped");
        assert!(holds(mine.memory(), 0x33), "a pool in use was purged");
        let s = a.stats();
        assert_eq!(s.arenas_mapped, 1, "the empty arena did not decay\n{s}");
        assert_eq!(s.arenas_returned, 1, "\n{s}");
        assert_eq!(a.free_pools_resident_and_purged(), (1, 2));
        a.check_arenas();
        // SAFETY: empty raw pools, each given back once.
        unsafe {
            a.release_raw_pool(mine);
            for p in in_a {
                a.release_raw_pool(p);
            }
        }
    });
}
