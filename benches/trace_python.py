"""CPython's tracemalloc on the workloads of benches/trace_workloads/ (churn, lifo, btree),
each timed without tracing, tracing 1 frame and tracing 5 frames, in one process: the best
of REPEAT runs of each, and the slowdown (traced time / untraced time). Run by
benches/trace_run.sh; by hand: python3 benches/trace_python.py [REPEAT]."""

import sys
import time
import tracemalloc

SLOTS, OPS, LIFO, ENTRIES = 4096, 10_000, 1000, 2000


class XorShift:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 7
        s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n

    def range(self, lo, hi):
        return lo + self.next() % (hi - lo + 1)


def churn(slots, rng):
    for _ in range(OPS):
        i = rng.below(SLOTS)
        slots[i] = None
        slots[i] = bytes(rng.range(8, 512))


def lifo(blocks):
    for _ in range(LIFO):
        blocks.append(bytearray(32))
    while blocks:
        blocks.pop()


def btree():
    m = {}
    for i in range(ENTRIES):
        m.setdefault("key%d" % ((i * 2654435761) % 10000), []).extend(range(i % 17))
    return m


def best(f, repeat):
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return min(t)


def main():
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    rng = XorShift(1)
    slots = [bytes(8) for _ in range(SLOTS)]
    blocks = []
    work = {
        "trace_churn": lambda: churn(slots, rng),
        "trace_lifo": lambda: lifo(blocks),
        "trace_btree": btree,
    }
    print("workload\tmode\tseconds_per_iteration")
    for name, f in work.items():
        for mode, nframes in (("off", 0), ("trace1", 1), ("trace5", 5)):
            if nframes:
                tracemalloc.start(nframes)
            f()  # warm up
            t = best(f, repeat)
            if nframes:
                tracemalloc.stop()
            print(f"{name}\t{mode}\t{t:.6e}", flush=True)


if __name__ == "__main__":
    main()
