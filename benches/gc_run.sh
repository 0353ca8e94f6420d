#!/usr/bin/env bash
# Run the Gc benchmarks (all six contenders, one binary) and write the comparison table.
#
#   benches/gc_run.sh                   # 2 runs, about 3.5-4 min each; report in target/gc-report.md
#   GC_BENCH_REPEAT=1 benches/gc_run.sh # one run only
#   benches/gc_run.sh -- gc_cycles      # extra arguments after -- go to criterion (a filter)
#
# Each run first executes every heavy workload once per contender in a child process (peak
# RSS, drop check, crash detection: a contender that overflows its stack is reported, not
# timed), then criterion times every contender of a workload back to back (the order rotates
# per workload). gc_report.py takes each contender's best time over the runs. Each run's
# results are kept in target/gc-runs/<n>/.
# The suite is `gc` (gc_bench, gc_report.py) unless sync_run.sh sets BENCH_SUITE=sync.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${1:-}" == "--" ]] && shift
suite=${BENCH_SUITE:-gc}
repeat_var=${suite^^}_BENCH_REPEAT

cargo bench -p pyheap-bench --no-run --bench "${suite}_bench"
crit="${CARGO_TARGET_DIR:-target}/criterion"
repeat=${!repeat_var:-2}
runs=()
for ((r = 1; r <= repeat; r++)); do
    rm -rf "$crit"/"${suite}"_*
    cargo bench -p pyheap-bench -q --bench "${suite}_bench" -- "$@"
    out="${CARGO_TARGET_DIR:-target}/${suite}-runs/$r"
    rm -rf "$out"
    mkdir -p "$out/criterion"
    cp -r "$crit"/"${suite}"_* "$out/criterion/"
    runs+=("$out")
done

python3 "benches/${suite}_report.py" "${runs[@]}" | tee "${CARGO_TARGET_DIR:-target}/${suite}-report.md"
