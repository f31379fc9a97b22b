"""Snapshot statistics / compare_to / filter_traces: heapscope's engine vs the stdlib.

``python benchmarks/snapshot_stats.py [n_traces]`` prints seconds and ratios. Traces share
tracebacks as real tracemalloc output does (5,000 distinct tracebacks of 10 frames).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc as stdlib
from collections.abc import Callable
from typing import Any

from heapscope import tracemalloc as hs


def make_traces(n: int, distinct: int = 5000, depth: int = 10) -> list[Any]:
    rng = random.Random(42)
    files = [f"/src/pkg/module_{i}.py" for i in range(200)]
    tracebacks = [
        tuple((rng.choice(files), rng.randrange(1, 500)) for _ in range(depth))
        for _ in range(distinct)
    ]
    return [
        (0, rng.randrange(16, 4096), tracebacks[rng.randrange(distinct)], depth + 3)
        for _ in range(n)
    ]


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    raw = make_traces(n)
    old_raw = raw[: n // 2]
    theirs, theirs_old = stdlib.Snapshot(raw, 10), stdlib.Snapshot(old_raw, 10)
    build = timed(lambda: hs.Snapshot(raw, 10).traces._get_native(), 1)
    ours, ours_old = hs.Snapshot(raw, 10), hs.Snapshot(old_raw, 10)
    ours.traces._get_native()
    ours_old.traces._get_native()
    print(f"{n} traces; building the native snapshot from raw tuples: {build:.3f}s")
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        (
            f"statistics({k!r}{', cumulative' if c else ''})",
            lambda k=k, c=c: theirs.statistics(k, c),
            lambda k=k, c=c: ours.statistics(k, c),
        )
        for k, c in [("lineno", False), ("filename", False), ("traceback", False), ("lineno", True)]
    ]
    cases.append(
        (
            "compare_to('lineno')",
            lambda: theirs.compare_to(theirs_old, "lineno"),
            lambda: ours.compare_to(ours_old, "lineno"),
        )
    )
    filters = [hs.Filter(False, "*module_1*.py"), hs.Filter(True, "/src/*", all_frames=True)]
    sfilters = [
        stdlib.Filter(False, "*module_1*.py"),
        stdlib.Filter(True, "/src/*", all_frames=True),
    ]
    cases.append(
        (
            "filter_traces(2 filters)",
            lambda: theirs.filter_traces(sfilters),
            lambda: ours.filter_traces(filters),
        )
    )
    print(f"{'operation':34} {'stdlib':>9} {'heapscope':>10} {'ratio':>7}")
    for name, slow, fast in cases:
        t_slow, t_fast = timed(slow, 1), timed(fast)
        print(f"{name:34} {t_slow:9.3f} {t_fast:10.4f} {t_slow / t_fast:6.0f}x")


if __name__ == "__main__":
    main()
