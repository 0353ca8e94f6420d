#!/usr/bin/env python3
"""Compare the thread-safe Gc contenders from runs of benches/sync_run.sh, as Markdown.

Reads, per run directory, criterion/sync_<workload>/<contender>/new/{estimates,benchmark}.json
(criterion's mean, divided by the objects or operations per iteration: ns per object) and
criterion/sync_children.tsv (one child process per heavy workload and contender: status, peak
RSS, nodes left undropped).

Ratios:
  * "/ Arc"       = contender_ns / arc_ns           (targets for pyheap: clone and clone_2t
                                                      <= 1.1, deref and deref1 <= 1.05)
  * "/ best peer" = contender_ns / fastest_peer_ns  (peers: dumpster, gcmodule; < 1.0 is the
                                                      target for pyheap on the collection
                                                      workloads)
With several runs each contender's time is its best (lowest mean) over the runs (load on a
shared machine only ever adds time); the range of the per-run ratios is shown for pyheap.
Peak RSS is the child's VmHWM minus its VmRSS before the workload (MiB), median over runs.

Usage: python3 benches/sync_report.py [run-dir ...]   (stdlib only; default: target)
"""

import os
import statistics
import sys

CONTENDERS = ["arc", "dumpster", "gcmodule", "pyheap"]
BASE = "arc"
PEERS = ["dumpster", "gcmodule"]
WORKLOADS = [
    # (workload, what one object is, kind, target ratio)
    ("clone", "clone + drop of a handle to a node, 1 thread", "base", 1.1),
    ("clone_2t", "clone + drop of one shared handle, 2 threads at once (ns per op, total throughput)", "base", 1.1),
    ("deref", "read the u64 of a node through each of 1,024 handles (ns per handle)", "base", 1.05),
    ("deref_l1", "read the u64 of a node through each of 128 handles (L1-resident; ns per handle)", "base", 1.05),
    ("deref1", "read the u64 of a node through one handle (bare deref)", "base", 1.05),
    ("alloc_small", "allocate + drop one handle to a u64 (untracked where the crate can)", "base", None),
    ("alloc_node", "allocate + drop one node (u64 + Mutex<Vec<handle>>, tracked)", "base", None),
    ("cycles", "create 1M two-node cycles (handles dropped), then collect", "collect", 1.0),
    ("graph", "200k nodes x 4 random edges: drop 90% of the handles, collect", "collect", 1.0),
    ("mix_2t", "2 mutator threads create/link/unlink/drop on 10,000 shared slots while "
     "collection runs concurrently (ns per operation)", "collect", 1.0),
]
MIB = 1024.0


# The readers and formatters are gc_report.py's, on the `sync_` criterion groups.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gc_report import fmt_ns, fmt_ratio  # noqa: E402
from gc_report import load_children as _load_children  # noqa: E402
from gc_report import ns_per_object as _ns_per_object  # noqa: E402


def ns_per_object(run, workload, contender):
    return _ns_per_object(run, workload, contender, "sync")


def load_children(run):
    return _load_children(run, "sync")


def main():
    runs = sys.argv[1:] or ["target"]
    times = {}  # (w, c) -> list of ns/object per run
    per_run = []  # run -> {(w, c): ns/object}
    for run in runs:
        per_run.append({})
        for w, _, _, _ in WORKLOADS:
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

    def run_range(w, ref):
        """pyheap's ratio to `ref` (a contender, or None: the fastest peer) within each run."""
        rs = []
        for d in per_run:
            if ref is None:
                ps = [d[(w, q)] for q in PEERS if (w, q) in d]
                r = min(ps) if ps else None
            else:
                r = d.get((w, ref))
            if (w, "pyheap") in d and r:
                rs.append(d[(w, "pyheap")] / r)
        if len(rs) < 2:
            return ""
        return f" ({min(rs):.2f}-{max(rs):.2f})"

    print(f"Runs: {len(runs)} ({', '.join(runs)}); best mean per contender; ns per object.\n")
    print("## Summary: pyheap against the targets\n")
    print("| workload | pyheap ns | Arc | / Arc (per run) | fastest peer | / best peer (per run) | pyheap RSS MiB | that peer's RSS | target | met? |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---|---|")
    for w, what, kind, tgt in WORKLOADS:
        p = best(w, "pyheap")
        base = best(w, BASE)
        peers = [(best(w, c), c) for c in PEERS if best(w, c) is not None]
        fp = min(peers) if peers else (None, None)
        r_base = p / base if p and base else None
        r_peer = p / fp[0] if p and fp[0] else None
        prss = rss(w, "pyheap")
        frss = rss(w, fp[1]) if fp[1] else None
        if kind == "base" and tgt is not None:
            target = f"<= {tgt}x Arc"
            met = "yes" if r_base is not None and r_base <= tgt else "no"
        elif kind == "collect":
            target = "< best peer"
            failing = [c for c in PEERS if (status(w, c) or "ok") != "ok" and best(w, c) is None]
            if r_peer is not None:
                met = "yes" if r_peer < 1.0 else "no"
            elif p is not None and failing and len(failing) == len(PEERS):
                met = "yes (every peer fails: " + ", ".join(f"{c} {status(w, c)}" for c in failing) + ")"
            else:
                met = "no"
        else:
            target = "(none)"
            met = "—"
        print(
            f"| {w} | {fmt_ns(p)} | {fmt_ns(base)} | {fmt_ratio(r_base)}{run_range(w, BASE) if r_base else ''} "
            f"| {fp[1] or '—'} {fmt_ns(fp[0])} | {fmt_ratio(r_peer)}{run_range(w, None) if r_peer else ''} "
            f"| {'' if prss is None else f'{prss:.1f}'} | {'' if frss is None else f'{frss:.1f}'} | {target} | {met} |"
        )

    print("\n## Per workload: ns per object (ratio to Arc, ratio to the fastest peer), child status, peak RSS\n")
    for w, what, kind, _ in WORKLOADS:
        print(f"### {w}: {what}\n")
        print("| contender | ns/object | / Arc | / best peer | child process | peak RSS MiB |")
        print("|---|---:|---:|---:|---|---:|")
        base = best(w, BASE)
        peer_times = [best(w, c) for c in PEERS if best(w, c) is not None]
        fp = min(peer_times) if peer_times else None
        for c in CONTENDERS:
            t = best(w, c)
            st = status(w, c)
            if t is None and st is None:
                if c == BASE and kind == "collect":
                    print(f"| {c} | n/a (no cycle collection) | | | | |")
                continue
            r = rss(w, c)
            print(
                f"| {c} | {fmt_ns(t) if t is not None else '**fails**'} | {fmt_ratio(t / base) if t and base else '—'} "
                f"| {fmt_ratio(t / fp) if t and fp else '—'} | {st or '—'} | {'' if r is None else f'{r:.1f}'} |"
            )
        print()


if __name__ == "__main__":
    main()
