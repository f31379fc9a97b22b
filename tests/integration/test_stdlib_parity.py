"""The stdlib documentation's four tracemalloc patterns give the same answers under heapscope.

One deterministic program runs twice in fresh interpreters, once with ``import tracemalloc``
and once with ``import heapscope.tracemalloc as tracemalloc``; lines must be identical, sizes
and counts within 5 %, and traced bytes within 1 %.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    if sys.version_info >= (3, 13):
        import tokenize  # Traceback.format() imports it through linecache (see diff3)
    if os.environ["TRACER"] == "heapscope":
        import heapscope.tracemalloc as tracemalloc
        own = os.path.dirname(tracemalloc.__file__) + os.sep + "*"
    else:
        import tracemalloc
        own = tracemalloc.__file__

    FILTERS = [
        tracemalloc.Filter(False, own),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]

    def words(n):
        return [f"word-{i:06d}" * 3 for i in range(n)]

    def table(n):
        return {i: (i, str(i)) for i in range(n)}

    def blobs(n):
        return [bytes(1000 + i % 7) for i in range(n)]

    out = {}
    tracemalloc.start(10)
    a = words(30_000)
    b = table(20_000)
    c = blobs(3_000)
    snap1 = tracemalloc.take_snapshot().filter_traces(FILTERS)
    top = snap1.statistics("lineno")[:3]
    out["top3"] = [[s.traceback[0].filename, s.traceback[0].lineno, s.size, s.count] for s in top]
    out["top_frame"] = [top[0].traceback[0].filename, top[0].traceback[0].lineno]
    out["top_format"] = top[0].traceback.format()[:2]

    d = words(10_000)
    del c
    snap2 = tracemalloc.take_snapshot().filter_traces(FILTERS)
    # The workload's changes (tens of KiB and more): below them come a few hundred bytes of
    # modules imported between the snapshots, which depend on what each tracer module imported
    # before, and of each tracer's own objects; neither says anything about tracing.
    diff = [s for s in snap2.compare_to(snap1, "lineno") if abs(s.size_diff) >= 10_000][:3]
    out["diff3"] = [
        [s.traceback[0].lineno, s.size, s.size_diff, s.count, s.count_diff] for s in diff
    ]

    tracemalloc.clear_traces()
    first_size, first_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    batch = words(50_000)
    held, _ = tracemalloc.get_traced_memory()
    del batch
    second_size, second_peak = tracemalloc.get_traced_memory()
    out["memory"] = [first_size, held, second_size, second_peak]
    tracemalloc.stop()
    json.dump(out, sys.stdout)
    """
)


def run(tracer: str, tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**env, "TRACER": tracer},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def close(a: int, b: int, tolerance: float) -> bool:
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    import heapscope

    env = dict(__import__("os").environ)
    root = str(Path(heapscope.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root
    tmp = tmp_path_factory.mktemp("parity")
    return {t: run(t, tmp, env) for t in ("stdlib", "heapscope")}


def test_top_lines(results: dict[str, dict[str, Any]]) -> None:
    std, hs = results["stdlib"]["top3"], results["heapscope"]["top3"]
    assert [(f, line) for f, line, _, _ in hs] == [(f, line) for f, line, _, _ in std]
    for (_, _, s_size, s_count), (_, _, h_size, h_count) in zip(std, hs, strict=True):
        assert close(h_size, s_size, 0.05) and close(h_count, s_count, 0.05)


def test_traceback_frame_and_format(results: dict[str, dict[str, Any]]) -> None:
    assert results["heapscope"]["top_frame"] == results["stdlib"]["top_frame"]
    assert results["heapscope"]["top_format"] == results["stdlib"]["top_format"]


def test_compare_to(results: dict[str, dict[str, Any]]) -> None:
    std, hs = results["stdlib"]["diff3"], results["heapscope"]["diff3"]
    assert [row[0] for row in hs] == [row[0] for row in std]
    # Absolute slack per column (size, size_diff, count, count_diff): objects that each tracer's
    # own Python code takes from a free list (ints have one from 3.14) leave a few small objects
    # more or less on a workload line.
    slack = (256, 256, 8, 8)
    for s_row, h_row in zip(std, hs, strict=True):
        for s_value, h_value, most in zip(s_row[1:], h_row[1:], slack, strict=True):
            assert close(h_value, s_value, 0.05) or abs(h_value - s_value) <= most, (s_row, h_row)


def test_traced_memory_within_one_percent(results: dict[str, dict[str, Any]]) -> None:
    std, hs = results["stdlib"]["memory"], results["heapscope"]["memory"]
    assert hs[0] == std[0] == 0  # right after clear_traces
    held_std, held_hs = std[1], hs[1]
    assert close(held_hs, held_std, 0.01), (std, hs)
    assert close(hs[3], std[3], 0.01)  # the peak covers the batch
    assert hs[2] < held_hs / 10 and std[2] < held_std / 10  # the batch was freed
