#!/usr/bin/env bash
# Run the thread-safe Gc benchmarks (Arc, dumpster::sync, gcmodule::ThreadedCc, pyheap::Gc;
# one binary) and write the comparison table.
#
#   benches/sync_run.sh                     # 2 runs, about 6 min each on 2 loaded cores; report in target/sync-report.md
#   SYNC_BENCH_REPEAT=1 benches/sync_run.sh # one run only
#   benches/sync_run.sh -- sync_cycles      # extra arguments after -- go to criterion (a filter)
#
# Each run first executes every heavy workload (cycles, graph, mix_2t) once per contender in
# a child process (peak RSS, drop check, crash detection: a contender that overflows its
# stack is reported, not timed), then criterion times every contender of a workload back to
# back (the order rotates per workload). sync_report.py takes each contender's best time over
# the runs. Each run's results are kept in target/sync-runs/<n>/.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${1:-}" == "--" ]] && shift

cargo bench --no-run --bench sync_bench
crit="${CARGO_TARGET_DIR:-target}/criterion"
repeat=${SYNC_BENCH_REPEAT:-2}
runs=()
for ((r = 1; r <= repeat; r++)); do
    rm -rf "$crit"/sync_*
    cargo bench -q --bench sync_bench -- "$@"
    out="${CARGO_TARGET_DIR:-target}/sync-runs/$r"
    rm -rf "$out"
    mkdir -p "$out/criterion"
    cp -r "$crit"/sync_* "$out/criterion/"
    runs+=("$out")
done

python3 benches/sync_report.py "${runs[@]}" | tee "${CARGO_TARGET_DIR:-target}/sync-report.md"
