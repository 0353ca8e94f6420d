//! Model: **choosing the arena a pool comes from, under the lock** (`ArenaManager::
//! acquire_pool`/`release_pool`, `arena_lists.rs`: the arenas filed by free-pool count, a
//! bitmask of the counts in use, O(1) moves between the lists).
//!
//! Arena A is the fullest (a couple of free pools), arena B nearly empty. One thread takes a
//! pool while another gives a pool back, to A (A's count goes up by one: it moves to the next
//! list, possibly emptying its old one and clearing that bit of the mask) or to B.
//!
//! Interleavings that matter: the take reading the mask and the list head while the release
//! moves A between lists (both under the lock: the lock's `Acquire`/`Release` order the list
//! updates; loom does not track the plain memory of the lists, so the models check the
//! result); the release emptying a list the take is about to read.
//!
//! Asserts: whatever the order, the pool comes from A (the fullest arena with a free pool at
//! either moment), the lists agree with the headers, the mask and the counters
//! (`check_arenas`), and the arenas' free-pool counts are exactly what the operations imply;
//! a pool request looks at one arena header (`work().arenas_visited`), not at every arena.
#![cfg(loom)]

mod common;

use common::{model, LARGE, SMALL};
use loom::thread;
use pyheap::alloc::model::{ModelAllocator, PoolPtr};

/// Arena A with `a_free` free pools, arena B with 3 pools taken. Returns A's and B's taken
/// pools, and the usable pools per arena.
fn two_arenas(a: &ModelAllocator, a_free: usize) -> (Vec<PoolPtr>, Vec<PoolPtr>, usize) {
    let first = a.acquire_raw_pool(LARGE);
    let usable = a.arena_free_pools()[0] + 1;
    let mut in_a = vec![first];
    for _ in 1..usable {
        in_a.push(a.acquire_raw_pool(LARGE));
    }
    let in_b: Vec<PoolPtr> = (0..3).map(|_| a.acquire_raw_pool(LARGE)).collect();
    assert!(in_a.iter().all(|p| p.arena() == first.arena()));
    assert!(in_b.iter().all(|p| p.arena() != first.arena()));
    for p in in_a.drain(..a_free) {
        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(p) };
    }
    assert_eq!(a.arena_free_pools(), vec![a_free, usable - 3]);
    (in_a, in_b, usable)
}

/// One thread takes a pool while the main thread gives one back to A (`to_a`) or to B.
fn take_while_release(to_a: bool) {
    model(move || {
        let a = ModelAllocator::new(0);
        let (mut in_a, mut in_b, usable) = two_arenas(&a, 2);
        let arena_a = in_a[0].arena();
        let w0 = a.work();

        let a2 = a.clone();
        let t = thread::spawn(move || a2.acquire_raw_pool(SMALL));
        let back = if to_a { in_a.pop() } else { in_b.pop() }.unwrap();
        // SAFETY: an empty raw pool, given back once.
        unsafe { a.release_raw_pool(back) };
        let got = t.join().unwrap();

        assert_eq!(
            got.arena(),
            arena_a,
            "the pool did not come from the fullest arena"
        );
        a.check_arenas();
        let expected = if to_a {
            vec![2, usable - 3]
        } else {
            vec![1, usable - 2]
        };
        assert_eq!(a.arena_free_pools(), expected);
        let w = a.work() - w0;
        assert_eq!(
            (w.pool_requests, w.arenas_visited),
            (1, 1),
            "one pool request, one arena header"
        );

        // Give everything back: both arenas go back to the OS (none retained).
        for p in in_a.into_iter().chain(in_b).chain([got]) {
            // SAFETY: empty raw pools, each given back once.
            unsafe { a.release_raw_pool(p) };
        }
        a.check_arenas();
        assert_eq!(a.arena_free_pools(), Vec::<usize>::new());
    });
}

#[test]
fn take_while_a_pool_goes_back_to_the_fullest_arena() {
    take_while_release(true);
}

#[test]
fn take_while_a_pool_goes_back_to_the_emptiest_arena() {
    take_while_release(false);
}

/// Two threads take A's last two free pools at once: each gets one of A's, and the next
/// request (A now full) comes from B.
#[test]
fn two_takes_empty_the_fullest_arena_then_move_on() {
    model(|| {
        let a = ModelAllocator::new(0);
        let (in_a, in_b, usable) = two_arenas(&a, 2);
        let arena_a = in_a[0].arena();
        let a2 = a.clone();
        let t = thread::spawn(move || a2.acquire_raw_pool(SMALL));
        let mine = a.acquire_raw_pool(SMALL);
        let theirs = t.join().unwrap();
        assert_ne!(mine, theirs, "one pool handed out twice");
        assert_eq!((mine.arena(), theirs.arena()), (arena_a, arena_a));
        assert_eq!(a.arena_free_pools(), vec![0, usable - 3]);
        let next = a.acquire_raw_pool(SMALL);
        assert_ne!(next.arena(), arena_a, "a full arena was chosen");
        a.check_arenas();
        for p in in_a.into_iter().chain(in_b).chain([mine, theirs, next]) {
            // SAFETY: empty raw pools, each given back once.
            unsafe { a.release_raw_pool(p) };
        }
        assert_eq!(a.arena_free_pools(), Vec::<usize>::new());
    });
}
