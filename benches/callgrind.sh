#!/usr/bin/env bash
# Instructions per alloc+free pair on the LIFO workload, per contender and size, counted by
# valgrind's callgrind: deterministic, unaffected by machine load. Each count is the
# difference between two runs that differ only in the number of LIFO batches (so start-up,
# first-touch and pool set-up cancel out), divided by the extra pairs.
# Writes target/criterion/callgrind/<contender>.tsv (size, instructions per pair), which
# benches/report.py picks up. Needs valgrind (apt-get install valgrind). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

contenders=(system mimalloc jemalloc pyheap)
sizes=(8 32 128 512)
few=20
many=220 # batches of 1000 pairs; (many - few) * 1000 pairs are counted

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
exes=$(cargo bench --no-run --message-format=json "${benches[@]}" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"].startswith("alloc_"):
        print(m["target"]["name"][len("alloc_"):], m["executable"])
')

out=target/criterion/callgrind
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() { # exe size batches -> total instructions
    ALLOC_BENCH_LIFO="$2:$3" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$1" \
        2>"$tmp/log" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/log"
}

while read -r c exe; do
    printf 'size\tinstructions_per_pair\n' >"$out/$c.tsv"
    for s in "${sizes[@]}"; do
        a=$(count "$exe" "$s" "$few")
        b=$(count "$exe" "$s" "$many")
        per=$(python3 -c "print(f'{($b - $a) / (($many - $few) * 1000):.2f}')")
        printf '%s\t%s\n' "$s" "$per" >>"$out/$c.tsv"
        echo "callgrind lifo_$s/$c: $per instructions per alloc+free pair"
    done
done <<<"$exes"
