#!/usr/bin/env python3
"""The ratio table of benches/scale_run.sh (issue 13's workloads at scale), as Markdown.

Reads target/criterion/<workload>/<contender>/new/estimates.json (criterion's mean) for the
holes_*, threads_* and thread_churn_* workloads and prints, per workload, each contender's
time per iteration and pyheap's time over System's and over mimalloc's (1.0: as fast; above:
slower).

Usage: python3 benches/scale_report.py [contender ...]   (default: system mimalloc pyheap)
"""

import json
import os
import re
import sys

CRIT = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
WHAT = {
    "holes": "free all scratch objects (untimed), allocate them again: one per 12 "
    "480-byte records, in a heap of {} GiB",
    "threads": "100,000 500-byte boxes allocated and freed by the main thread after {} "
    "threads each left a block alive and exited",
    "thread_churn": "100 short-lived threads started and joined one after another (each "
    "allocates and frees 100 boxes) beside {} idle threads",
}


def mean_ns(workload, contender):
    try:
        with open(os.path.join(CRIT, workload, contender, "new", "estimates.json")) as f:
            return json.load(f)["mean"]["point_estimate"]
    except (OSError, ValueError, KeyError):
        return None


def fmt(ns):
    if ns is None:
        return "—"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def key(w):
    m = re.match(r"(holes|threads|thread_churn)_(\d+)", w)
    order = {"holes": 0, "threads": 1, "thread_churn": 2}
    return (order[m.group(1)], int(m.group(2))) if m else (9, 0)


def main():
    contenders = sys.argv[1:] or ["system", "mimalloc", "pyheap"]
    workloads = sorted(
        (w for w in (os.listdir(CRIT) if os.path.isdir(CRIT) else [])
         if re.match(r"(holes_\d+gib|threads_\d+|thread_churn_\d+)$", w)),
        key=key,
    )
    print("| workload | what one iteration is | " + " | ".join(contenders)
          + " | pyheap / System | pyheap / mimalloc |")
    print("|---|---|" + "---:|" * len(contenders) + "---:|---:|")
    for w in workloads:
        m = re.match(r"(holes|threads|thread_churn)_(\d+)", w)
        t = {c: mean_ns(w, c) for c in contenders}
        p, s, mi = t.get("pyheap"), t.get("system"), t.get("mimalloc")
        r_s = f"{p / s:.2f}×" if p and s else "—"
        r_m = f"{p / mi:.2f}×" if p and mi else "—"
        print(f"| {w} | {WHAT[m.group(1)].format(m.group(2))} | "
              + " | ".join(fmt(t[c]) for c in contenders) + f" | {r_s} | {r_m} |")


if __name__ == "__main__":
    main()
