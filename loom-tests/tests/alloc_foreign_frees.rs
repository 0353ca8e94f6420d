//! Model: **the count that vouches for a served large block's free** (`ForeignFrees` in
//! `src/alloc/large_cache.rs`, `ArenaManager::note_life_ended`, the heap's records of served
//! blocks, the arena lock).
//!
//! A thread whose keep served a large block records it with the current count; its free of
//! that block is kept without the locked check if the record is found, of the same shape,
//! with the count unchanged. Any thread but the owner's that ends a large block's life bumps
//! the count (`Relaxed`) before the lock section that lets the block's places be taken
//! again; the holder reads it `Relaxed`. What orders the two is the arena lock and the
//! program's own handover, which is what these models check.
//!
//! Large blocks are not built under loom (they live on `mmap`/`mremap`), so the block's
//! place is the model's own: a word written under the real arena lock, as
//! `give_back_block` gives places back (after `note_life_ended`) and `alloc_large_block`
//! takes them. The records, the count, the vouching test and the lock are the shipping code.
//!
//! * `a_place_taken_by_another_threads_block_is_not_vouched`: A's keep serves a block, the
//!   program hands it to B, which frees it (with a heap of its own, or none), a third
//!   thread C takes the vacant place for a block of its own and hands that to A, which frees
//!   it. A's record names that address with that size: the count must tell A that it is not
//!   the block it served. Sanity mutations: `l1_vouch_without_count` (the count not compared)
//!   and `l2_foreign_end_not_counted` (a foreign end of life not counted) **fail** here.
//! * `the_holders_own_free_is_vouched_once`: while another heap's thread ends the lives of
//!   its own block and of a block no heap owns (neither is foreign to its owner), A's free
//!   of the block it served must be vouched for in every interleaving, a second free of it
//!   (a double free) must not, nor the free of a served block with a size of another shape.
//!   Sanity mutations: `l3_own_end_counted` (every end of life counted) and
//!   `l4_record_kept_at_free` (the record not forgotten at the free) **fail** here. With the
//!   shipping code the other thread touches no atomic (nothing is counted), so loom has one
//!   execution to run; under `l3` its two bumps give it the orders to explore.
#![cfg(loom)]

mod common;

use common::model;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

/// The address the model's block lies at: never dereferenced, only recorded and compared.
const PLACE: usize = 0x4000_0000;
/// The block's size (a model's shapes are its sizes).
const SIZE: usize = 300 * 1024;

/// The place's states (written under the arena lock).
const HELD: usize = 0;
const VACANT: usize = 1;
const TAKEN_BY_C: usize = 2;

fn place_taken_by_another_threads_block(freer_has_heap: bool) {
    // Executions in which C found the place vacant (outside loom: counted over all of them).
    static TAKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    TAKEN.store(0, std::sync::atomic::Ordering::Relaxed);
    model(move || {
        let a = ModelAllocator::new(1);
        let holder = a.heap();
        let x = BlockPtr(PLACE as *mut u8);
        holder.note_served(x, SIZE);
        let owner = holder.owner_id();
        let place = Arc::new(AtomicUsize::new(HELD));

        // B: the program handed it the block (the spawn); it frees it.
        let b = {
            let (a, place) = (a.clone(), place.clone());
            let heap = freer_has_heap.then(|| a.heap());
            thread::spawn(move || {
                a.note_life_ended(Some(owner), heap.as_ref());
                a.with_arena_lock(|| place.store(VACANT, Ordering::Relaxed));
                heap
            })
        };
        // C: takes the place for a block of its own if it is vacant by then, and hands that
        // block to A (the join: a handover, as a channel's would be).
        let c = {
            let (a, place) = (a.clone(), place.clone());
            thread::spawn(move || {
                let heap = a.heap();
                let took = a.with_arena_lock(|| {
                    let vacant = place.load(Ordering::Relaxed) == VACANT;
                    if vacant {
                        place.store(TAKEN_BY_C, Ordering::Relaxed);
                    }
                    vacant
                });
                (took, heap)
            })
        };
        let (took, _c_heap) = c.join().unwrap();
        if took {
            TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert!(
                !holder.free_is_vouched(x, SIZE),
                "the free of another thread's block in the served block's place was vouched \
                 for (it would be kept without the check)"
            );
        }
        b.join().unwrap();
    });
    assert!(
        TAKEN.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "loom never let C take the place: the model checked nothing"
    );
}

#[test]
fn a_place_taken_by_another_threads_block_is_not_vouched() {
    place_taken_by_another_threads_block(true);
}

#[test]
fn a_place_freed_by_a_thread_without_a_heap_and_taken_is_not_vouched() {
    place_taken_by_another_threads_block(false);
}

#[test]
fn the_holders_own_free_is_vouched_once() {
    model(|| {
        let a = ModelAllocator::new(1);
        let holder = a.heap();
        let x = BlockPtr(PLACE as *mut u8);
        let y = BlockPtr((PLACE + 2 * SIZE) as *mut u8);
        holder.note_served(x, SIZE);
        holder.note_served(y, SIZE);

        // Another thread ends the life of its own heap's block, and of a block no heap owns
        // (freed by a thread without a heap): neither is foreign to its owner.
        let other = {
            let a = a.clone();
            thread::spawn(move || {
                let heap = a.heap();
                a.note_life_ended(Some(heap.owner_id()), Some(&heap));
                a.note_life_ended(None, None);
                heap
            })
        };
        assert!(
            holder.free_is_vouched(x, SIZE),
            "the holder's free of the block its keep served, with no foreign end of life, \
             was not vouched for"
        );
        assert!(
            !holder.free_is_vouched(x, SIZE),
            "a second free of a served block (a double free) was vouched for"
        );
        assert!(
            !holder.free_is_vouched(y, 2 * SIZE),
            "the free of a served block with the size of another shape was vouched for"
        );
        other.join().unwrap();
    });
}
