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


@pytest.mark.timeout(120)
def test_shadow_stack_floor_runs_a_program_plain_and_hooked(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Plain and hooked runs both succeed, and the hooked one only if its hook (a C profile
    function before 3.12, sys.monitoring after) saw calls."""
    program = tmp_path / "calls.py"
    program.write_text("def f(n):\n    return n and f(n - 1)\n\nfor _ in range(2000):\n    f(50)\n")
    proc = subprocess.run(
        [sys.executable, str(RUN.parent / "shadow_stack_floor.py"), "--rounds", "1", str(program)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    hook = "sys.monitoring" if sys.version_info >= (3, 12) else "PyEval_SetProfile"
    assert hook in proc.stdout
    assert "hooked" in proc.stdout and proc.stdout.rstrip().endswith("x")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("whole", [False, True], ids=["driver", "heapscope-run"])
def test_ab_runs_two_builds_side_by_side(
    tmp_path: Path, subprocess_env: dict[str, str], whole: bool
) -> None:
    """`ab.py` (with `--run`: whole processes under `heapscope run`) prints one row per
    workload with both builds' ratios and B's over A's."""
    import heapscope

    package = Path(heapscope.__file__).resolve().parent
    for build in ("A", "B"):
        (tmp_path / build).mkdir()
        (tmp_path / build / "heapscope").symlink_to(package)
    trees = RUN.parent / "workloads" / "trees.py"
    cmd = [
        sys.executable,
        str(RUN.parent / "ab.py"),
        "--a",
        str(tmp_path / "A"),
        "--b",
        str(tmp_path / "B"),
        "--rounds",
        "1",
        *(["--run"] if whole else []),
        f"{trees}:6",
    ]
    proc = subprocess.run(
        cmd, env=subprocess_env, capture_output=True, text=True, timeout=110, check=False
    )
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.strip().splitlines()[-2:]
    assert header.split() == ["workload", "untraced", "A", "B", "B/A"]
    cells = row.split()
    assert cells[0] == "trees.py:6"
    assert cells[2].endswith("x") and cells[3].endswith("x")
    assert float(cells[4]) > 0
