#!/usr/bin/env bash
# Run the allocator benchmarks for all contenders (the five other allocators, pyheap, and
# pyheap_mimalloc: pyheap's pools in front of mimalloc, `PoolAllocWith<MiMalloc>`) and write
# the comparison table.
#
#   benches/run.sh            # everything, 3 runs: RSS, timings, report (about 40 min)
#   benches/run.sh --no-time  # only the RSS measurements (fragmentation, peaks) and the report
#   benches/run.sh --sweep    # the thread sweep instead: larson_<N> and producer_consumer_<N>
#                             # for N = 1, 2, 4, 8, 16 (ALLOC_BENCH_SWEEP overrides the list)
#   benches/run.sh --cgu1     # every contender built with codegen-units = 1 (see below);
#                             # results in target/alloc-runs-cgu1/, target/alloc-report-cgu1.md
#   ALLOC_BENCH_REPEAT=1 benches/run.sh   # one run only (about 14 min)
#
# Why --cgu1: the workloads are one library (alloc_workloads/), compiled once, so every
# contender runs the same machine code for them whatever the profile (until session 24 each
# bench target compiled them into its own crate, and with 16 codegen units the crate's
# partition, the global allocator's items included, decided which of std's functions were
# inlined into which: 7-11% more of the workload's own instructions in one contender's
# binary than in another's; BENCHMARKS.md, "Session 24"). --cgu1 still changes that one
# compilation, and each allocator crate's: it shows how much the ratios owe to how the
# code around the allocator was compiled. benches/insn_split.py counts the instructions.
#
# Contenders are interleaved per workload (all six back to back for one workload, in a
# rotating order, before the next workload) so that they see the same machine load, and the
# whole suite runs ALLOC_BENCH_REPEAT times (default 3): report.py then takes each
# contender's best time over the runs, the estimate least disturbed by neighbours on a
# shared machine, and rates every contender against the fastest of the run (see report.py).
# Before the timings, every (workload, contender) runs once in a fresh process for its peak
# RSS (ALLOC_BENCH_PEAK, alloc_workloads/peak.rs). Each run's results are kept in
# target/alloc-runs/<n>/ (target/alloc-sweep-runs/<n>/ with --sweep). The report goes to
# stdout and to target/alloc-report.md (target/alloc-sweep-report.md). Extra arguments after
# -- go to criterion. benches/callgrind.sh (run separately) adds instruction counts.
set -euo pipefail
cd "$(dirname "$0")/.."

contenders=(system mimalloc jemalloc snmalloc rpmalloc pyheap pyheap_mimalloc)
n=${#contenders[@]}
workloads=('^churn/' '^lifo_' '^medium_' '^large_' '^request_loop/' '^btree/' '^producer_consumer/' '^pipeline_work/' '^handoff/' '^larson_' '^serde_json/' '^rayon/'
    '^hashmap/')
peaks=(churn lifo_8 lifo_32 lifo_128 lifo_512 medium_lifo medium_churn large_lifo request_loop large_churn btree producer_consumer handoff larson_2 larson_4 larson_8
    serde_json rayon hashmap)
runs_dir=target/alloc-runs
report=target/alloc-report.md
fragmentation=1
timings=1
if [[ "${1:-}" == "--no-time" ]]; then timings=0; shift; fi
if [[ "${1:-}" == "--sweep" ]]; then
    shift
    export ALLOC_BENCH_SWEEP=${ALLOC_BENCH_SWEEP:-1,2,4,8,16}
    workloads=('^larson_' '^producer_consumer_')
    peaks=()
    for t in ${ALLOC_BENCH_SWEEP//,/ }; do peaks+=("larson_$t" "producer_consumer_$t"); done
    runs_dir=target/alloc-sweep-runs
    report=target/alloc-sweep-report.md
    fragmentation=0
fi
if [[ "${1:-}" == "--cgu1" ]]; then
    shift
    export CARGO_PROFILE_BENCH_CODEGEN_UNITS=1
    runs_dir=$runs_dir-cgu1
    report=${report%.md}-cgu1.md
fi
[[ "${1:-}" == "--" ]] && shift

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
cargo bench -p pyheap-bench --no-run "${benches[@]}"

repeat=${ALLOC_BENCH_REPEAT:-3}
runs=()
for ((r = 1; r <= repeat; r++)); do
    # RSS first, each in a fresh process: fragmentation, then every workload's peak.
    if [[ $fragmentation == 1 ]]; then
        for c in "${contenders[@]}"; do
            ALLOC_BENCH_FRAGMENTATION=only cargo bench -p pyheap-bench -q --bench "alloc_$c"
        done
    fi
    rot=$((r - 1))
    for w in "${peaks[@]}"; do
        for ((i = 0; i < n; i++)); do
            c=${contenders[$(((i + rot) % n))]}
            ALLOC_BENCH_PEAK=$w cargo bench -p pyheap-bench -q --bench "alloc_$c"
        done
        rot=$((rot + 1))
    done

    if [[ $timings == 1 ]]; then
        rot=$((r - 1))
        for w in "${workloads[@]}"; do
            for ((i = 0; i < n; i++)); do
                c=${contenders[$(((i + rot) % n))]}
                ALLOC_BENCH_FRAGMENTATION=skip cargo bench -p pyheap-bench -q --bench "alloc_$c" -- "$w" "$@"
            done
            rot=$((rot + 1))
        done
    fi

    rm -rf "$runs_dir/$r"
    mkdir -p "$runs_dir/$r"
    cp -r target/criterion "$runs_dir/$r/criterion"
    runs+=("$runs_dir/$r")
done

sweep=()
[[ $fragmentation == 0 ]] && sweep=(--sweep)
python3 benches/report.py "${sweep[@]}" "${runs[@]}" | tee "$report"
