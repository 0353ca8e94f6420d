//! Workload 4, `producer_consumer`: every block is freed by a thread other than the one that
//! allocated it (xmalloc-test style). `producer_consumer_<N>` (the thread sweep,
//! [`super::threads`]) runs `N` such pairs at once, each producer a spawned thread.
//! `handoff` is the same traffic in turns: the allocator's cross-thread cost without the
//! channel's (see [`bench_handoff`]).
//!
//! The bench thread allocates batches of 256 random-size (8..=512 bytes) blocks and hands
//! each batch through a bounded channel to a consumer thread, which frees them and sends the
//! empty batch vector back for reuse (so the handoff itself allocates nothing). This is the
//! worst case for thread-local free lists: every free is a remote free, and the producer's
//! memory only comes back through the allocator's cross-thread path. Throughput is in
//! blocks; the time includes spawning and joining the consumer once per sample.

use super::block::Block;
use super::rng::XorShift;
use criterion::{Criterion, Throughput};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BATCH: usize = 256;
const IN_FLIGHT: usize = 4;
const MIN: usize = 8;
const MAX: usize = 512;

/// One producer (this thread) and its consumer, `iters` batches: the wall time.
fn run(iters: u64, rng: &mut XorShift) -> Duration {
    run_measured::<false>(iters, rng).wall
}

/// What [`run_measured`] measured.
struct Measured {
    /// From before the consumer's spawn to after its join.
    wall: Duration,
    /// Time the producer spent filling batches (allocating), without its waits on the
    /// channel; zero unless `BUSY`.
    producer_busy: Duration,
    /// Time the consumer spent emptying batches (freeing), without its waits; zero unless
    /// `BUSY`.
    consumer_busy: Duration,
}

/// [`run`], and with `BUSY` also each thread's busy time (two clock reads per batch and
/// thread, about 1% of a batch's work).
fn run_measured<const BUSY: bool>(iters: u64, rng: &mut XorShift) -> Measured {
    let clock = || BUSY.then(Instant::now);
    let since = |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t.elapsed());
    let (full_tx, full_rx) = sync_channel::<Vec<Block>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = sync_channel::<Vec<Block>>(IN_FLIGHT + 2);
    for _ in 0..IN_FLIGHT + 2 {
        empty_tx.send(Vec::with_capacity(BATCH)).unwrap();
    }
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let mut busy = Duration::ZERO;
        while let Ok(mut batch) = full_rx.recv() {
            let t = clock();
            batch.clear();
            busy += since(t);
            if empty_tx.send(batch).is_err() {
                break;
            }
        }
        busy
    });
    let mut producer_busy = Duration::ZERO;
    for _ in 0..iters {
        let mut batch = empty_rx.recv().unwrap();
        let t = clock();
        for _ in 0..BATCH {
            batch.push(Block::new(rng.range(MIN, MAX)));
        }
        producer_busy += since(t);
        full_tx.send(batch).unwrap();
    }
    drop(full_tx);
    let consumer_busy = consumer.join().unwrap();
    Measured {
        wall: start.elapsed(),
        producer_busy,
        consumer_busy,
    }
}

/// `pairs` producers (spawned) each with its consumer, `iters` batches per producer; the
/// time from before the first spawn to the last join.
fn run_pairs(pairs: usize, iters: u64, seed: &mut u64) -> Duration {
    let start = Instant::now();
    let producers: Vec<_> = (0..pairs)
        .map(|_| {
            *seed += 1;
            let mut rng = XorShift::new(*seed);
            thread::spawn(move || run(iters, &mut rng))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    start.elapsed()
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let mut rng = XorShift::new(4);
    let mut group = c.benchmark_group("producer_consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(contender, |b| b.iter_custom(|iters| run(iters, &mut rng)));
    group.finish();
}

/// `pipeline_work`: `producer_consumer` run as it is, but what is reported is the time its
/// two threads spend allocating and freeing (the producer's filling of a batch plus the
/// consumer's emptying of one), without their waits on the channel. A diagnostic beside
/// `producer_consumer`, whose wall time is mostly those waits: a consumer that frees faster
/// than the producer allocates runs dry and parks on the channel, and each wake-up costs
/// more than a batch's work on a VM (`BENCHMARKS.md`, session 36). Throughput in blocks.
pub fn bench_work(c: &mut Criterion, contender: &str) {
    let mut rng = XorShift::new(4);
    let mut group = c.benchmark_group("pipeline_work");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(contender, |b| {
        b.iter_custom(|iters| {
            let m = run_measured::<true>(iters, &mut rng);
            m.producer_busy + m.consumer_busy
        })
    });
    group.finish();
}

/// `producer_consumer_<pairs>`: throughput in blocks, all pairs together.
pub fn bench_pairs(c: &mut Criterion, contender: &str, pairs: usize) {
    let mut seed = 40;
    let mut group = c.benchmark_group(format!("producer_consumer_{pairs}"));
    group.throughput(Throughput::Elements((pairs * BATCH) as u64));
    group.bench_function(contender, |b| {
        b.iter_custom(|iters| run_pairs(pairs, iters, &mut seed))
    });
    group.finish();
}

/// Blocks a `handoff` round moves: as many as `producer_consumer` has in flight at most (its
/// bounded channel, and the batches being filled and emptied).
const HANDOFF: usize = BATCH * (IN_FLIGHT + 2);

/// Whose turn it is in `handoff`, in [`Turns::turn`].
const PRODUCER: u8 = 0;
const CONSUMER: u8 = 1;
const DONE: u8 = 2;

/// The state the two threads of `handoff` share: whose turn it is, and the blocks (the lock
/// is never contended: only the thread whose turn it is touches them).
struct Turns {
    turn: AtomicU8,
    blocks: Mutex<Vec<Block>>,
}

impl Turns {
    /// Wait until it is `who`'s turn or the end; returns the turn. Spins (the other thread
    /// runs on the other core), yielding now and then for a machine with one core.
    fn wait_for(&self, who: u8) -> u8 {
        let mut spins = 0u32;
        loop {
            let t = self.turn.load(Ordering::Acquire);
            if t == who || t == DONE {
                return t;
            }
            spins += 1;
            if spins % 1024 == 0 {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Hand `blocks` to the other thread and give it the turn `to`.
    fn pass(&self, blocks: &mut Vec<Block>, to: u8) {
        std::mem::swap(&mut *self.blocks.lock().unwrap(), blocks);
        self.turn.store(to, Ordering::Release);
    }

    /// Take the blocks handed over (after `wait_for` returned our turn) into `blocks`
    /// (empty, its capacity handed back in their place).
    fn take(&self, blocks: &mut Vec<Block>) {
        std::mem::swap(&mut *self.blocks.lock().unwrap(), blocks);
    }
}

/// `iters` rounds of `handoff`: this thread allocates [`HANDOFF`] random-size blocks (the
/// sizes of `producer_consumer`) and hands them to a consumer thread, which frees them all
/// while this one waits, and hands the empty vector back. The time includes spawning and
/// joining the consumer once per sample.
fn handoff(iters: u64, rng: &mut XorShift) -> Duration {
    let turns = Arc::new(Turns {
        turn: AtomicU8::new(PRODUCER),
        blocks: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let consumer = {
        let turns = turns.clone();
        thread::spawn(move || {
            let mut blocks = Vec::new();
            while turns.wait_for(CONSUMER) == CONSUMER {
                turns.take(&mut blocks);
                blocks.clear();
                turns.pass(&mut blocks, PRODUCER);
            }
        })
    };
    let mut blocks = Vec::with_capacity(HANDOFF);
    for _ in 0..iters {
        for _ in 0..HANDOFF {
            blocks.push(Block::new(rng.range(MIN, MAX)));
        }
        turns.pass(&mut blocks, CONSUMER);
        turns.wait_for(PRODUCER);
        turns.take(&mut blocks);
    }
    turns.turn.store(DONE, Ordering::Release);
    consumer.join().unwrap();
    start.elapsed()
}

/// `handoff`: the traffic of `producer_consumer` (every block freed by another thread, the
/// same sizes, as many blocks in flight), with the two threads taking turns instead of
/// running at once through a channel. What it leaves out is what no allocator changes: the
/// channel's waits and wake-ups, and the two threads' overlap. Throughput in blocks.
pub fn bench_handoff(c: &mut Criterion, contender: &str) {
    let mut rng = XorShift::new(4);
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(HANDOFF as u64));
    group.bench_function(contender, |b| {
        b.iter_custom(|iters| handoff(iters, &mut rng))
    });
    group.finish();
}

/// The peak-RSS run of `handoff`: 4,000 rounds (as many blocks as 24,000 batches).
pub fn handoff_standalone() {
    handoff(4_000, &mut XorShift::new(4));
}

/// The peak-RSS run (`super::peak`): 20,000 batches per producer; `pairs == 0` is the
/// suite's `producer_consumer` (this thread produces).
pub fn standalone(pairs: usize) {
    if pairs == 0 {
        run(20_000, &mut XorShift::new(4));
    } else {
        run_pairs(pairs, 20_000, &mut 40);
    }
}
