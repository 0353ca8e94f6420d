#!/usr/bin/env bash
# Instructions per alloc+free pair on the LIFO workload, per contender and size, counted by
# valgrind's callgrind: deterministic, unaffected by machine load. Each count is the
# difference between two runs that differ only in the number of LIFO batches (so start-up,
# first-touch and pool set-up cancel out), divided by the extra pairs.
# Writes target/criterion/callgrind/<contender>.tsv (size, instructions per pair), which
# benches/report.py picks up. Needs valgrind (apt-get install valgrind). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

contenders=(system mimalloc jemalloc snmalloc rpmalloc pyheap pyheap_mimalloc)
# 1024 and 4096: requests above the pools' limit (pyheap's fallback allocator).
sizes=(8 32 128 512 1024 4096)
few=20
many=220 # batches of 1000 pairs; (many - few) * 1000 pairs are counted

benches=()
for c in "${contenders[@]}"; do benches+=(--bench "alloc_$c"); done
exes=$(cargo bench -p pyheap-bench --no-run --message-format=json "${benches[@]}" | python3 -c '
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

count() { # exe size batches [callgrind options] -> instructions
    local exe=$1 size=$2 batches=$3
    shift 3
    ALLOC_BENCH_LIFO="$size:$batches" valgrind --tool=callgrind \
        --callgrind-out-file="$tmp/cg.out" "$@" "$exe" 2>"$tmp/log" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/log"
}
per_pair() { # instructions(few) instructions(many) -> per extra pair
    python3 -c "print(f'{($2 - $1) / (($many - $few) * 1000):.2f}')"
}

while read -r c exe; do
    printf 'size\tinstructions_per_pair\n' >"$out/$c.tsv"
    for s in "${sizes[@]}"; do
        per=$(per_pair "$(count "$exe" "$s" "$few")" "$(count "$exe" "$s" "$many")")
        printf '%s\t%s\n' "$s" "$per" >>"$out/$c.tsv"
        echo "callgrind lifo_$s/$c: $per instructions per alloc+free pair"
    done
    if [[ $c == pyheap ]]; then
        # pyheap's allocator is inlined whole into the __rust_alloc/__rust_dealloc shims, so
        # counting only inside them gives its own cost; the rest of the pair is the
        # benchmark loop (Vec push/pop, the byte write, the calls), the same code for every
        # contender. (The other allocators' shims tail-call into C, which this can't follow.)
        toggles=(--toggle-collect='*__rust_alloc' --toggle-collect='*__rust_dealloc')
        printf 'size\tloop_instructions_per_pair\n' >"$out/loop_overhead.tsv"
        for s in "${sizes[@]}"; do
            inside=$(per_pair "$(count "$exe" "$s" "$few" "${toggles[@]}")" \
                "$(count "$exe" "$s" "$many" "${toggles[@]}")")
            total=$(sed -n "s/^$s\t//p" "$out/$c.tsv")
            loop=$(python3 -c "print(f'{$total - $inside:.2f}')")
            printf '%s\t%s\n' "$s" "$loop" >>"$out/loop_overhead.tsv"
            echo "callgrind lifo_$s: benchmark loop $loop of the $total instructions per pair"
        done
    fi
done <<<"$exes"
