#!/usr/bin/env python3
"""Instructions of one fixed-work workload run, split into the allocator's and the program's.

    python3 benches/insn_split.py [--cgu1] <workload> <contender>...
    python3 benches/insn_split.py serde_json pyheap mimalloc
    python3 benches/insn_split.py --cgu1 btree pyheap mimalloc

Runs each contender's bench binary once under valgrind's cachegrind (`--cache-sim=no`) with
`ALLOC_BENCH_PEAK=<workload>` (the workload's fixed-work `standalone` run, as the peak-RSS
measurement runs it) and counts the instructions executed:

- *allocator*: every instruction of a function that belongs to the allocator (pyheap's, a
  peer's, the `__rust_alloc` family of shims), and, inside the program's functions, every
  instruction whose source line is in the allocator's sources. The second part is what
  separates this from a per-function profile: pyheap's allocation fast path is inlined into
  the program's functions, and it is counted here as the allocator's;
- *glue*: std's allocation glue (`alloc::alloc`, `RawVec`), the same code for every contender;
- *program*: everything else: the workload's own code, std's collections, serde, memcmp.

Since session 25 the workloads are a library compiled once (`benches/alloc_workloads/`), so
the *program* count is the same for every contender to within a few hundred thousand (the
start-up's symbol lookups, rayon's scheduling). Before, each contender's bench target compiled
the workloads into its own crate, and with the default 16 codegen units which unit each of
std's generic functions landed in depended on every item of that crate, the global allocator's
included; a function split from its caller cannot be inlined into it, and the same source ran
7-11% more instructions in one contender's binary than in another's (BENCHMARKS.md, "Session
24"). `--cgu1` builds everything with `codegen-units = 1` (`CARGO_PROFILE_BENCH_CODEGEN_UNITS=1`).

Needs valgrind. About a minute per contender and workload (several for larson and rayon).
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile

ALLOCATOR_FILES = re.compile(
    r"/src/alloc/[a-z_]+\.rs$"  # pyheap's allocator
    r"|mimalloc|jemalloc|snmalloc|rpmalloc"  # the peers' sources
    r"|^\./malloc/|/malloc/malloc\.c$|/malloc/arena\.c$"  # glibc's malloc
)
ALLOCATOR_FUNCTIONS = re.compile(
    r"^<?(pyheap::|std::alloc::System|std::sys::alloc::"
    r"|mimalloc::|tikv_jemallocator::|snmalloc_rs::|rpmalloc::"
    r"|__rustc::__rust_(alloc|dealloc|realloc|alloc_zeroed)\b"
    r"|_?mi_|_rjem_|je_|snmalloc|rpmalloc|_int_(malloc|free|realloc)|malloc|free|realloc"
    r"|cfree|__libc_(malloc|free|realloc)|tcache_)"
)
GLUE_FILES = re.compile(r"library/alloc/src/(alloc\.rs|raw_vec)")


def executables(contenders, cgu1):
    env = dict(os.environ)
    if cgu1:
        env["CARGO_PROFILE_BENCH_CODEGEN_UNITS"] = "1"
    cmd = ["cargo", "bench", "-p", "pyheap-bench", "--no-run", "--message-format=json"]
    for c in contenders:
        cmd += ["--bench", f"alloc_{c}"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    exes = {}
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            name = m["target"]["name"]
            if name.startswith("alloc_"):
                exes[name[len("alloc_"):]] = m["executable"]
    return exes


def count(exe, workload, tmp):
    out = os.path.join(tmp, os.path.basename(exe) + ".cg")
    env = dict(os.environ, ALLOC_BENCH_PEAK=workload)
    subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", exe],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    split = collections.Counter()
    program = collections.Counter()
    fl = fn = ""
    with open(out) as f:
        for line in f:
            if line.startswith("fl="):
                fl = line[3:].strip()
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line[:1].isdigit():
                ir = int(line.split()[1])
                if ALLOCATOR_FUNCTIONS.search(fn) or ALLOCATOR_FILES.search(fl):
                    split["allocator"] += ir
                elif GLUE_FILES.search(fl):
                    split["glue"] += ir
                else:
                    split["program"] += ir
                    program[re.sub(r"^alloc_[a-z_]+::", "<bench>::", fn)] += ir
    return split, program


def main():
    args = sys.argv[1:]
    cgu1 = "--cgu1" in args
    args = [a for a in args if a != "--cgu1"]
    if len(args) < 2:
        sys.exit(__doc__)
    workload, contenders = args[0], args[1:]
    exes = executables(contenders, cgu1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in contenders:
            results[c] = count(exes[c], workload, tmp)
    profile = "codegen-units = 1" if cgu1 else "the default bench profile"
    print(f"{workload}, {profile}: millions of instructions")
    print(f"{'contender':<16} {'total':>9} {'allocator':>10} {'glue':>8} {'program':>9}")
    for c in contenders:
        s = results[c][0]
        total = sum(s.values())
        print(f"{c:<16} {total / 1e6:9.1f} {s['allocator'] / 1e6:10.1f} "
              f"{s['glue'] / 1e6:8.1f} {s['program'] / 1e6:9.1f}")
    if len(contenders) > 1:
        a, b = contenders[0], contenders[1]
        pa, pb = results[a][1], results[b][1]
        print(f"\nThe program's functions that differ most, {a} - {b} (millions):")
        keys = sorted(set(pa) | set(pb), key=lambda k: -abs(pa[k] - pb[k]))
        for k in keys[:10]:
            print(f"{(pa[k] - pb[k]) / 1e6:+9.1f}  {k[:110]}")


if __name__ == "__main__":
    main()
