//! Real crate 2, `rayon`: a two-stage rayon pipeline whose data is allocated on one worker
//! and freed on another.
//!
//! Stage 1 makes 64 chunks of 256 text lines in parallel (each line 8-16 words drawn from a
//! 4,096-word vocabulary, built by `push_str`, so it grows by reallocation). Stage 2 counts
//! the words of the chunks in parallel, in the reverse order (`rev()`), so that a chunk is
//! mostly consumed by a worker other than the one that built it: each line is freed there,
//! each worker's `fold` fills a `HashMap<String, usize>` (one `String` per new word), and the
//! `reduce` merges the maps, freeing one side's keys on whichever worker merges. The final
//! map is checked (the counts add up to the words made) and dropped on the calling thread.
//! rayon's global pool (one worker per core) runs it. Throughput is in lines.
//!
//! How many chunks were in fact freed by another worker depends on rayon's work stealing;
//! the peak-RSS run prints the share (`rayon: N of 64 chunks freed by another worker`).

use super::rng::XorShift;
use criterion::{Criterion, SamplingMode, Throughput};
use rayon::prelude::*;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const CHUNKS: usize = 64;
const LINES: usize = 256;
const VOCABULARY: usize = 4096;

fn vocabulary() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut rng = XorShift::new(17);
        (0..VOCABULARY)
            .map(|_| {
                let len = rng.range(2, 12);
                (0..len)
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect()
            })
            .collect()
    })
}

/// A chunk of lines, with the worker that built it and its word count.
struct Chunk {
    lines: Vec<String>,
    words: usize,
    maker: Option<usize>,
}

fn make_chunk(seed: u64) -> Chunk {
    let vocab = vocabulary();
    let mut rng = XorShift::new(seed);
    let mut words = 0;
    let lines = (0..LINES)
        .map(|_| {
            let mut line = String::new();
            for k in 0..rng.range(8, 16) {
                if k > 0 {
                    line.push(' ');
                }
                line.push_str(&vocab[rng.below(VOCABULARY)]);
                words += 1;
            }
            line
        })
        .collect();
    Chunk {
        lines,
        words,
        maker: rayon::current_thread_index(),
    }
}

type Counts = HashMap<String, usize>;

fn count_into(mut counts: Counts, chunk: Chunk, crossed: &AtomicUsize) -> Counts {
    if chunk.maker != rayon::current_thread_index() {
        crossed.fetch_add(1, Ordering::Relaxed);
    }
    for line in chunk.lines {
        for w in line.split(' ') {
            match counts.get_mut(w) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(w.to_string(), 1);
                }
            }
        }
    } // each line is freed here, on this worker
    counts
}

fn merge(mut a: Counts, mut b: Counts) -> Counts {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (w, n) in b {
        *a.entry(w).or_insert(0) += n;
    }
    a
}

/// One iteration; returns how many chunks were freed by a worker other than their maker.
fn pipeline(seed: u64) -> usize {
    let chunks: Vec<Chunk> = (0..CHUNKS)
        .into_par_iter()
        .map(|i| make_chunk(seed * CHUNKS as u64 + i as u64))
        .collect();
    let made: usize = chunks.iter().map(|c| c.words).sum();
    let crossed = AtomicUsize::new(0);
    let counts = chunks
        .into_par_iter()
        .rev()
        .fold(Counts::new, |m, c| count_into(m, c, &crossed))
        .reduce(Counts::new, merge);
    assert_eq!(
        counts.values().sum::<usize>(),
        made,
        "word counts lost words"
    );
    black_box(counts);
    crossed.into_inner()
}

pub fn bench(c: &mut Criterion, contender: &str) {
    let _ = vocabulary();
    let mut group = c.benchmark_group("rayon");
    group.throughput(Throughput::Elements((CHUNKS * LINES) as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let mut seed = 0;
    group.bench_function(contender, |b| {
        b.iter(|| {
            seed += 1;
            pipeline(seed)
        })
    });
    group.finish();
}

/// The peak-RSS run (`super::peak`): 30 pipelines.
pub fn standalone() {
    let crossed: usize = (1..=30).map(pipeline).sum();
    println!(
        "rayon: {:.1} of {CHUNKS} chunks freed by another worker (mean of 30 runs)",
        crossed as f64 / 30.0
    );
}
