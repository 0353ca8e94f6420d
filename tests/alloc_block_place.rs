//! Small blocks pass over the place of a live one-arena large block (`ArenaManager::
//! pick_arena`): the free pools below such a block stay free, so that the place goes vacant
//! when the block is freed and the next block of the shape is made there again. Before
//! session 35 the pools of a program that had filled its arenas came next from the block's
//! place (the fullest arena with a free pool), and a multi-threaded program whose threads keep
//! their blocks (the `rayon` workload) spread its pools over one place after another, each
//! resident whole.
//!
//! What is checked, in a process of its own (so that the arenas in use are this program's
//! alone): 1 MiB of 256-byte blocks takes the first arena's free pools; a 300,000-byte block
//! (one arena: 19 pools at its end, 44 free below it) is then made in a place of its own; then
//! 4 MiB more of 256-byte blocks, four arenas' worth. None of them may lie in the block's
//! place. The block's bytes stay intact, and once everything is
//! freed and `purge()` has run the live counts are back where they started. Without the rule,
//! 2,816 of the small blocks landed in the block's place (44 pools of 64 blocks). And in a
//! child whose address space is limited, the place serves its 44 pools once no other arena
//! can be had (all 2,816 blocks, before allocation fails cleanly).

#[cfg(target_os = "linux")]
#[global_allocator]
static A: pyheap::PoolAlloc = pyheap::PoolAlloc;

#[cfg(not(target_os = "linux"))]
fn main() {}

#[cfg(target_os = "linux")]
fn main() {
    use std::alloc::{alloc, dealloc, Layout};
    use std::hint::black_box;

    const ARENA: usize = 1 << 20;
    let base = pyheap::alloc::stats();
    // First the first arena's free pools are taken (a block may be made in the free pools at
    // the end of an arena in use, which then holds small blocks by right): 1 MiB of small
    // blocks.
    let first: Vec<Box<[u8; 256]>> = (0..4_096).map(|i| Box::new([i as u8; 256])).collect();
    let l = Layout::from_size_align(300_000, 16).unwrap();
    let in_place =
        |place: usize, b: &[u8; 256]| (place..place + ARENA).contains(&(b.as_ptr() as usize));
    // The block may be made at the end of an arena the small blocks use (then it shares the
    // arena by right): such blocks stay allocated, and the next one is made elsewhere.
    let mut shared = Vec::new();
    let block = loop {
        // SAFETY: a non-zero size; every block is written within its size and freed with its
        // layout below.
        let b = unsafe { alloc(l) };
        assert!(!b.is_null());
        // SAFETY: as above.
        unsafe { b.write_bytes(0x5A, l.size()) };
        let place = b as usize & !(ARENA - 1);
        if !first.iter().any(|x| in_place(place, x)) {
            break b;
        }
        assert!(
            shared.len() < 8,
            "no block in a place of its own after {} tries",
            shared.len()
        );
        shared.push(b);
    };
    let place = block as usize & !(ARENA - 1);
    let in_place = |b: &[u8; 256]| in_place(place, b);
    let boxes: Vec<Box<[u8; 256]>> = (0..16_384).map(|i| Box::new([i as u8; 256])).collect();
    let inside = boxes.iter().filter(|b| in_place(b)).count();
    assert_eq!(
        inside, 0,
        "{inside} small blocks in the place of the live one-arena block at {block:p}"
    );
    for (i, b) in boxes.iter().enumerate() {
        assert!(
            b.iter().all(|&x| x == i as u8),
            "small block {i} overwritten"
        );
    }
    // SAFETY: the block's `l.size()` bytes, written above.
    let bytes = unsafe { std::slice::from_raw_parts(block, l.size()) };
    assert!(
        bytes.iter().all(|&x| x == 0x5A),
        "the large block was overwritten"
    );
    // In a child, with the address space limited: once no arena can be had anywhere else,
    // the block's place serves pools after all (rather than the allocation failing with 44
    // free pools left), and then allocation fails cleanly.
    let in_place_all = |p: usize| (place..place + ARENA).contains(&p);
    let small = Layout::from_size_align(256, 8).unwrap();
    let mut taken: Vec<usize> = Vec::with_capacity(600_000);
    // SAFETY: fork in a process with one thread; the child only allocates, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
        let limit = pages * 4096 + (1 << 20);
        let rl = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: a valid rlimit; `_exit` ends the child without the parent's destructors.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                libc::_exit(5);
            }
            loop {
                let p = alloc(small);
                if p.is_null() {
                    break;
                }
                if taken.len() == taken.capacity() {
                    libc::_exit(3); // memory never ran out
                }
                taken.push(p as usize);
            }
            let inside = taken.iter().filter(|&&p| in_place_all(p)).count();
            libc::_exit(if inside == 44 * 64 { 0 } else { 4 });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "address space limited: status {status:#x} (3: memory never ran out; 4: the block's \
         place did not serve its 44 pools once no other arena could be had; 5: no limit)"
    );
    drop(taken);
    drop(black_box(boxes));
    drop(black_box(first));
    // SAFETY: allocated above with `l`.
    unsafe { dealloc(block, l) };
    for b in shared {
        // SAFETY: as above.
        unsafe { dealloc(b, l) };
    }
    pyheap::alloc::purge();
    let s = pyheap::alloc::stats();
    assert_eq!(
        (s.large_blocks, s.large_bytes, s.large_cached_bytes),
        (base.large_blocks, base.large_bytes, 0),
        "after the frees and purge()\n{s}"
    );
    println!("alloc_block_place: no small block in the large block's place: ok");
    many_bare_places();
}

/// Forty live one-arena blocks, each in a place of its own, more than `pick_arena` looks at
/// for an arena that is not a bare place: small blocks made then must not take a new arena per
/// pool (the scan gives up at its bound, and a bare place serves), and the arenas mapped grow
/// by no more than the pools asked for need.
#[cfg(target_os = "linux")]
fn many_bare_places() {
    use std::alloc::{alloc, dealloc, Layout};
    use std::hint::black_box;

    let l = Layout::from_size_align(300_000, 16).unwrap();
    let blocks: Vec<*mut u8> = (0..40)
        .map(|_| {
            // SAFETY: a non-zero size; freed with its layout below.
            let b = unsafe { alloc(l) };
            assert!(!b.is_null());
            b
        })
        .collect();
    let before = pyheap::alloc::stats().arenas_mapped;
    // 2 MiB of 256-byte blocks: 128 pools, two arenas' worth.
    let boxes: Vec<Box<[u8; 256]>> = (0..8_192).map(|i| Box::new([i as u8; 256])).collect();
    let after = pyheap::alloc::stats().arenas_mapped;
    assert!(
        after <= before + 4,
        "128 pools with 40 bare places live took {} arenas more ({before} -> {after})",
        after - before
    );
    drop(black_box(boxes));
    for b in blocks {
        // SAFETY: allocated above with `l`.
        unsafe { dealloc(b, l) };
    }
    println!(
        "alloc_block_place: 40 bare places, 128 pools, {} arenas more: ok",
        after - before
    );
}
