"""Helpers of the tests of followed processes: scripts with marked lines, sizes at them."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

from ._helpers import heapscope

MiB = 1024 * 1024
#: Slack over a bytearray's buffer: its object header and the allocator's rounding.
SLACK = 4096


def write(path: Path, source: str) -> Path:
    """Write a dedented program; return its path."""
    path.write_text(textwrap.dedent(source))
    return path


def line_of(path: Path, mark: str) -> int:
    """The 1-based line of ``path`` that holds ``# mark``."""
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {mark}"):
            return n
    raise AssertionError(f"no line marked {mark} in {path}")


def run_traced(
    tmp_path: Path, env: dict[str, str], script: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """``heapscope run -o out.hsc [extra] script``, which must succeed."""
    proc = heapscope("run", "-o", "out.hsc", *extra, script.name, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def line_size(report: dict[str, Any], script: Path, mark: str) -> int:
    """Bytes a JSON report gives the line of ``script`` marked ``mark``."""
    line = line_of(script, mark)
    return sum(r["size"] for r in report["rows"] if r["file"] == str(script) and r["line"] == line)


def assert_about(size: int, expected: int) -> None:
    """``size`` is ``expected`` bytes plus at most ``SLACK``."""
    assert expected <= size <= expected + SLACK, (size, expected)


def traced(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The processes of a JSON report that were recorded (not notes)."""
    return [p for p in report["meta"]["processes"] if p["note"] is None]
