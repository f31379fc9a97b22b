"""Driver tasks that inspect the tracer rather than time a workload.

- ``memory``: tracer bytes per live traced allocation while ``--size`` small objects are live.
- ``snapshot``: time ``take_snapshot()`` + ``statistics("lineno")`` over ``--size`` live traces
  spread over generated lines; return the statistics of those lines for comparison.
- ``lines``: run a workload and take a snapshot when its ``main()`` returns (its locals are
  still alive then); return the per-line statistics of the workload's file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import FrameType, ModuleType
from typing import Any

from _driver import run_script, start

SNAPSHOT_FILENAME = "<heapscope-bench-snapshot>"
SNAPSHOT_LINES = 200


def _objects(n: int) -> list[object]:
    return [object() for _ in range(n)]


def _mixed(n: int) -> list[object]:
    """Blocks of every pymalloc size class (``bytes`` of 0 to 479 bytes: 33 to 512-byte blocks)."""
    return [bytes((i * 37) % 480) for i in range(n)]


def _fragmented(n: int) -> list[object]:
    """Mixed blocks of which only one in eight stays alive: pools left 1/8 full."""
    return _mixed(8 * n)[::8]


OBJECTS = {"memory": _objects, "memory-mixed": _mixed, "memory-fragmented": _fragmented}


def _live_traces(tracer: ModuleType) -> int:
    return len(tracer.take_snapshot().traces)


def task_memory(tracer: ModuleType, opts: argparse.Namespace) -> dict[str, Any]:
    """``get_tracemalloc_memory()`` per live trace, total and marginal.

    ``total`` divides all tracer memory by all live traces; ``marginal`` is the growth of the
    tracer memory per extra live trace once the (one) stack of the allocating line is already
    interned, so it excludes the interned stacks.
    """
    make = OBJECTS[opts.task]
    start(tracer, opts.nframe, None)
    warm = make(1000)
    mem0 = tracer.get_tracemalloc_memory()
    n0 = _live_traces(tracer)
    held = make(opts.size)
    mem1 = tracer.get_tracemalloc_memory()
    n1 = _live_traces(tracer)
    tracer.stop()
    del warm, held
    return {
        "traces": n1,
        "tracer_bytes": mem1,
        "total_per_trace": mem1 / n1,
        "marginal_per_trace": (mem1 - mem0) / (n1 - n0),
    }


def _generated_source(n_total: int) -> str:
    """One allocating statement per line; sizes and types vary by line, no free lists."""
    per_line = max(1, n_total // SNAPSHOT_LINES)
    lines = ["class Slot:", "    __slots__ = ('a',)", "keep = []"]
    for i in range(SNAPSHOT_LINES):
        kind = i % 3
        if kind == 0:
            expr = f"bytes({2 + (i * 37) % 500})"
        elif kind == 1:
            expr = "object()"
        else:
            expr = "Slot()"
        lines.append(f"keep.extend([{expr} for _ in range({per_line})])")
    return "\n".join(lines) + "\n"


def task_snapshot(tracer: ModuleType, opts: argparse.Namespace) -> dict[str, Any]:
    """Seconds for take_snapshot() + statistics("lineno") with ``--size`` live traces."""
    code = compile(_generated_source(opts.size), SNAPSHOT_FILENAME, "exec")
    namespace: dict[str, Any] = {}
    start(tracer, opts.nframe, None)
    exec(code, namespace)
    t0 = time.perf_counter()
    snapshot = tracer.take_snapshot()
    stats = snapshot.statistics("lineno")
    elapsed = time.perf_counter() - t0
    traces = len(snapshot.traces)
    tracer.stop()
    return {"seconds": elapsed, "traces": traces, "stats": _lines_of(stats, SNAPSHOT_FILENAME)}


def _lines_of(stats: list[Any], filename: str) -> list[list[int]]:
    """``[lineno, size, count]`` of the statistics whose top frame is in ``filename``."""
    out = []
    for stat in stats:
        frame = stat.traceback[0]
        if frame.filename == filename:
            out.append([frame.lineno, stat.size, stat.count])
    return out


HARNESS_FILES = ("_driver.py", "_tasks.py", "runpy.py")
HEAPSCOPE_DIR = "/heapscope/"


def _line_key(filename: str, lineno: int) -> str | None:
    """``dir/file.py:line`` for a workload line (its libraries included); None for the harness."""
    if filename.endswith(HARNESS_FILES) or HEAPSCOPE_DIR in filename:
        return None
    parts = filename.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{lineno}"


def _all_lines(stats: list[Any]) -> list[list[Any]]:
    """``[key, size, count]`` of every line but the harness's, from ``statistics("lineno")``."""
    out = []
    for stat in stats:
        frame = stat.traceback[0]
        key = _line_key(frame.filename, frame.lineno)
        if key is not None:
            out.append([key, stat.size, stat.count])
    return out


def task_lines(tracer: ModuleType, opts: argparse.Namespace) -> dict[str, Any]:
    """Per-line statistics of the workload (its libraries included), snapshotted when its
    ``main()`` returns, and (heapscope only) bytes allocated per line over the whole run."""
    script = opts.script
    taken: dict[str, Any] = {}

    def on_event(frame: FrameType, event: str, _arg: object) -> None:
        code = frame.f_code
        if event == "return" and code.co_name == "main" and code.co_filename == script:
            sys.setprofile(None)
            taken["stats"] = tracer.take_snapshot().statistics("lineno")

    start(tracer, opts.nframe, opts.sample_rate)
    sys.setprofile(on_event)
    try:
        run_script(script, opts.args)
    finally:
        sys.setprofile(None)
    totals = _allocated_by_line(tracer)
    tracer.stop()
    if "stats" not in taken:
        raise RuntimeError(f"{script} has no main() that returned")
    return {"stats": _all_lines(taken["stats"]), "totals": totals}


def _allocated_by_line(tracer: ModuleType) -> list[list[Any]] | None:
    """``[key, bytes, count]`` allocated over the whole run by each line (see ``_line_key``).

    Only heapscope keeps these (the profiler's "allocated" view, exact when tracing every block,
    estimated when sampling); None for the stdlib.
    """
    if not tracer.__name__.startswith("heapscope"):
        return None
    from heapscope import _native

    profile = _native._profile_of_tracer([], 0)
    text = _native.render_report(profile, at="total", by="line", top=100_000, json=True)
    report = json.loads(text)
    # Rows are per (file, line, function): a comprehension shares its line with its caller.
    by_key: dict[str, list[Any]] = {}
    for row in report["rows"]:
        key = _line_key(row["file"], row["line"])
        if key is not None:
            entry = by_key.setdefault(key, [key, 0, 0])
            entry[1] += row["size"]
            entry[2] += row["count"]
    return list(by_key.values())


TASKS = {
    "memory": task_memory,
    "memory-mixed": task_memory,
    "memory-fragmented": task_memory,
    "snapshot": task_snapshot,
    "lines": task_lines,
}


def run(name: str, tracer: ModuleType | None, opts: argparse.Namespace) -> dict[str, Any]:
    """Run task ``name``; every task here needs a tracer."""
    if tracer is None:
        raise ValueError(f"task {name!r} needs a tracer")
    return TASKS[name](tracer, opts)
