"""Traced memory of one real-library program under the stdlib's tracemalloc or heapscope's.

``python measure.py stdlib|heapscope PROGRAM.py`` starts tracing with one frame, runs the
program as ``__main__`` (imports included), collects garbage and prints one JSON object:
current and peak traced bytes and the top lines by size. The parity benchmark and the test
suite run it once per tracer, each in a fresh interpreter, and compare the two.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import runpy
import sys


def main() -> None:
    tracer, program = sys.argv[1], sys.argv[2]
    if tracer == "heapscope":
        import heapscope.tracemalloc as tracemalloc
    else:
        import tracemalloc  # type: ignore[no-redef]
    sys.argv = [program]
    output = io.StringIO()
    tracemalloc.start(1)
    with contextlib.redirect_stdout(output):
        runpy.run_path(program, run_name="__main__")
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = [
        [stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count]
        for stat in snapshot.statistics("lineno")[:10]
    ]
    json.dump({"current": current, "peak": peak, "top": top}, sys.stdout)


if __name__ == "__main__":
    main()
