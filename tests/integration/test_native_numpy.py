"""``heapscope run --native`` on numpy: each array buffer is one malloc that numpy also reports
through ``PyTraceMalloc_Track``; heapscope counts it once, as the native block (the malloc),
at the Python line that made the array, and not again in numpy's tracemalloc domain.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._helpers import heapscope, report_json
from ._native_build import native_env

pytest.importorskip("numpy")
pytestmark = pytest.mark.timeout(180)

NATIVE_DOMAIN = 0x6E617476
NUMPY_DOMAIN = 389047

PROGRAM = """\
import numpy as np

kept = np.empty(1_000_000)  # KEEP
temporary = np.empty(3_000_000)  # TEMP
del temporary
small = [np.empty(100) for _ in range(50)]  # SMALL
"""


def line_of(marker: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if f"# {marker}" in line)


@pytest.mark.xfail(
    sys.version_info >= (3, 15),
    reason=(
        "on 3.15 (numpy 2.5.2 in the root) array buffers are not a malloc the hooks see: they "
        "come from PyMem and are traced in domain 0 and again in 389047 (the double count "
        "test_numpy_run.py records as a known defect); measured: no native row, 8,000,000 B "
        "in 389047 beside domain 0"
    ),
    strict=True,
)
def test_each_buffer_counts_once(tmp_path: Path) -> None:
    script = tmp_path / "arrays.py"
    script.write_text(PROGRAM)
    env = native_env(tmp_path)
    out = tmp_path / "np.hsc"
    proc = heapscope("run", "--native", "-o", out, script, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    for view, expected in (("end", {"KEEP": 8_000_000}), ("total", {"TEMP": 24_000_000})):
        report = report_json(out, env, "--at", view, "-n", "100000")
        rows = [r for r in report["rows"] if r["file"] == str(script)]
        for marker, size in expected.items():
            at_line = [r for r in rows if r["line"] == line_of(marker)]
            native = [r for r in at_line if r["domain"] == NATIVE_DOMAIN]
            assert [(r["size"], r["count"]) for r in native] == [(size, 1)], at_line
            # Not a second time in numpy's domain; the array object itself is small.
            assert not [r for r in at_line if r["domain"] == NUMPY_DOMAIN], at_line
            assert sum(r["size"] for r in at_line) < size + 4096, at_line
    report = report_json(out, env, "--at", "end", "-n", "100000")
    small = [
        r for r in report["rows"] if r["file"] == str(script) and r["line"] == line_of("SMALL")
    ]
    assert sum(r["size"] for r in small if r["domain"] == NATIVE_DOMAIN) == 50 * 800, small
    assert all(r["domain"] != NUMPY_DOMAIN for r in small), small
