#!/usr/bin/env python3
"""Compare the allocator contenders from the runs of benches/run.sh, as Markdown.

Reads target/criterion/<workload>/<contender>/new/{estimates,benchmark}.json (criterion's
mean point estimate), target/criterion/peak_rss/<workload>/<contender>.tsv (peak RSS of the
workload in a fresh process), target/criterion/fragmentation/<contender>.tsv (RSS) and, if
benches/callgrind.sh was run, target/criterion/callgrind/<contender>.tsv (instructions per
alloc+free pair).

Every ratio is to the best contender of the same run (issue 17), never to a fixed one:
  * time ratio  = contender_time / fastest_time  (1.00: the fastest; 1.25: 25% slower)
  * RSS ratio   = contender_rss / lowest_rss     (1.00: the lowest)
  * instr. ratio = contender_instr / fewest_instr
pyheap's verdicts compare it with the best of the *other* contenders (a ratio below 1.0 is
then a lead): the issue's targets are pyheap time / fastest other <= 1.0 on every workload,
<= 0.8 on producer/consumer, and peak RSS <= the lowest other's on fragmentation and the
real crates' workloads.

Usage: python3 benches/report.py [--sweep] [target-dir ...]   (stdlib only; default: target)
  --sweep: report the thread sweep (larson_<N>, producer_consumer_<N>: benches/run.sh --sweep)
           instead of the suite.

With several target dirs (one per run, as benches/run.sh makes), each contender's time is
its best (lowest mean) over the runs, and the ratios are taken between those best times; the
range of the per-run ratios (each to that run's fastest) is shown next to them. On a shared
machine a whole measurement can be slowed 1.5-2x by a neighbour (e.g. a compile on the other
hyperthread), and that noise only ever adds time, so the best of several runs is the
estimate least disturbed by it. RSS numbers are nearly deterministic; the median over runs
is shown.
"""

import json
import os
import re
import sys

CONTENDERS = ["system", "mimalloc", "jemalloc", "snmalloc", "rpmalloc", "pyheap", "pyheap_mimalloc"]
US = "pyheap"
# pyheap_mimalloc is pyheap too (its pools in front of mimalloc, `PoolAllocWith<MiMalloc>`):
# shown, and may be the fastest of a run, but not one of the "others" pyheap is judged against.
VARIANTS = ["pyheap_mimalloc"]
OTHERS = [c for c in CONTENDERS if c != US and c not in VARIANTS]
LARSON = "{n} chains x 20,000 slot replacements, then each array moves to a new thread"
PAIRS = "{n} producers each allocating 256 blocks, {n} consumers freeing them"
# (workload, what one iteration is, target for pyheap time / fastest other; None: a
# diagnostic without a target)
SUITE = [
    ("churn", "10,000 free+alloc pairs, random 8-512 B", 1.0),
    ("lifo_8", "1000 allocs then 1000 frees, 8 B", 1.0),
    ("lifo_32", "1000 allocs then 1000 frees, 32 B", 1.0),
    ("lifo_128", "1000 allocs then 1000 frees, 128 B", 1.0),
    ("lifo_512", "1000 allocs then 1000 frees, 512 B", 1.0),
    ("medium_lifo", "100 allocs then 100 frees, fixed random sizes 513 B-32 KiB", 1.0),
    ("medium_churn", "2,000 free+alloc pairs over 256 live blocks, random 513 B-32 KiB", 1.0),
    ("large_lifo", "a string and a 256 KiB-3 MiB buffer allocated, every page written, freed", 1.0),
    ("request_loop", "6 header strings, a 256 KiB-3 MiB buffer (16 KiB written), a response; small ones freed first", 1.0),
    ("large_churn", "32 free+alloc pairs over 16 live blocks, random 256 KiB-4 MiB, pages written", 1.0),
    ("btree", "build + drop BTreeMap<String, Vec<u32>>, 10,000 entries", 1.0),
    ("producer_consumer", "256 blocks allocated on one thread, freed on another", 0.8),
    ("pipeline_work", "producer_consumer's 256 blocks: the two threads' busy time (no channel waits)", None),
    ("handoff", "1,536 blocks allocated on one thread, then freed on another (turns, no channel)", None),
    ("larson_2", LARSON.format(n=2), 1.0),
    ("larson_4", LARSON.format(n=4), 1.0),
    ("larson_8", LARSON.format(n=8), 1.0),
    ("serde_json", "serde_json: build a 10,000-record Value, serialize, parse back", 1.0),
    ("rayon", "rayon: 64 x 256 lines made in parallel, word-counted by other workers", 1.0),
    ("hashmap", "HashMap<String, String>: 50,000 inserts, lookups, grows, removes", 1.0),
]
# Workloads whose peak RSS has a target (issue 17: fragmentation is its own table).
RSS_TARGETED = {"serde_json", "rayon", "hashmap"}
MIB = 1024.0 * 1024.0


def sweep_workloads(crits):
    found = set()
    for crit in crits:
        for d in os.listdir(crit) if os.path.isdir(crit) else []:
            if re.fullmatch(r"(larson|producer_consumer)_\d+", d):
                found.add(d)
    out = []
    for family, what, target in (("larson", LARSON, 1.0), ("producer_consumer", PAIRS, 0.8)):
        ns = sorted(int(d.rsplit("_", 1)[1]) for d in found if d.rsplit("_", 1)[0] == family)
        out += [(f"{family}_{n}", what.format(n=n), target) for n in ns]
    return out


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_tsv(path):
    """A two-column table (metric, value) or a header row and one value row, as a dict."""
    try:
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return None
    if len(rows) == 2 and len(rows[0]) > 2:
        return dict(zip(rows[0], rows[1]))
    return {r[0]: r[1] for r in rows[1:] if len(r) >= 2}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def met(ok):
    return "**met**" if ok else "**not met**"


def close_ratio(value, target):
    """'1.08×'; with three decimals ('1.003×') when two would print the target itself, so that
    a miss by a fraction of a percent does not read as '1.00× ... target ≤ 1.0'."""
    if f"{value:.2f}" == f"{target:.2f}":
        return f"{value:.3f}×"
    return f"{value:.2f}×"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def cell(value, spread, target=None):
    """'1.12×', with the range of the per-run values when they differ; against a `target`,
    with the third decimal when the verdict turns on it (`close_ratio`)."""
    if value is None:
        return "—"
    shown = close_ratio(value, target) if target is not None else f"{value:.2f}×"
    lo, hi = (min(spread), max(spread)) if spread else (value, value)
    if f"{lo:.2f}" == f"{hi:.2f}":
        return shown
    return f"{shown} ({lo:.2f}–{hi:.2f})"


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


def best_of(values):
    """(name, value) with the lowest value among the non-None ones, or (None, None)."""
    ok = [(v, k) for k, v in values.items() if v is not None]
    if not ok:
        return None, None
    v, k = min(ok)
    return k, v


def time_results(crits, workloads):
    """Per workload: the best run of each contender, and each run's ratios to its fastest."""
    results = []
    for workload, what, target in workloads:
        per_run = [{c: timing(crit, workload, c) for c in CONTENDERS} for crit in crits]
        best = {}
        for c in CONTENDERS:
            ok = [(r[c]["ns"], i, r[c]) for i, r in enumerate(per_run) if r[c]]
            if ok:
                _, i, b = min(ok, key=lambda t: t[:2])
                best[c] = dict(b, run=i + 1)
            else:
                best[c] = None
        if not any(best.values()):
            continue
        ns = {c: (best[c]["ns"] if best[c] else None) for c in CONTENDERS}
        fastest, fast_ns = best_of(ns)
        ratio = {c: (ns[c] / fast_ns if ns[c] else None) for c in CONTENDERS}
        spread = {c: [] for c in CONTENDERS}
        us_spread = []
        for r in per_run:
            rn = {c: (r[c]["ns"] if r[c] else None) for c in CONTENDERS}
            _, f = best_of(rn)
            for c in CONTENDERS:
                if rn[c] is not None:
                    spread[c].append(rn[c] / f)
            _, fo = best_of({c: rn[c] for c in OTHERS})
            if rn[US] is not None and fo:
                us_spread.append(rn[US] / fo)
        other, other_ns = best_of({c: ns[c] for c in OTHERS})
        us = ns[US] / other_ns if ns[US] and other_ns else None
        results.append(
            {
                "workload": workload,
                "what": what,
                "target": target,
                "best": best,
                "ratio": ratio,
                "spread": spread,
                "fastest": fastest,
                "other": other,
                "us": us,
                "us_spread": us_spread,
            }
        )
    return results


def peak_results(crits, workloads):
    """Per workload: median peak and start RSS (KiB) of each contender over the runs."""
    out = {}
    for workload, _, _ in workloads:
        peak, start = {}, {}
        for c in CONTENDERS:
            rows = [load_tsv(os.path.join(crit, "peak_rss", workload, f"{c}.tsv")) for crit in crits]
            rows = [r for r in rows if r and "peak_rss_kib" in r]
            peak[c] = median([int(r["peak_rss_kib"]) for r in rows]) if rows else None
            start[c] = median([int(r["start_rss_kib"]) for r in rows]) if rows else None
        if any(peak.values()):
            out[workload] = (peak, start)
    return out


def summary_table(results, peaks, several, out):
    out.append(
        "Time ÷ the fastest contender of the same run (1.00× is the fastest; lower is "
        "better)"
        + (
            ": each contender's best mean over the runs, ratios between those; in parentheses "
            "the range of the single runs' ratios, each to that run's fastest"
            if several
            else ""
        )
        + ". *pyheap ÷ best other*: pyheap's time over the fastest other contender's (below "
        "1.00: pyheap leads), the number the targets are judged on. Peak RSS: the process's "
        "high-water mark (`VmHWM`) running the workload in a fresh process"
        + (", median over the runs" if several else "")
        + "; *lowest other* is the lowest of the five others.\n"
    )
    out.append(
        "| workload | "
        + " | ".join(CONTENDERS)
        + " | fastest | pyheap ÷ best other | target | verdict | pyheap peak RSS | lowest other |"
    )
    out.append("|---|" + "---:|" * len(CONTENDERS) + "---|---:|---:|---|---:|---:|")
    for r in results:
        cells = [cell(r["ratio"][c], r["spread"][c] if several else None) for c in CONTENDERS]
        us = r["us"]
        usc = cell(us, r["us_spread"] if several else None, r["target"])
        if r["target"] is None:
            verdict, target = "no target (diagnostic)", "—"
        else:
            verdict = met(us <= r["target"]) if us is not None else "—"
            target = f"≤ {r['target']:.1f}"
        peak_cells = ["—", "—"]
        if r["workload"] in peaks:
            p, _ = peaks[r["workload"]]
            lo, lov = best_of({c: p[c] for c in OTHERS})
            if p[US] is not None:
                peak_cells[0] = f"{p[US] / 1024:.1f} MiB"
            if lo is not None:
                peak_cells[1] = f"{lov / 1024:.1f} MiB ({lo})"
        out.append(
            f"| {r['workload']} | "
            + " | ".join(cells)
            + f" | {r['fastest']} | {usc} | {target} | {verdict} | "
            + " | ".join(peak_cells)
            + " |"
        )
    out.append("")


def peak_table(peaks, out):
    if not peaks:
        return {}
    out.append("### Peak RSS per workload (fresh process each)\n")
    out.append(
        "MiB; `VmHWM` (the process image's high-water mark; `ru_maxrss` would include cargo's, see `peak.rs`) after running the workload a fixed amount "
        "(its `standalone` function in `benches/alloc_workloads/`) in a fresh process; in "
        "parentheses the RSS at the start of that process (binary, runtime, the allocator's "
        "own set-up), which the peak includes. *pyheap ÷ lowest other*: below 1.00, pyheap "
        "used the least.\n"
    )
    out.append("| workload | " + " | ".join(CONTENDERS) + " | pyheap ÷ lowest other | target |")
    out.append("|---|" + "---:|" * len(CONTENDERS) + "---:|---|")
    verdicts = {}
    for w, (peak, start) in peaks.items():
        cells = []
        for c in CONTENDERS:
            if peak[c] is None:
                cells.append("—")
            else:
                cells.append(f"{peak[c] / 1024:.1f} ({start[c] / 1024:.1f})")
        _, lov = best_of({c: peak[c] for c in OTHERS})
        ratio = peak[US] / lov if peak[US] and lov else None
        verdict = "—"
        if w in RSS_TARGETED and ratio is not None:
            verdict = f"≤ 1.0: {met(ratio <= 1.0)}"
            verdicts[w] = ratio
        r = f"{ratio:.2f}×" if ratio is not None else "—"
        out.append(f"| {w} | " + " | ".join(cells) + f" | {r} | {verdict} |")
    out.append("")
    return verdicts


def detail_tables(results, several, out):
    for r in results:
        out.append(f"### {r['workload']}\n")
        out.append(f"One iteration: {r['what']}.\n")
        run_col = " | best run" if several else ""
        out.append(
            "| contender | time / iter | ± (95% CI) | ns / element | Melem/s | ÷ fastest"
            + run_col
            + " |"
        )
        out.append("|---|---:|---:|---:|---:|---:|" + ("---:|" if several else ""))
        for c in CONTENDERS:
            b = r["best"][c]
            if b is None:
                out.append(f"| {c} | — | — | — | — | —" + (" | —" if several else "") + " |")
                continue
            per = b["ns"] / b["elements"] if b["elements"] else None
            rate = f"{1e3 / per:.1f}" if per else "—"
            per_s = f"{per:.1f}" if per else "—"
            run = f" | {b['run']}" if several else ""
            out.append(
                f"| {c} | {fmt_time(b['ns'])} | {100 * b['ci']:.1f}% | {per_s} | {rate} "
                f"| {r['ratio'][c]:.2f}×{run} |"
            )
        out.append("")


def fragmentation_table(crit, out):
    data = {c: load_tsv(os.path.join(crit, "fragmentation", f"{c}.tsv")) for c in CONTENDERS}
    if not any(data.values()):
        return None
    any_row = next(d for d in data.values() if d)
    out.append("### fragmentation (RSS, not a timing)\n")
    out.append(
        "2,000,000 objects of 24-64 B allocated and written, then a random 90% freed; "
        f"live bytes {int(any_row['live_bytes_peak']) / MIB:.1f} MiB at the peak, "
        f"{int(any_row['live_bytes_after_free']) / MIB:.1f} MiB after the frees. "
        "RSS from /proc/self/statm, in MiB; every reading includes the benchmark's own 17 MiB "
        "table of object pointers (mapped outside the allocator). Ratio: RSS after freeing 90% "
        "over the lowest contender's.\n"
    )
    out.append(
        "| contender | before | peak | after freeing 90% | after freeing all | after-90% ÷ lowest |"
    )
    out.append("|---|---:|---:|---:|---:|---:|")
    after = {c: (int(d["rss_after_free"]) if d else None) for c, d in data.items()}
    _, low = best_of(after)
    for c in CONTENDERS:
        d = data[c]
        if d is None:
            out.append(f"| {c} | — | — | — | — | — |")
            continue
        cells = [int(d[k]) / MIB for k in ("rss_before", "rss_peak", "rss_after_free", "rss_all_freed")]
        out.append(
            f"| {c} | " + " | ".join(f"{x:.1f}" for x in cells) + f" | {after[c] / low:.2f}× |"
        )
    out.append("")
    _, low_other = best_of({c: after[c] for c in OTHERS})
    return after[US] / low_other if after[US] and low_other else None


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
        + "In parentheses: contender / the fewest of that size.\n"
    )
    out.append("| contender | " + " | ".join(f"{s} B" for s in sizes) + " |")
    out.append("|---|" + "---:|" * len(sizes))
    fewest = {s: best_of({c: own(c, s) for c in CONTENDERS})[1] for s in sizes}
    for c in CONTENDERS:
        cells = []
        for s in sizes:
            v, f = own(c, s), fewest[s]
            if v is None:
                cells.append("—")
            else:
                cells.append(f"{v:.1f} ({v / f:.2f}×)" if f and f > 0 else f"{v:.1f}")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    if loop:
        out.append(
            "| *(benchmark loop)* | "
            + " | ".join(f"*{float(loop.get(str(s), 0)):.1f}*" for s in sizes)
            + " |"
        )
    out.append("")


def main():
    args = sys.argv[1:]
    sweep = "--sweep" in args
    targets = [a for a in args if a != "--sweep"] or [os.environ.get("CARGO_TARGET_DIR", "target")]
    crits = [os.path.join(t, "criterion") for t in targets]
    several = len(crits) > 1
    workloads = sweep_workloads(crits) if sweep else SUITE

    results = time_results(crits, workloads)
    peaks = peak_results(crits, workloads)
    out = [
        "## Thread sweep: time ÷ the fastest contender, peak RSS\n"
        if sweep
        else "## Summary: time ÷ the fastest contender, peak RSS (issue 17)\n"
    ]
    summary_table(results, peaks, several, out)
    details = []
    rss_verdicts = peak_table(peaks, details)
    frag = None
    if not sweep:
        frags = [fragmentation_table(c, details if i == len(crits) - 1 else []) for i, c in enumerate(crits)]
        frags = [f for f in frags if f is not None]
        frag = median(frags) if frags else None
        # Instruction counts: from the last run that has them, else from the live target dir
        # (benches/callgrind.sh writes there; it can be run before or after run.sh).
        cg = [c for c in reversed(crits) if os.path.isdir(os.path.join(c, "callgrind"))]
        callgrind_table(cg[0] if cg else os.path.join("target", "criterion"), details)
    detail_tables(results, several, details)

    misses = [
        f"{r['workload']} ({close_ratio(r['us'], r['target'])} the fastest other, {r['other']}; "
        f"target ≤ {r['target']:.1f})"
        for r in results
        if r["us"] is not None and r["target"] is not None and r["us"] > r["target"]
    ]
    misses += [
        f"{w} peak RSS ({close_ratio(v, 1.0)} the lowest other)"
        for w, v in rss_verdicts.items()
        if v > 1.0
    ]
    if frag is not None and frag > 1.0:
        misses.append(f"fragmentation RSS after freeing 90% ({frag:.2f}× the lowest other)")
    out.append(
        "Targets missed by pyheap"
        + (" (judged on the best-of-runs numbers)" if several else "")
        + ": "
        + ("; ".join(misses) if misses else "none")
        + "."
        + (
            f" Fragmentation (RSS after freeing 90%): pyheap {frag:.2f}× the lowest other."
            if frag is not None and frag <= 1.0
            else ""
        )
        + "\n"
    )
    if several:
        out.append(f"## Details: best of {len(crits)} runs per contender (RSS: {targets[-1]})\n")
    print("\n".join(out + details))


if __name__ == "__main__":
    main()
