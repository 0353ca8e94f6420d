//! Workload 5, `larson_<N>`: a larson-like server mix with `N` threads.
//!
//! `N` independent chains (think: `N` server workers), each owning an array of 1000 live
//! blocks of 8..=512 bytes. In every generation each chain's current thread replaces 20,000
//! random slots with new random-size blocks, then hands its array to a freshly spawned
//! thread and exits, as in Larson & Krishnan's benchmark. The new thread frees blocks its
//! predecessor allocated, so frees cross threads, and threads come and go all the time (for
//! pyheap: heaps are abandoned at thread exit and adopted by the next thread). One iteration
//! is one generation of all chains, run in parallel; throughput is in replacements
//! (free+alloc pairs), and the time includes the thread spawns. `larson_2` is the workload
//! that was called `larson` before issue 17; the suite runs 2, 4 and 8 chains, the thread
//! sweep ([`super::threads`]) 1 to 16.

use super::block::Block;
use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::thread;
use std::time::{Duration, Instant};

const SLOTS: usize = 1000;
const ROUND: usize = 20_000;
const MIN: usize = 8;
const MAX: usize = 512;

struct Worker {
    slots: Vec<Option<Block>>,
    rng: XorShift,
}

impl Worker {
    fn new(seed: u64) -> Worker {
        let mut rng = XorShift::new(seed);
        let slots = (0..SLOTS)
            .map(|_| Some(Block::new(rng.range(MIN, MAX))))
            .collect();
        Worker { slots, rng }
    }

    fn round(&mut self) {
        for _ in 0..ROUND {
            let i = self.rng.below(SLOTS);
            self.slots[i] = None;
            self.slots[i] = Some(Block::new(self.rng.range(MIN, MAX)));
        }
    }
}

/// One chain: `generations` threads in turn, each handed the previous one's worker.
fn chain(mut worker: Worker, generations: u64) -> Worker {
    for _ in 0..generations {
        worker = thread::spawn(move || {
            worker.round();
            worker
        })
        .join()
        .unwrap();
    }
    worker
}

fn run(chains: usize, iters: u64, seed: &mut u64) -> Duration {
    let workers: Vec<Worker> = (0..chains)
        .map(|_| {
            *seed += 1;
            Worker::new(*seed)
        })
        .collect();
    let start = Instant::now();
    let drivers: Vec<_> = workers
        .into_iter()
        .map(|w| thread::spawn(move || chain(w, iters)))
        .collect();
    let done: Vec<Worker> = drivers.into_iter().map(|d| d.join().unwrap()).collect();
    let elapsed = start.elapsed();
    drop(done);
    elapsed
}

pub fn bench(c: &mut Criterion, contender: &str, chains: usize) {
    let mut seed = 5;
    let mut group = c.benchmark_group(format!("larson_{chains}"));
    group.throughput(Throughput::Elements((chains * ROUND) as u64));
    group.bench_function(contender, |b| {
        b.iter_custom(|iters| run(chains, iters, &mut seed))
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 200 generations of `chains` chains.
pub fn standalone(chains: usize) {
    run(chains, 200, &mut 5);
}
