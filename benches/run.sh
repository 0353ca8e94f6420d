#!/usr/bin/env bash
# Run the allocator benchmarks for all four contenders and write the comparison table.
#
#   benches/run.sh            # everything: RSS, timings, report (about 6-8 minutes)
#   benches/run.sh --no-time  # only the fragmentation RSS measurement and the report
#   ALLOC_BENCH_REPEAT=3 benches/run.sh   # three full runs; the summary shows the median
#                                         # ratio and the range over the runs
#
# Contenders are interleaved per workload (all four back to back for one workload, in a
# rotating order, before the next workload) so that they see the same machine load: on a
# shared machine compare only ratios from one run. The report goes to stdout and to
# target/alloc-report.md. Extra arguments after -- go to criterion.
set -euo pipefail
cd "$(dirname "$0")/.."

contenders=(system mimalloc jemalloc pyheap)
workloads=('^churn/' '^lifo_' '^btree/' '^producer_consumer/' '^larson/')
timings=1
if [[ "${1:-}" == "--no-time" ]]; then timings=0; shift; fi
[[ "${1:-}" == "--" ]] && shift

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
cargo bench --no-run "${benches[@]}"

repeat=${ALLOC_BENCH_REPEAT:-1}
runs=()
for ((r = 1; r <= repeat; r++)); do
    # Fragmentation first, each in a fresh process.
    for c in "${contenders[@]}"; do
        ALLOC_BENCH_FRAGMENTATION=only cargo bench -q --bench "alloc_$c"
    done

    if [[ $timings == 1 ]]; then
        rot=$((r - 1))
        for w in "${workloads[@]}"; do
            for i in 0 1 2 3; do
                c=${contenders[$(((i + rot) % 4))]}
                ALLOC_BENCH_FRAGMENTATION=skip cargo bench -q --bench "alloc_$c" -- "$w" "$@"
            done
            rot=$((rot + 1))
        done
    fi

    if ((repeat > 1)); then
        rm -rf "target/alloc-runs/$r"
        mkdir -p "target/alloc-runs/$r"
        cp -r target/criterion "target/alloc-runs/$r/criterion"
        runs+=("target/alloc-runs/$r")
    fi
done

python3 benches/report.py "${runs[@]}" | tee target/alloc-report.md
