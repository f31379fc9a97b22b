"""An example program, and a recorder that turns a run of it into a test profile.

Until ``heapscope run`` captures exist on this branch, the HTML report and exports are tested on
a real run of this program recorded with the standard library's ``tracemalloc``: snapshots at
the program's peak and at its end, a traced-memory/RSS timeline sampled every 10 ms, and
function names recovered from the source with ``ast``. tracemalloc cannot tell what was
allocated and freed, so the "total" view is approximated by peak + end.

Usage: ``python workload.py OUT.json`` writes the profile in the JSON form read by
``heapscope._native._profile_from_json``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
import time
import tracemalloc
from functools import cache
from typing import Any

KEPT: list[object] = []
PEAK: dict[str, Any] = {}


def load_records(n: int) -> list[dict[str, object]]:
    """Build n small records (many small allocations)."""
    return [{"id": i, "name": f"user-{i}", "tags": [str(i % 7)] * 3} for i in range(n)]


def build_index(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    """Index the records by name (kept until exit: the "leak")."""
    return {r["name"]: r for r in records}


def render_rows(records: list[dict[str, object]]) -> list[str]:
    """Render one HTML row per record (a temporary peak)."""
    return [f"<tr><td>{r['id']}</td><td>{r['name']}</td></tr>" for r in records]


def make_blob(size: int) -> bytes:
    """One big temporary buffer."""
    return b"x" * size


def main() -> None:
    """The example program: load, index, render; keep the index."""
    records = load_records(40_000)
    index = build_index(records)
    rows = render_rows(records)
    blob = make_blob(8 << 20)
    take_peak_snapshot()
    KEPT.append(index)
    del records, rows, blob


def take_peak_snapshot() -> None:
    """Called by main() when its memory is highest."""
    PEAK["snapshot"] = tracemalloc.take_snapshot()
    PEAK["bytes"] = tracemalloc.get_traced_memory()[1]
    PEAK["t"] = time.monotonic()


@cache
def _functions(filename: str) -> list[tuple[int, int, str]]:
    try:
        with open(filename, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            name = getattr(node, "name", "<lambda>")
            spans.append((node.lineno, node.end_lineno or node.lineno, name))
    return spans


def function_at(filename: str, lineno: int) -> str:
    """The innermost function defined around filename:lineno, or <module>."""
    best = (0, "<module>")
    for start, end, name in _functions(filename):
        if start <= lineno <= end and start >= best[0]:
            best = (start, name)
    return best[1]


def record() -> dict[str, Any]:
    """Run main() under tracemalloc and return the profile JSON object."""
    rss_page = os.sysconf("SC_PAGE_SIZE")
    timeline: list[list[int]] = []
    start = time.monotonic()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * rss_page
            t = int((time.monotonic() - start) * 1000)
            timeline.append([t, tracemalloc.get_traced_memory()[0], rss])
            done.wait(0.01)

    tracemalloc.start(32)
    sampler = threading.Thread(target=sample, name="sampler")
    sampler.start()
    time.sleep(0.05)
    main()
    time.sleep(0.05)
    end = tracemalloc.take_snapshot()
    done.set()
    sampler.join()
    tracemalloc.stop()
    duration_ms = int((time.monotonic() - start) * 1000)

    skip = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, threading.__file__),
    ]
    frames: dict[tuple[str, int], int] = {}
    stacks: dict[tuple[int, ...], int] = {}

    def stats(snapshot: tracemalloc.Snapshot) -> list[list[int]]:
        rows = []
        for st in snapshot.filter_traces(skip).statistics("traceback"):
            ids = []
            for fr in reversed(st.traceback):  # most recent first
                key = (fr.filename, fr.lineno)
                ids.append(frames.setdefault(key, len(frames)))
            rows.append([stacks.setdefault(tuple(ids), len(stacks)), st.size, st.count])
        return rows

    at_peak = stats(PEAK["snapshot"])
    at_end = stats(end)
    total: dict[int, list[int]] = {}
    for sid, size, count in at_peak + at_end:
        row = total.setdefault(sid, [sid, 0, 0])
        row[1] += size
        row[2] += count
    return {
        "meta": {
            "command": ["workload.py"],
            "python_version": sys.version.split()[0],
            "pid": os.getpid(),
            "start_time_unix_ms": int(time.time() * 1000) - timeline[-1][0],
            "duration_ms": duration_ms,
            "peak_bytes": PEAK["bytes"],
            "peak_time_ms": int((PEAK["t"] - start) * 1000),
            "total_allocated_bytes": sum(r[1] for r in total.values()),
            "total_allocations": sum(r[2] for r in total.values()),
            "trace_limit": 32,
        },
        "frames": [[f, function_at(f, line), line] for (f, line) in frames],
        "stacks": [{"frames": list(ids), "thread": 0} for ids in stacks],
        "threads": [[threading.main_thread().native_id or 0, "MainThread"]],
        "at_peak": at_peak,
        "at_end": at_end,
        "total": list(total.values()),
        "timeline": timeline,
    }


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(record(), out)
