#!/usr/bin/env bash
# Run the allocator workloads at scale (issue 13; benches/alloc_workloads/scale.rs) for
# System, mimalloc and PoolAlloc, and write the ratio table (pyheap's time over each
# contender's).
#
#   benches/scale_run.sh                         # holes at 1,4,8 GiB; 300,2000,8000 threads
#   HOLES_GIB=1,2 THREADS=300 benches/scale_run.sh
#   CONTENDERS="system mimalloc jemalloc pyheap" benches/scale_run.sh
#
# Each (workload, contender) runs in its own process (the heap of a holes_* workload is
# built once per process: 8 GiB of records takes ~10 s and the machine's RAM is for one at a
# time), contenders back to back per workload so that they see the same machine load. The
# report goes to stdout and to target/scale-report.md.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a contenders <<<"${CONTENDERS:-system mimalloc pyheap}"
IFS=, read -r -a holes <<<"${HOLES_GIB:-1,4,8}"
IFS=, read -r -a threads <<<"${THREADS:-300,2000,8000}"

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
cargo bench -p pyheap-bench --no-run "${benches[@]}"

run() { # family, size variable, size, workload name
    for c in "${contenders[@]}"; do
        env ALLOC_BENCH_FRAGMENTATION=skip ALLOC_BENCH_SCALE="$1" "$2=$3" \
            cargo bench -p pyheap-bench -q --bench "alloc_$c" -- "^$4/" "${@:5}"
    done
}
for g in "${holes[@]}"; do run holes ALLOC_BENCH_HOLES_GIB "$g" "holes_${g}gib"; done
for n in "${threads[@]}"; do
    run threads ALLOC_BENCH_THREADS "$n" "threads_$n"
    run thread_churn ALLOC_BENCH_THREADS "$n" "thread_churn_$n"
done

python3 benches/scale_report.py "${contenders[@]}" | tee target/scale-report.md
