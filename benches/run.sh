#!/usr/bin/env bash
# Run the allocator benchmarks for all four contenders and write the comparison table.
#
#   benches/run.sh            # everything, 3 runs: RSS, timings, report (about 8-10 min)
#   benches/run.sh --no-time  # only the fragmentation RSS measurement and the report
#   ALLOC_BENCH_REPEAT=1 benches/run.sh   # one run only (about 3 min)
#
# Contenders are interleaved per workload (all four back to back for one workload, in a
# rotating order, before the next workload) so that they see the same machine load, and the
# whole suite runs ALLOC_BENCH_REPEAT times (default 3): report.py then takes each
# contender's best time over the runs, the estimate least disturbed by neighbours on a
# shared machine (see report.py). Each run's results are kept in target/alloc-runs/<n>/.
# The report goes to stdout and to target/alloc-report.md. Extra arguments after -- go to
# criterion. benches/callgrind.sh (run separately) adds instruction counts to the report.
set -euo pipefail
cd "$(dirname "$0")/.."

contenders=(system mimalloc jemalloc pyheap)
workloads=('^churn/' '^lifo_' '^btree/' '^producer_consumer/' '^larson/')
timings=1
if [[ "${1:-}" == "--no-time" ]]; then timings=0; shift; fi
[[ "${1:-}" == "--" ]] && shift

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
cargo bench -p pyheap-bench --no-run "${benches[@]}"

repeat=${ALLOC_BENCH_REPEAT:-3}
runs=()
for ((r = 1; r <= repeat; r++)); do
    # Fragmentation first, each in a fresh process.
    for c in "${contenders[@]}"; do
        ALLOC_BENCH_FRAGMENTATION=only cargo bench -p pyheap-bench -q --bench "alloc_$c"
    done

    if [[ $timings == 1 ]]; then
        rot=$((r - 1))
        for w in "${workloads[@]}"; do
            for i in 0 1 2 3; do
                c=${contenders[$(((i + rot) % 4))]}
                ALLOC_BENCH_FRAGMENTATION=skip cargo bench -p pyheap-bench -q --bench "alloc_$c" -- "$w" "$@"
            done
            rot=$((rot + 1))
        done
    fi

    rm -rf "target/alloc-runs/$r"
    mkdir -p "target/alloc-runs/$r"
    cp -r target/criterion "target/alloc-runs/$r/criterion"
    runs+=("target/alloc-runs/$r")
done

python3 benches/report.py "${runs[@]}" | tee target/alloc-report.md
