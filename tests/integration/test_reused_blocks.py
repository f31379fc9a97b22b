"""Objects reused from free lists whose blocks were untraced, then traced: re-attributed exactly
as the stdlib does.

heapscope remembers blocks of reused objects that the table does not hold (free-list entries
filled before tracing started keep coming back: ``State::untraced``), so as not to look them up
again. When such a block goes back to the allocator and is handed out again while tracing, it
becomes traced, and its next reuse from a free list must re-attribute it, as the stdlib does.
One program drives floats through that cycle and prints every kept object's
traceback; under the stdlib and under heapscope the lines must be identical.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from ._helpers import run_program

PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    if os.environ["TRACER"] == "heapscope":
        import heapscope.tracemalloc as tracemalloc
    else:
        import tracemalloc

    # Floats: a free list of up to 100 entries on every supported version. One new float per
    # item and no other object reused meanwhile (ints would be, on 3.14, and take the slots
    # where heapscope remembers untraced blocks).
    def site_a(src):
        return [v * 1.0 for v in src]

    def site_b(src):
        return [v * 1.0 for v in src]

    SRC = [float(i) for i in range(2100)]
    pre = site_a(SRC[:300])  # before tracing: the free list fills with untraced entries
    del pre  # (no gc.collect(): a full collection empties the free lists)

    tracemalloc.start(4)
    kept = []
    for rnd in range(3):
        x = site_a(SRC[:100])  # the untraced entries, reused (remembered as untraced)
        filler = site_a(SRC[:100])  # allocated, traced
        del filler  # to the free list, which is then full
        del x  # the untraced blocks back to the allocator
        big = site_a(SRC)  # the free list's 100, then 2000 allocated (traced), the
        popped = big[:100]  # allocator handing out the blocks just freed among the first
        allocated = big[100:]
        del big
        allocated.reverse()  # a list frees its items from the end: the first allocated
        del allocated  # go first, to the free list (empty until now); the rest to the allocator
        w = site_b(SRC[:100])  # reused here: re-attributed to this line
        kept.append((f"round-{rnd}", w))
        del popped
    out = []
    for name, objs in kept:
        for obj in objs:
            tb = tracemalloc.get_object_traceback(obj)
            out.append([name, None if tb is None else [f.lineno for f in tb]])
    tracemalloc.stop()
    json.dump(out, sys.stdout)
    """
)


def run(tracer: str, tmp_path: Path) -> list[list[object]]:
    result: list[list[object]] = json.loads(
        run_program(PROGRAM, tmp_path, name="reuse.py", TRACER=tracer)
    )
    return result


def test_reused_objects_get_the_stdlib_s_tracebacks(tmp_path: Path) -> None:
    stdlib = run("stdlib", tmp_path)
    ours = run("heapscope", tmp_path)
    assert sum(row[1] is not None for row in stdlib) > 100
    assert ours == stdlib
