"""The report of benches/trace_run.sh: per workload, each contender's best mean time over the
runs (criterion's estimates) and CPython's times, and the slowdowns: pyheap traced / pyheap
off, debug / off, dhat on / dhat off and / system, CPython traced / CPython off."""

import json
import pathlib
import sys

WORKLOADS = ["trace_churn", "trace_lifo", "trace_btree"]
CONTENDERS = ["system", "pyheap", "pyheap_trace1", "pyheap_trace5", "pyheap_debug", "dhat_off", "dhat_on"]


def best(root, w, c):
    times = []
    for run in sorted(pathlib.Path(root).iterdir()):
        est = run / w / c / "new" / "estimates.json"
        if est.exists():
            times.append(json.loads(est.read_text())["mean"]["point_estimate"] * 1e-9)
    return min(times) if times else None


def fmt(t):
    if t is None:
        return "—"
    for unit, f in (("s", 1), ("ms", 1e3), ("µs", 1e6)):
        if t * f >= 1:
            return f"{t * f:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def ratio(a, b):
    return f"{a / b:.1f}×" if a and b else "—"


def main():
    root = sys.argv[1]
    py = {}
    pyfile = pathlib.Path(root) / "python.tsv"
    if pyfile.exists():
        for line in pyfile.read_text().splitlines()[1:]:
            w, mode, t = line.split("\t")
            py[(w, mode)] = float(t)
    print("| workload | " + " | ".join(CONTENDERS) + " | CPython off | CPython trace1 | CPython trace5 |")
    print("|---|" + "---:|" * (len(CONTENDERS) + 3))
    t = {}
    for w in WORKLOADS:
        for c in CONTENDERS:
            t[(w, c)] = best(root, w, c)
        cells = [fmt(t[(w, c)]) for c in CONTENDERS]
        cells += [fmt(py.get((w, m))) for m in ("off", "trace1", "trace5")]
        print(f"| {w} | " + " | ".join(cells) + " |")
    print()
    print("Slowdowns (time with / time without):")
    print()
    print("| workload | pyheap 1 frame | pyheap 5 frames | pyheap debug | dhat on / dhat off | dhat on / system | CPython 1 frame | CPython 5 frames |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        off = t[(w, "pyheap")]
        cells = [
            ratio(t[(w, "pyheap_trace1")], off),
            ratio(t[(w, "pyheap_trace5")], off),
            ratio(t[(w, "pyheap_debug")], off),
            ratio(t[(w, "dhat_on")], t[(w, "dhat_off")]),
            ratio(t[(w, "dhat_on")], t[(w, "system")]),
            ratio(py.get((w, "trace1")), py.get((w, "off"))),
            ratio(py.get((w, "trace5")), py.get((w, "off"))),
        ]
        print(f"| {w} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
