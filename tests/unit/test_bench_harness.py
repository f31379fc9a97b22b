"""Smoke test of the benchmark harness: it runs and prints its tables (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.mark.timeout(60)
def test_harness_prints_tables_with_stdlib_configs(subprocess_env: dict[str, str]) -> None:
    """Tiny sizes, untraced and stdlib only: exit 0, a ratio table with a geomean row."""
    cmd = [
        sys.executable,
        str(RUN),
        "--quick",
        "--size=tiny",
        "--rounds=3",
        "--workloads=strings,trees",
        "--configs=untraced,stdlib-1,stdlib-64",
        "--sections=overhead,memory,snapshot",
    ]
    proc = subprocess.run(
        cmd, env=subprocess_env, capture_output=True, text=True, timeout=55, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Ratio to untraced" in out
    ratio_table = out.split("Ratio to untraced", 1)[1]
    for row in ("strings", "trees", "geomean"):
        assert row in ratio_table
    assert "stdlib-64" in out
    assert "B/trace" in out
    assert "take_snapshot()" in out
    assert "Summary" in out
