#!/usr/bin/env bash
# What allocation tracing costs (issue 16), all in one session: pyheap with tracemalloc off,
# tracing 1 frame and 5 frames; pyheap's debug allocator (PYHEAP_MALLOC=debug); dhat off and
# on; the system allocator; and CPython's tracemalloc on the same workloads. Prints the
# slowdowns (traced time / untraced time) and writes target/trace-report.md.
#
#   benches/trace_run.sh          # about 4 minutes
#   TRACE_BENCH_REPEAT=2 benches/trace_run.sh   # each binary twice, best time kept
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench -p pyheap-bench --no-run --bench trace_pyheap --bench trace_dhat --bench trace_system
repeat=${TRACE_BENCH_REPEAT:-1}
mkdir -p target/trace-runs
for ((r = 1; r <= repeat; r++)); do
    cargo bench -p pyheap-bench -q --bench trace_system
    cargo bench -p pyheap-bench -q --bench trace_pyheap
    PYHEAP_MALLOC=debug cargo bench -p pyheap-bench -q --bench trace_pyheap
    cargo bench -p pyheap-bench -q --bench trace_dhat
    rm -rf "target/trace-runs/$r"
    mkdir -p "target/trace-runs/$r"
    for w in trace_churn trace_lifo trace_btree; do
        cp -r "target/criterion/$w" "target/trace-runs/$r/"
    done
done
python3 benches/trace_python.py 30 >target/trace-runs/python.tsv
python3 benches/trace_report.py target/trace-runs | tee target/trace-report.md
