//! Model: **the abandoned heaps' holder token** (`RemoteQueue` in `remote.rs`: the heap's
//! queue word is also its holder token; `HeapRegistry::bind`, `abandon`, `let_go`, retirement
//! in `registry.rs`; `free_into` in `heap.rs`).
//!
//! Nothing walks the heaps any more: a free whose push finds an abandoned heap unheld becomes
//! its holder, takes the remote frees back, and lets go of the heap (a CAS from an empty queue
//! to "unheld", which fails while a pool is queued) or retires it when it owns no pool. A
//! thread starting adopts an unheld abandoned heap by claiming it under the registry lock.
//!
//! Interleavings that matter: two freers of an abandoned heap's blocks, one claiming it while
//! the other pushes (the pusher must not touch the heap after its push: the claimer may
//! retire it at once); a freer's letting go racing another freer's push (the CAS fails, the
//! freer takes the pool back itself); an adopter claiming the heap while a freer pushes onto
//! it or holds it.
//!
//! Asserts: no block is lost or handed out twice, every pool and arena goes back, no abandoned
//! heap is left held or empty (`check_heaps`), the heap counts are right, and retired heaps
//! are never touched again (under loom they are `PROT_NONE`: a touch is a SIGSEGV). The work
//! counter says how many heaps each operation looked at: one per exit, per free that claims,
//! and per adoption attempt.
#![cfg(loom)]

mod common;

use common::{assert_pools, model, SMALL};
use loom::thread;
use pyheap::alloc::model::{BlockPtr, ModelAllocator};

/// The owner exits with two live blocks in one pool; two threads with no heap free them at
/// once. Whoever finds the heap unheld holds it; the last block's return retires it.
#[test]
fn two_freers_of_an_abandoned_heap() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));
        owner.exit();
        assert_eq!(
            a.check_heaps(),
            1,
            "the heap (two live blocks) is abandoned"
        );
        let w0 = a.work();

        let a2 = a.clone();
        let t = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b0.0, SMALL) };
        });
        // SAFETY: b1 is live and ours.
        unsafe { a.dealloc_without_heap(b1.0, SMALL) };
        t.join().unwrap();

        assert_eq!(a.check_heaps(), 0, "the emptied heap was not retired");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
        assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
        let w = a.work() - w0;
        assert!(
            (1..=2).contains(&w.heaps_visited),
            "each claiming free looks at its heap: {w:?}"
        );
    });
}

/// The owner exits with three live blocks; one is kept alive by the main thread. A thread
/// frees one block with no heap while a new thread starts (adopting the heap if it can claim
/// it) and frees another block through the heap it got. The kept block is freed at the end.
#[test]
fn adopter_races_a_freer_that_claims() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let owner_id = owner.id();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));
        let kept = BlockPtr(owner.alloc(SMALL));
        owner.exit();

        let a2 = a.clone();
        let t_free = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b0.0, SMALL) };
        });
        let a3 = a.clone();
        let t_new = thread::spawn(move || {
            let h = a3.heap();
            // SAFETY: b1 is live and given to this thread.
            unsafe { h.dealloc(b1.0, SMALL) };
            let x = BlockPtr(h.alloc(SMALL));
            (h, x)
        });
        t_free.join().unwrap();
        let (h, x) = t_new.join().unwrap();
        assert_ne!(x, kept, "a live block handed out again");

        let adopted = h.id() == owner_id;
        // Adopted: the owner's heap is held; else it is abandoned (the kept block).
        assert_eq!(a.check_heaps(), usize::from(!adopted));
        h.collect_remote_frees();
        let s = a.stats();
        assert_eq!(s.blocks_in_use(), 2, "the kept block and x\n{s}");
        assert_eq!(
            (s.heaps_active, s.heaps_abandoned),
            (1, usize::from(!adopted)),
            "\n{s}"
        );
        // SAFETY: x is h's; kept is live and ours (freed through h: its own pool if adopted).
        unsafe {
            h.dealloc(x.0, SMALL);
            h.dealloc(kept.0, SMALL);
        }
        h.exit();
        assert_eq!(a.check_heaps(), 0);
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
    });
}

/// The owner exits while two threads free its two blocks, so the exit's letting go races
/// both pushes: either the exit takes the blocks back (its CAS to "unheld" fails while a pool
/// is queued) and retires the heap, or a freer claims the heap and does.
#[test]
fn exit_races_two_freers() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));

        let t_owner = thread::spawn(move || owner.exit());
        let a2 = a.clone();
        let t = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b0.0, SMALL) };
        });
        // SAFETY: b1 is live and ours.
        unsafe { a.dealloc_without_heap(b1.0, SMALL) };
        t.join().unwrap();
        t_owner.join().unwrap();

        assert_eq!(a.check_heaps(), 0, "the emptied heap was not retired");
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
        assert_eq!((s.arenas_mapped, s.arenas_returned), (0, 1), "\n{s}");
    });
}

/// A thread whose first act is to free an exited thread's block adopts that thread's heap
/// (`ModelAllocator::adopt_for_free`, as `PoolAlloc` does for a thread with no heap), not the
/// abandoned heap at the head of the list (the decoy, abandoned last), while another thread
/// frees a second block of that heap with no heap of its own (so it may hold the heap at that
/// moment: then the first thread frees its block without a heap and binds one from the list).
/// Whoever holds the heap, blocks are neither lost nor handed out twice, and the heaps go
/// back in the end.
#[test]
fn first_free_adopts_the_freed_blocks_heap() {
    model(|| {
        let a = ModelAllocator::new(0);
        let owner = a.heap();
        let owner_id = owner.id();
        let b0 = BlockPtr(owner.alloc(SMALL));
        let b1 = BlockPtr(owner.alloc(SMALL));
        let kept = BlockPtr(owner.alloc(SMALL));
        let decoy = a.heap();
        let decoy_id = decoy.id();
        let d = BlockPtr(decoy.alloc(SMALL));
        owner.exit();
        decoy.exit();
        assert_eq!(a.check_heaps(), 2, "both heaps abandoned");

        let a2 = a.clone();
        let t_free = thread::spawn(move || {
            // SAFETY: b0 is live and given to this thread.
            unsafe { a2.dealloc_without_heap(b0.0, SMALL) };
        });
        let a3 = a.clone();
        let t_new = thread::spawn(move || {
            // SAFETY: b1 is live and given to this thread, which frees it right after.
            let h = match unsafe { a3.adopt_for_free(b1) } {
                Some(h) => {
                    assert_eq!(h.id(), owner_id, "adopted another heap than the block's");
                    // SAFETY: as above; a block of the thread's own heap now.
                    unsafe { h.dealloc(b1.0, SMALL) };
                    h
                }
                None => {
                    // SAFETY: as above.
                    unsafe { a3.dealloc_without_heap(b1.0, SMALL) };
                    a3.heap()
                }
            };
            let x = BlockPtr(h.alloc(SMALL));
            (h, x)
        });
        t_free.join().unwrap();
        let (h, x) = t_new.join().unwrap();
        assert_ne!(x, kept, "a live block handed out again");
        assert_ne!(x, d, "a live block handed out again");
        assert!(
            h.id() == owner_id || h.id() == decoy_id,
            "a new heap mapped while an abandoned one could be adopted"
        );

        h.collect_remote_frees();
        let s = a.stats();
        assert_eq!(s.blocks_in_use(), 3, "kept, d and x\n{s}");
        assert_eq!((s.heaps_active, s.heaps_abandoned), (1, 1), "\n{s}");
        // SAFETY: x is h's; kept and d are live and ours.
        unsafe {
            h.dealloc(x.0, SMALL);
            h.dealloc(kept.0, SMALL);
            h.dealloc(d.0, SMALL);
        }
        h.exit();
        assert_eq!(a.check_heaps(), 0);
        assert_pools(&a, 0, 0);
        let s = a.stats();
        assert_eq!((s.heaps_active, s.heaps_abandoned), (0, 0), "\n{s}");
    });
}

/// With no other thread about: a thread with no heap that frees a block of a heap its thread
/// still holds binds nothing; one that frees an exited thread's block adopts exactly that
/// thread's heap, though another abandoned heap heads the list, and its frees of the exited
/// thread's blocks are then its own heap's.
#[test]
fn first_free_adopts_the_freed_blocks_heap_over_the_list_head() {
    model(|| {
        let a = ModelAllocator::new(0);
        let holder = a.heap();
        let hb = BlockPtr(holder.alloc(SMALL));
        let owner = a.heap();
        let owner_id = owner.id();
        let b = BlockPtr(owner.alloc(SMALL));
        let b2 = BlockPtr(owner.alloc(SMALL));
        let decoy = a.heap();
        let d = BlockPtr(decoy.alloc(SMALL));
        owner.exit();
        decoy.exit();

        let a2 = a.clone();
        let t = thread::spawn(move || {
            // SAFETY: hb is live and given to this thread.
            assert!(
                unsafe { a2.adopt_for_free(hb) }.is_none(),
                "adopted a heap its thread holds"
            );
            // SAFETY: as above.
            unsafe { a2.dealloc_without_heap(hb.0, SMALL) };
            // SAFETY: b is live and given to this thread, which frees it right after.
            let h = unsafe { a2.adopt_for_free(b) }.expect("the freed block's heap adopted");
            assert_eq!(h.id(), owner_id, "adopted another heap than the block's");
            let w0 = a2.work();
            // SAFETY: as above, and b2; blocks of the thread's own heap now.
            unsafe {
                h.dealloc(b.0, SMALL);
                h.dealloc(b2.0, SMALL);
            }
            assert_eq!(
                (a2.work() - w0).heaps_visited,
                0,
                "a local free looks at no heap"
            );
            h
        });
        let h = t.join().unwrap();
        h.exit();
        holder.collect_remote_frees();
        holder.exit();
        assert_eq!(a.check_heaps(), 1, "the decoy stays abandoned (d)");
        // SAFETY: d is live and ours.
        unsafe { a.dealloc_without_heap(d.0, SMALL) };
        assert_eq!(a.check_heaps(), 0);
        assert_pools(&a, 0, 0);
    });
}
