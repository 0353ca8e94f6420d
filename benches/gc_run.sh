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
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${1:-}" == "--" ]] && shift

cargo bench --no-run --bench gc_bench
crit="${CARGO_TARGET_DIR:-target}/criterion"
repeat=${GC_BENCH_REPEAT:-2}
runs=()
for ((r = 1; r <= repeat; r++)); do
    rm -rf "$crit"/gc_*
    cargo bench -q --bench gc_bench -- "$@"
    out="${CARGO_TARGET_DIR:-target}/gc-runs/$r"
    rm -rf "$out"
    mkdir -p "$out/criterion"
    cp -r "$crit"/gc_* "$out/criterion/"
    runs+=("$out")
done

python3 benches/gc_report.py "${runs[@]}" | tee "${CARGO_TARGET_DIR:-target}/gc-report.md"
