#!/usr/bin/env python3
"""Compare the allocator contenders from one run of benches/run.sh, as Markdown.

Reads target/criterion/<workload>/<contender>/new/{estimates,benchmark}.json (criterion's
mean point estimate), target/criterion/fragmentation/<contender>.tsv (RSS) and, if
benches/callgrind.sh was run, target/criterion/callgrind/<contender>.tsv (instructions per
alloc+free pair).

Ratios are to mimalloc, measured in the same run:
  * throughput ratio = mimalloc_time / contender_time  (> 1.0: faster than mimalloc)
  * RSS ratio        = contender_rss / mimalloc_rss    (< 1.0: less memory than mimalloc)
  * instr. ratio     = contender_instr / mimalloc_instr (< 1.0: fewer instructions)

Usage: python3 benches/report.py [target-dir ...]   (stdlib only; default: target)

With several target dirs (one per run, as benches/run.sh makes), each contender's time is
its best (lowest mean) over the runs, and the ratios are taken between those best times; the
range of the per-run ratios is shown next to them. On a shared machine a whole measurement
can be slowed 1.5-2x by a neighbour (e.g. a compile on the other hyperthread), and that
noise only ever adds time, so the best of several runs is the estimate least disturbed by
it. RSS numbers are nearly deterministic; the median over runs is shown.
"""

import json
import os
import sys

CONTENDERS = ["system", "mimalloc", "jemalloc", "pyheap"]
REFERENCE = "mimalloc"
WORKLOADS = [
    # (workload, what one iteration is, target throughput ratio for pyheap or None)
    ("churn", "10,000 free+alloc pairs, random 8-512 B", 1.0),
    ("lifo_8", "1000 allocs then 1000 frees, 8 B", 1.0),
    ("lifo_32", "1000 allocs then 1000 frees, 32 B", 1.0),
    ("lifo_128", "1000 allocs then 1000 frees, 128 B", 1.0),
    ("lifo_512", "1000 allocs then 1000 frees, 512 B", 1.0),
    ("btree", "build + drop BTreeMap<String, Vec<u32>>, 10,000 entries", None),
    ("producer_consumer", "256 blocks allocated on one thread, freed on another", 0.8),
    ("larson", "2 x 20,000 slot replacements, then each array moves to a new thread", 0.8),
]
RSS_TARGET = 1.0
MIB = 1024.0 * 1024.0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_tsv(path):
    try:
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return None
    return {r[0]: r[1] for r in rows[1:] if len(r) >= 2}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def met(ok):
    return "**met**" if ok else "**not met**"


def timing(crit, workload, contender):
    d = os.path.join(crit, workload, contender, "new")
    est = load_json(os.path.join(d, "estimates.json"))
    if est is None:
        return None
    mean = est["mean"]
    bench = load_json(os.path.join(d, "benchmark.json")) or {}
    elements = (bench.get("throughput") or {}).get("Elements")
    ci = mean["confidence_interval"]
    half = (ci["upper_bound"] - ci["lower_bound"]) / 2
    return {
        "ns": mean["point_estimate"],
        "ci": half / mean["point_estimate"] if mean["point_estimate"] else 0.0,
        "elements": elements,
    }


def best_timing(crits, workload, contender):
    """The run with the lowest mean for this contender, and every run's mean."""
    runs = [timing(c, workload, contender) for c in crits]
    ok = [(r["ns"], i, r) for i, r in enumerate(runs) if r]
    if not ok:
        return None, runs
    _, i, r = min(ok, key=lambda t: (t[0], t[1]))
    return dict(r, run=i + 1), runs


def timing_tables(crits, out):
    """Per-workload tables; returns [(workload, target, {contender: ratio}, {contender:
    [per-run ratios]})]."""
    summary = []
    several = len(crits) > 1
    for workload, what, target in WORKLOADS:
        best, per_run = {}, {}
        for c in CONTENDERS:
            best[c], per_run[c] = best_timing(crits, workload, c)
        if not any(best.values()):
            continue
        ref = best.get(REFERENCE)
        out.append(f"### {workload}\n")
        out.append(f"One iteration: {what}.\n")
        run_col = " | best run" if several else ""
        out.append(
            "| contender | time / iter | ± (95% CI) | ns / element | Melem/s | vs mimalloc"
            + run_col
            + " |"
        )
        out.append("|---|---:|---:|---:|---:|---:|" + ("---:|" if several else ""))
        for c in CONTENDERS:
            r = best[c]
            if r is None:
                out.append(f"| {c} | — | — | — | — | —" + (" | —" if several else "") + " |")
                continue
            per = r["ns"] / r["elements"] if r["elements"] else None
            rate = f"{1e3 / per:.1f}" if per else "—"
            ratio = f"{ref['ns'] / r['ns']:.2f}×" if ref else "—"
            per_s = f"{per:.1f}" if per else "—"
            run = f" | {r['run']}" if several else ""
            out.append(
                f"| {c} | {fmt_time(r['ns'])} | {100 * r['ci']:.1f}% | {per_s} | {rate} | {ratio}{run} |"
            )
        out.append("")
        ratios = {c: (ref["ns"] / best[c]["ns"] if ref and best[c] else None) for c in CONTENDERS}
        run_ratios = {
            c: [
                m["ns"] / x["ns"]
                for m, x in zip(per_run[REFERENCE], per_run[c])
                if m is not None and x is not None
            ]
            for c in CONTENDERS
        }
        summary.append((workload, target, ratios, run_ratios))
    return summary


def rss_table(crit, out):
    data = {c: load_tsv(os.path.join(crit, "fragmentation", f"{c}.tsv")) for c in CONTENDERS}
    if not any(data.values()):
        return None
    ref = data.get(REFERENCE)
    out.append("### fragmentation (RSS, not a timing)\n")
    any_row = next(d for d in data.values() if d)
    out.append(
        "2,000,000 objects of 24-64 B allocated and written, then a random 90% freed; "
        f"live bytes {int(any_row['live_bytes_peak']) / MIB:.1f} MiB at the peak, "
        f"{int(any_row['live_bytes_after_free']) / MIB:.1f} MiB after the frees. "
        "RSS from /proc/self/statm, in MiB; every reading includes the benchmark's own 17 MiB "
        "table of object pointers (mapped outside the allocator). Ratios: RSS after freeing 90% "
        "over mimalloc's, absolute (the target's measure) and above each contender's own "
        "'before' reading (the memory the workload added).\n"
    )
    out.append(
        "| contender | before | peak | after freeing 90% | after freeing all "
        "| after-90% vs mimalloc | above-before vs mimalloc |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for c in CONTENDERS:
        d = data[c]
        if d is None:
            out.append(f"| {c} | — | — | — | — | — | — |")
            continue
        after = int(d["rss_after_free"])
        grown = after - int(d["rss_before"])
        ref_grown = int(ref["rss_after_free"]) - int(ref["rss_before"]) if ref else 0
        g = f"{grown / ref_grown:.2f}×" if ref_grown > 0 else "—"
        ratio = after / int(ref["rss_after_free"]) if ref else None
        ratios[c] = ratio
        cells = [int(d[k]) / MIB for k in ("rss_before", "rss_peak", "rss_after_free", "rss_all_freed")]
        r = f"{ratio:.2f}×" if ratio is not None else "—"
        out.append(f"| {c} | " + " | ".join(f"{x:.1f}" for x in cells) + f" | {r} | {g} |")
    out.append("")
    return ratios


def callgrind_table(crit, out):
    data = {c: load_tsv(os.path.join(crit, "callgrind", f"{c}.tsv")) for c in CONTENDERS}
    if not any(data.values()):
        return
    loop = load_tsv(os.path.join(crit, "callgrind", "loop_overhead.tsv")) or {}
    sizes = sorted({int(k) for d in data.values() if d for k in d})

    def own(c, s):
        v = (data[c] or {}).get(str(s))
        if v is None:
            return None
        return float(v) - float(loop.get(str(s), 0.0))

    out.append("### instructions per alloc+free pair (callgrind, LIFO batches)\n")
    out.append(
        "Deterministic, unaffected by machine load: total instructions of two runs that differ "
        "only in the number of LIFO batches, divided by the extra alloc+free pairs. "
        + (
            "The benchmark loop's own share (Vec push/pop, the byte write, the calls: the same "
            "code for every contender, measured inside pyheap's run) is subtracted and shown on "
            "its own row, so the cells are the allocator's instructions. "
            if loop
            else "Includes the benchmark loop's own instructions, the same for all. "
        )
        + "In parentheses: contender / mimalloc (< 1.0: fewer instructions).\n"
    )
    out.append("| contender | " + " | ".join(f"{s} B" for s in sizes) + " |")
    out.append("|---|" + "---:|" * len(sizes))
    for c in CONTENDERS:
        cells = []
        for s in sizes:
            v, r = own(c, s), own(REFERENCE, s)
            if v is None:
                cells.append("—")
            else:
                cells.append(f"{v:.1f} ({v / r:.2f}×)" if r else f"{v:.1f}")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    if loop:
        out.append(
            "| *(benchmark loop)* | "
            + " | ".join(f"*{float(loop.get(str(s), 0)):.1f}*" for s in sizes)
            + " |"
        )
    out.append("")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def cell(value, spread):
    """'0.87×', with the range of the per-run values when they differ."""
    if value is None:
        return "—"
    lo, hi = (min(spread), max(spread)) if spread else (value, value)
    if f"{lo:.2f}" == f"{hi:.2f}":
        return f"{value:.2f}×"
    return f"{value:.2f}× ({lo:.2f}–{hi:.2f})"


def main():
    targets = sys.argv[1:] or [os.environ.get("CARGO_TARGET_DIR", "target")]
    crits = [os.path.join(t, "criterion") for t in targets]
    details = []
    summary = timing_tables(crits, details)
    rss_runs = [rss_table(c, details if i == len(crits) - 1 else []) for i, c in enumerate(crits)]
    # Instruction counts: from the last run that has them, else from the live target dir
    # (benches/callgrind.sh writes there; it can be run before or after run.sh).
    cg = [c for c in reversed(crits) if os.path.isdir(os.path.join(c, "callgrind"))]
    callgrind_table(cg[0] if cg else os.path.join("target", "criterion"), details)

    out = ["## Summary: ratios to mimalloc (all measured in one session)\n"]
    out.append(
        "Throughput ratio = mimalloc_time / contender_time (> 1.0 is faster than mimalloc); "
        "RSS ratio = contender_rss / mimalloc_rss (< 1.0 is smaller)."
        + (
            f" {len(crits)} runs: each contender's best (lowest) mean time over the runs, "
            "ratios between those; in parentheses the range of the ratios within single "
            "runs. RSS: median over the runs. Targets judged on the first number."
            if len(crits) > 1
            else ""
        )
        + "\n"
    )
    out.append("| workload | " + " | ".join(CONTENDERS) + " | pyheap target | pyheap |")
    out.append("|---|" + "---:|" * len(CONTENDERS) + "---:|---|")
    for workload, target_ratio, ratios, run_ratios in summary:
        cells = [cell(ratios[c], run_ratios[c] if len(crits) > 1 else None) for c in CONTENDERS]
        p = ratios.get("pyheap")
        if target_ratio is None:
            t, verdict = "—", "(no target)"
        else:
            t = f"≥ {target_ratio:.1f}×"
            verdict = met(p >= target_ratio) if p is not None else "—"
        out.append(f"| {workload} | " + " | ".join(cells) + f" | {t} | {verdict} |")
    if any(rss_runs):
        cells, p = [], None
        for c in CONTENDERS:
            vals = [r[c] for r in rss_runs if r and r.get(c) is not None]
            m = median(vals) if vals else None
            cells.append(cell(m, vals))
            if c == "pyheap":
                p = m
        verdict = met(p <= RSS_TARGET) if p is not None else "—"
        out.append(
            "| fragmentation RSS after freeing 90% | "
            + " | ".join(cells)
            + f" | ≤ {RSS_TARGET:.1f}× | {verdict} |"
        )
    out.append("")
    if len(crits) > 1:
        out.append(
            f"## Details: best of {len(crits)} runs per contender (RSS and instruction "
            f"counts: {targets[-1]})\n"
        )
    print("\n".join(out + details))


if __name__ == "__main__":
    main()
