#!/usr/bin/env python3
"""Compare the Gc contenders from runs of benches/gc_run.sh, as Markdown.

Reads, per run directory, criterion/gc_<workload>/<contender>/new/{estimates,benchmark}.json
(criterion's mean, divided by the objects per iteration: ns per object) and
criterion/gc_children.tsv (one child process per heavy workload and contender: status, peak
RSS, nodes left undropped).

Ratios:
  * "/ Rc"        = contender_ns / rc_ns            (<= 1.2 is the target for pyheap on
                                                      clone and alloc)
  * "/ best peer" = contender_ns / fastest_peer_ns  (peers: rust-cc, gcmodule, dumpster,
                                                      bacon_rajan_cc; < 1.0 is the target for
                                                      pyheap on the collection workloads)
With several runs each contender's time is its best (lowest mean) over the runs (load on a
shared machine only ever adds time); the range of the per-run ratios is shown for pyheap.
Peak RSS is the child's VmHWM minus its VmRSS before the workload (MiB), median over runs.

Usage: python3 benches/gc_report.py [run-dir ...]   (stdlib only; default: target)
"""

import json
import os
import statistics
import sys

CONTENDERS = ["rc", "rust-cc", "gcmodule", "dumpster", "bacon_rajan_cc", "pyheap"]
PEERS = ["rust-cc", "gcmodule", "dumpster", "bacon_rajan_cc"]
WORKLOADS = [
    # (workload, what one object is / one iteration, kind)
    ("clone", "clone + drop of a handle to a node", "rc"),
    ("alloc_small", "allocate + drop one handle to a u64 (untracked where the crate can)", "rc"),
    ("alloc_node", "allocate + drop one node (u64 + RefCell<Vec<handle>>, tracked)", "rc"),
    ("tree", "build + drop a complete 4-ary tree of 1M nodes (acyclic)", "acyclic"),
    ("chain", "build + drop a 1M-node linked list (acyclic, depth 1M)", "acyclic"),
    ("cycles", "create 1M two-node cycles (handles dropped), then collect", "collect"),
    ("graph", "200k nodes x 4 random edges: drop 90% of the handles, collect", "collect"),
    ("churn", "steady state: clusters of 1-4 nodes (half of them rings) replace clusters in "
     "10,000 slots; automatic collection (gcmodule, bacon_rajan_cc: collect every 10,000 nodes)", "collect"),
]
MIB = 1024.0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ns_per_object(run, workload, contender, prefix="gc"):
    base = os.path.join(run, "criterion", prefix + "_" + workload, contender, "new")
    est = load_json(os.path.join(base, "estimates.json"))
    bench = load_json(os.path.join(base, "benchmark.json"))
    if not est:
        return None
    ns = est["mean"]["point_estimate"]
    tp = (bench or {}).get("throughput") or {}
    n = tp.get("Elements") or tp.get("elements") or 1
    return ns / n


def load_children(run, prefix="gc"):
    rows = {}
    try:
        with open(os.path.join(run, "criterion", prefix + "_children.tsv")) as f:
            lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    except OSError:
        return rows
    for r in lines[1:]:
        r += [""] * (7 - len(r))
        rows[(r[0], r[1])] = r
    return rows


def fmt_ns(v):
    if v is None:
        return "—"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(v):
    return "—" if v is None else f"{v:.2f}x"


def main():
    runs = sys.argv[1:] or ["target"]
    times = {}  # (w, c) -> list of ns/object per run
    per_run = []  # run -> {(w, c): ns/object}
    for run in runs:
        per_run.append({})
        for w, _, _ in WORKLOADS:
            for c in CONTENDERS:
                v = ns_per_object(run, w, c)
                if v is not None:
                    times.setdefault((w, c), []).append(v)
                    per_run[-1][(w, c)] = v
    children = [load_children(r) for r in runs]

    def best(w, c):
        v = times.get((w, c))
        return min(v) if v else None

    def status(w, c):
        sts = [ch[(w, c)][2] for ch in children if (w, c) in ch]
        if not sts:
            return None
        bad = [s for s in sts if s != "ok"]
        return bad[0] if bad else "ok"

    def rss(w, c):
        vals = []
        for ch in children:
            r = ch.get((w, c))
            if r and r[4] and r[5]:
                vals.append((int(r[4]) - int(r[5])) / MIB)
        return statistics.median(vals) if vals else None

    print(f"Runs: {len(runs)} ({', '.join(runs)}); best mean per contender; ns per object.\n")
    print("## Summary: pyheap against the targets\n")
    print("| workload | pyheap ns/obj | Rc | / Rc | fastest peer | / best peer | pyheap RSS MiB | that peer's RSS | target | met? |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---|---|")
    for w, what, kind in WORKLOADS:
        p = best(w, "pyheap")
        rc = best(w, "rc")
        peers = [(best(w, c), c) for c in PEERS if best(w, c) is not None]
        fp = min(peers) if peers else (None, None)
        r_rc = p / rc if p and rc else None
        r_peer = p / fp[0] if p and fp[0] else None
        prss = rss(w, "pyheap")
        frss = rss(w, fp[1]) if fp[1] else None
        if kind == "rc":
            target = "<= 1.2x Rc"
            met = "yes" if r_rc is not None and r_rc <= 1.2 else "no"
        elif kind == "collect":
            target = "< best peer, RSS <= its"
            ok_t = r_peer is not None and r_peer < 1.0
            ok_m = prss is not None and frss is not None and prss <= frss * 1.02 + 0.5
            met = "yes" if ok_t and ok_m else ("time no, RSS yes" if ok_m else ("time yes, RSS no" if ok_t else "no"))
        else:
            target = "(none; no overflow)"
            met = "—"
        print(
            f"| {w} | {fmt_ns(p)} | {fmt_ns(rc)} | {fmt_ratio(r_rc)} | {fp[1] or '—'} {fmt_ns(fp[0])} "
            f"| {fmt_ratio(r_peer)} | {'' if prss is None else f'{prss:.1f}'} | {'' if frss is None else f'{frss:.1f}'} | {target} | {met} |"
        )

    print("\n## Per workload: ns per object (ratio to Rc, ratio to the fastest peer), child status, peak RSS\n")
    for w, what, kind in WORKLOADS:
        print(f"### {w}: {what}\n")
        print("| contender | ns/object | / Rc | / best peer | child process | peak RSS MiB |")
        print("|---|---:|---:|---:|---|---:|")
        rc = best(w, "rc")
        peer_times = [best(w, c) for c in PEERS if best(w, c) is not None]
        fp = min(peer_times) if peer_times else None
        for c in CONTENDERS:
            t = best(w, c)
            st = status(w, c)
            if t is None and st is None and kind in ("rc",):
                pass
            if t is None and st is None:
                if c == "rc" and kind == "collect":
                    print(f"| {c} | n/a (no cycle collection) | | | | |")
                continue
            r = rss(w, c)
            extra = extra_p = ""
            if c == "pyheap" and len(runs) > 1:
                # The same ratios within each run (contenders measured back to back).
                to_rc = [d[(w, c)] / d[(w, "rc")] for d in per_run if (w, c) in d and (w, "rc") in d]
                to_peer = []
                for d in per_run:
                    ps = [d[(w, q)] for q in PEERS if (w, q) in d]
                    if (w, c) in d and ps:
                        to_peer.append(d[(w, c)] / min(ps))
                if to_rc:
                    extra = f" (runs {min(to_rc):.2f}-{max(to_rc):.2f})"
                if to_peer:
                    extra_p = f" (runs {min(to_peer):.2f}-{max(to_peer):.2f})"
            print(
                f"| {c} | {fmt_ns(t) if t is not None else '**fails**'} | {fmt_ratio(t / rc) if t and rc else '—'}{extra} "
                f"| {fmt_ratio(t / fp) if t and fp else '—'}{extra_p} | {st or '—'} | {'' if r is None else f'{r:.1f}'} |"
            )
        print()


if __name__ == "__main__":
    main()
