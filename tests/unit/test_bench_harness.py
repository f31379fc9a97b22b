"""Smoke test of the benchmark harness: it runs and prints its tables (no timing asserted)."""

from __future__ import annotations

import json
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


DRIVER = RUN.parent / "_driver.py"

REF_TRACER_PROBE = """
import ctypes
get = ctypes.pythonapi.PyRefTracer_GetTracer
get.restype = ctypes.c_void_p
get.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
data = ctypes.c_void_p()
print("tracer", get(ctypes.byref(data)))
"""


def run_probe(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`_driver.py` timing REF_TRACER_PROBE under heapscope (64 frames) with ``env``."""
    script = tmp_path / "probe.py"
    script.write_text(REF_TRACER_PROBE)
    result = tmp_path / "result.json"
    cmd = [sys.executable, str(DRIVER), "--tracer", "heapscope", "--nframe", "64"]
    proc = subprocess.run(
        [*cmd, "--result", str(result), str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    return proc, json.loads(result.read_text())


@pytest.mark.timeout(60)
def test_the_no_ref_tracer_configuration_takes_the_reference_tracer_away(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """`hs-64-noreftracer`: the workload runs with heapscope tracing and no reference tracer
    (3.13+); before 3.13 the configuration is n/a (exit 3), not a crash."""
    proc, outcome = run_probe(dict(subprocess_env, HEAPSCOPE_BENCH_NO_REF_TRACER="1"), tmp_path)
    if sys.version_info < (3, 13):
        assert proc.returncode == 3, proc.stderr
        assert outcome["status"] == "n/a"
        return
    assert proc.returncode == 0, proc.stderr
    assert outcome["status"] == "ok"
    assert "tracer None" in proc.stdout
    # Without the variable the same run has heapscope's tracer installed.
    proc, outcome = run_probe(subprocess_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tracer None" not in proc.stdout and "tracer " in proc.stdout
