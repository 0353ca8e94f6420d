//! Workloads `large_lifo`, `request_loop` and `large_churn`: requests of 256 KiB to 4 MiB, which `PoolAlloc`
//! carves from its arenas on Linux (large blocks, session 27) and every other contender serves
//! from its own large-object path (glibc: its heap, with pyheap's tuning for `System` too, or
//! `mmap` from 32 MiB; mimalloc: large pages of its segments; jemalloc: extents).
//!
//! * `large_lifo`: one buffer per request, the pattern of a server that reads each body into a
//!   fresh `Vec`: a small string and a block of a size from a fixed cycle (256 KiB, 600 KiB,
//!   1 MiB, 3 MiB) are allocated, a byte is written in every page of the block, and both are
//!   freed. Between requests the buffer's memory is free.
//! * `request_loop`: a server's request loop with more small blocks around the buffer: six
//!   header strings of 6-40 bytes in a `Vec`, a buffer of a size from the same cycle of which
//!   the first 16 KiB are filled (a body shorter than the capacity reserved for it; filled
//!   with `resize`, a `memset`, so that the allocator's part of the time shows), and a
//!   response string; the small blocks are freed first, the buffer last. So at every request
//!   the small blocks' pools empty before the buffer is freed: an allocator that ties its
//!   cached buffers to its small pools loses them here (pyheap did until session 29).
//! * `large_churn`: 16 live blocks of random sizes of 256 KiB to 4 MiB; each operation frees a
//!   random one and allocates a new random size in its place, writing a byte in every page
//!   (32 per iteration): the allocator must find room among blocks of other sizes.
//!
//! Throughput is in alloc+free pairs. Every page is written so that what a block costs in page
//! faults counts: memory an allocator gave back and faults in again is part of its price.

use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::hint::black_box;

const MIN: usize = 256 * 1024;
const MAX: usize = 4 << 20;
const CYCLE: [usize; 4] = [256 * 1024, 600 * 1024, 1 << 20, 3 << 20];
const SLOTS: usize = 16;
const OPS: usize = 32;
const PAGE: usize = 4096;

/// A block of `size` bytes with a byte written in every page; freed on drop.
struct Big {
    ptr: *mut u8,
    layout: Layout,
}

impl Big {
    fn new(size: usize) -> Big {
        let layout = Layout::from_size_align(size, 16).expect("a valid size");
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            handle_alloc_error(layout);
        }
        let mut o = 0;
        while o < size {
            // SAFETY: `o < size`, inside the block.
            unsafe { ptr.add(o).write(o as u8) };
            o += PAGE;
        }
        Big { ptr, layout }
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn lifo_request(i: usize) {
    let name = String::from("request-").repeat(1 + i % 3);
    let body = Big::new(CYCLE[i % CYCLE.len()]);
    black_box((&name, &body));
}

const HEADERS: [&str; 6] = [
    "GET",
    "/api/v1/items",
    "host: example.org",
    "accept: */*",
    "user-agent: bench/1.0 (linux; x86_64)",
    "x-request-id",
];
const BODY_WRITTEN: usize = 16 * 1024;

fn request_loop_request(i: usize) {
    // Declared first, freed last: the small blocks go before the buffer.
    let mut body: Vec<u8> = Vec::with_capacity(CYCLE[i % CYCLE.len()]);
    let headers: Vec<String> = HEADERS
        .iter()
        .map(|h| h.repeat(1 + (i + h.len()) % 2))
        .collect();
    body.resize(BODY_WRITTEN, i as u8);
    let response = format!("200 OK {} bytes for {}", body.len(), headers[1]);
    black_box((&body, &headers, &response));
}

struct Ring {
    slots: Vec<Big>,
    rng: XorShift,
}

impl Ring {
    fn new() -> Ring {
        let mut rng = XorShift::new(11);
        let slots = (0..SLOTS).map(|_| Big::new(rng.range(MIN, MAX))).collect();
        Ring { slots, rng }
    }

    fn ops(&mut self) {
        for _ in 0..OPS {
            let i = self.rng.below(SLOTS);
            let size = self.rng.range(MIN, MAX);
            // The old block goes first, as when a buffer is replaced.
            let old = std::mem::replace(&mut self.slots[i], Big::new(size));
            drop(old);
        }
        black_box(&mut self.slots);
    }
}

/// Time `request(i)` for i = 1, 2, ...: one request per iteration.
fn bench_requests(c: &mut Criterion, workload: &str, contender: &str, request: fn(usize)) {
    let mut i = 0;
    let mut group = c.benchmark_group(workload);
    group.throughput(Throughput::Elements(1));
    group.bench_function(contender, |b| {
        b.iter(|| {
            i += 1;
            request(i)
        })
    });
    group.finish();
}

pub fn bench(c: &mut Criterion, contender: &str) {
    bench_requests(c, "large_lifo", contender, lifo_request);
    bench_requests(c, "request_loop", contender, request_loop_request);

    let mut ring = Ring::new();
    let mut group = c.benchmark_group("large_churn");
    group.throughput(Throughput::Elements(OPS as u64));
    group.bench_function(contender, |b| b.iter(|| ring.ops()));
    group.finish();
}

/// `rounds` requests of `large_lifo`, untimed (the peak-RSS run).
pub fn lifo_rounds(rounds: usize) {
    for i in 0..rounds {
        lifo_request(i);
    }
}

/// `rounds` requests of `request_loop`, untimed (the peak-RSS run).
pub fn request_loop_rounds(rounds: usize) {
    for i in 0..rounds {
        request_loop_request(i);
    }
}

/// `rounds` iterations of `large_churn` (32 pairs each), untimed.
pub fn churn_rounds(rounds: usize) {
    let mut ring = Ring::new();
    for _ in 0..rounds {
        ring.ops();
    }
}
