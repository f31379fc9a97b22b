"""What reading a snapshot adds to the traced memory is about what the stdlib's reading adds.

The stdlib builds a snapshot's raw tuples with its reentrancy flag set (`_get_traces`): they are
not traced; the Statistic and Traceback objects Python makes from them are. heapscope builds the
same tuples natively, on demand: they are made untraced as well (`heapscope_tracker::untraced`).
Before that, `statistics("traceback")` over 5.5k tracebacks of 64 frames (templates.py) put
~15 MB more into `get_traced_memory()` than the stdlib's did.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from ._helpers import run_program

PROGRAM = textwrap.dedent(
    """
    import os
    if os.environ["TRACER"] == "heapscope":
        import heapscope.tracemalloc as tracemalloc
    else:
        import tracemalloc

    def leaf(n):
        return [bytearray(16 + i % 40) for i in range(n)]

    def deep(d, n):
        return deep(d - 1, n) if d else leaf(n)

    tracemalloc.start(30)
    kept = [deep(d, 200) for d in range(25)]
    old = tracemalloc.take_snapshot()
    kept += [deep(d, 100) for d in range(25, 40)]
    snap = tracemalloc.take_snapshot()
    added = {}

    def measure(name, read):
        before = tracemalloc.get_traced_memory()[0]
        held = read()
        added[name] = tracemalloc.get_traced_memory()[0] - before
        return held

    held = [
        measure("traceback", lambda: snap.statistics("traceback")),
        measure("lineno", lambda: snap.statistics("lineno")),
        measure("cumulative", lambda: snap.statistics("filename", cumulative=True)),
        measure("compare", lambda: snap.compare_to(old, "traceback")),
        measure("trace", lambda: snap.traces[0]),
    ]
    tracemalloc.stop()
    print(repr(added))
    """
)


def added(tracer: str, tmp_path: Path) -> dict[str, int]:
    """Bytes each read of a snapshot added to the traced memory under ``tracer``."""
    out = run_program(PROGRAM, tmp_path, name="reads.py", TRACER=tracer)
    result: dict[str, int] = ast.literal_eval(out.strip().splitlines()[-1])
    return result


def test_reading_a_snapshot_adds_what_the_stdlib_s_reading_adds(tmp_path: Path) -> None:
    stdlib = added("stdlib", tmp_path)
    ours = added("heapscope", tmp_path)
    # 40 tracebacks of up to 30 frames: the stdlib adds tens of KiB for the traceback
    # statistics; made traced, heapscope's frame tuples alone were more than twice that.
    assert stdlib["traceback"] > 10_000, stdlib
    for name, theirs in stdlib.items():
        assert ours[name] <= theirs * 1.2 + 2048, (name, ours, stdlib)
