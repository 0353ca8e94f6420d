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
# The steps are gc_run.sh's, on the sync suite.
BENCH_SUITE=sync exec "$(dirname "$0")/gc_run.sh" "$@"
