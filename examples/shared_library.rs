//! A shared library (`cdylib`) whose global allocator is `PoolAlloc`, as a Python extension
//! module or a plugin written in Rust would have it. `tests/alloc_shared_library.rs` loads it
//! with `dlopen` into a program that allocates with the system allocator, and calls it from
//! several threads: the allocator's thread-local words (`src/alloc/tls_words.rs`, initial-exec
//! TLS on x86-64 Linux) must work in a library loaded after the program started.
//!
//! Built by `cargo test` (and `cargo build --examples`) as
//! `target/<profile>/examples/libshared_library.so`.

#[global_allocator]
static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;

/// Allocate blocks of every kind (small, medium, large) on the calling thread and on a thread
/// of the library's own, free half of each thread's blocks on the other, check every byte, and
/// return the sum of the sizes allocated (a deterministic function of `seed`), or 0 when a
/// block lost its bytes.
#[no_mangle]
pub extern "C" fn pyheap_shared_library_work(seed: u64) -> u64 {
    let make = |seed: u64| -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        (0..3000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let size = match i % 4 {
                    0 => 1 + (x % 512) as usize,
                    1 => 513 + (x % 3584) as usize,
                    2 => 4097 + (x % 28_000) as usize,
                    _ => 8 + (x % 64) as usize,
                };
                vec![(size % 251) as u8; size]
            })
            .collect()
    };
    let ok = |blocks: &[Vec<u8>]| {
        blocks
            .iter()
            .all(|b| b.iter().all(|&x| x == (b.len() % 251) as u8))
    };
    let mut mine = make(seed);
    let theirs = std::thread::spawn(move || make(seed.wrapping_mul(31).wrapping_add(7)))
        .join()
        .unwrap();
    if !ok(&mine) || !ok(&theirs) {
        return 0;
    }
    let sum: usize = mine.iter().chain(theirs.iter()).map(Vec::len).sum();
    // Half of this thread's blocks freed on another thread, the other thread's all here.
    let half = mine.split_off(mine.len() / 2);
    std::thread::spawn(move || drop(half)).join().unwrap();
    drop(theirs);
    drop(mine);
    sum as u64
}

/// Heaps held by running threads, from the library's allocator (`stats()`).
#[no_mangle]
pub extern "C" fn pyheap_shared_library_heaps() -> u64 {
    pyheap::alloc::stats().heaps_active as u64
}
