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
TIMELINE: list[list[int]] = []
RECORDER = {"sample", "_rss", "take_peak_snapshot"}


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
    # Traced memory before the snapshot (taking it allocates): what the timeline shows.
    PEAK["bytes"] = tracemalloc.get_traced_memory()[0]
    PEAK["t"] = time.monotonic()
    # The sampler cannot run while the snapshot holds the GIL: record the peak moment here.
    TIMELINE.append([int((PEAK["t"] - PEAK["start"]) * 1000), PEAK["bytes"], _rss()])
    PEAK["snapshot"] = tracemalloc.take_snapshot()
    # The snapshot itself is traced; the timeline leaves it out (see record()).
    PEAK["overhead"] = tracemalloc.get_traced_memory()[0] - PEAK["bytes"]


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


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def record() -> dict[str, Any]:
    """Run main() under tracemalloc and return the profile JSON object."""
    timeline = TIMELINE
    start = PEAK["start"] = time.monotonic()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _rss()
            t = int((time.monotonic() - start) * 1000)
            traced = tracemalloc.get_traced_memory()[0] - PEAK.get("overhead", 0)
            timeline.append([t, max(traced, 0), rss])
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
    timeline.sort()
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
            names = [function_at(fr.filename, fr.lineno) for fr in st.traceback]
            if RECORDER & set(names):  # the recorder's own allocations
                continue
            ids = []
            for fr, name in zip(reversed(st.traceback), reversed(names), strict=True):
                if name == "record" and fr.filename == __file__:
                    continue  # the recorder's frame, between <module> and main()
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
