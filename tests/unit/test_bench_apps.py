"""The applications section of the benchmarks (``benchmarks/_apps.py``): how a run's results
are read, the medians, ratios and targets computed from them, the tables, and one real pass of
the section over small programs made here (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _apps  # noqa: E402

MIB = 2**20


def _run(wall: float, rss_mib: float, **kw: int) -> _apps.Run:
    return _apps.Run(wall=wall, maxrss=int(rss_mib * MIB), **kw)


def _result() -> _apps.AppResult:
    res = _apps.AppResult("app")
    res.runs[_apps.UNTRACED] += [_run(2.0, 100), _run(2.2, 102), _run(1.8, 101)]
    res.runs[_apps.HS_RUN] += [_run(2.8, 150, capture=4 * MIB), _run(3.0, 160, capture=4 * MIB)]
    res.runs[_apps.HS_64] += [_run(3.0, 141, tracer_memory=30 * MIB, rss=140 * MIB)]
    res.runs[_apps.STD_64] += [_run(100.0, 201, tracer_memory=90 * MIB, rss=200 * MIB)]
    res.runs[_apps.MEMRAY] += [_run(5.0, 121, capture=8 * MIB)]
    return res


def test_outcome_reads_the_launcher_and_tracer_results() -> None:
    launch = {"returncode": 0, "wall": 1.5, "maxrss": 3 * MIB, "stderr": ""}
    trace = {"status": "ok", "tracer_memory": 1234, "rss": 2 * MIB}
    out = _apps.outcome(launch, trace, None)
    assert out.status == "ok"
    assert out.run == _apps.Run(1.5, 3 * MIB, None, 1234, 2 * MIB)
    assert _apps.outcome(launch, None, 777).run == _apps.Run(1.5, 3 * MIB, 777)


def test_outcome_na_and_crash() -> None:
    na = _apps.outcome({"returncode": 3}, {"status": "n/a", "reason": "No module named x"}, None)
    assert (na.status, na.detail) == ("n/a", "No module named x")
    # Exit 3 without the tracer's n/a result is a crash, as is any other non-zero status.
    assert _apps.outcome({"returncode": 3, "stderr": "boom"}, None, None).status == "crash"
    crash = _apps.outcome({"returncode": 1, "stderr": "a\nTraceback\nValueError: x"}, None, None)
    assert crash.status == "crash"
    assert "ValueError: x" in crash.detail
    assert "exit 1" in crash.detail
    killed = _apps.outcome({"returncode": -9, "timed_out": True, "stderr": ""}, None, None)
    assert (killed.status, killed.detail) == ("crash", f"timed out after {_apps.TIMEOUT_S} s")


def test_medians_ratios_and_added_rss() -> None:
    res = _result()
    assert res.wall(_apps.UNTRACED) == pytest.approx(2.0)
    assert res.ratio(_apps.HS_RUN) == pytest.approx(1.45)
    assert res.added_rss(_apps.HS_RUN) == pytest.approx(54.0)
    assert res.added_rss(_apps.MEMRAY) == pytest.approx(20.0)
    assert res.mib(_apps.HS_RUN, "capture") == pytest.approx(4.0)
    assert res.mib(_apps.HS_64, "tracer_memory") == pytest.approx(30.0)
    assert res.added_over(_apps.HS_64, _apps.STD_64) == pytest.approx(40 / 100)
    assert res.ratio("missing") is None
    assert res.added_rss("missing") is None


def test_targets_per_program_and_worst_over_programs() -> None:
    res = _result()
    row = _apps.target_row(res)
    assert row[0] == "app"
    assert row[1] == "+54 vs +20 MiB MISS"
    assert row[2] == "1.45x ok"
    assert row[3] == "+40 vs +100 MiB ok"
    slow = _result()
    slow.runs[_apps.HS_RUN] = [_run(6.0, 110)]
    figures = _apps.figures([res, slow])
    assert figures["apps_run_time"] == pytest.approx(3.0)
    assert figures["apps_run_vs_memray"] == pytest.approx(54 / 20)
    assert figures["apps_hs_vs_stdlib"] == pytest.approx(0.4)
    # A program without a figure leaves the target unanswered, not passed.
    del slow.runs[_apps.MEMRAY]
    assert _apps.figures([res, slow])["apps_run_vs_memray"] is None


def test_render_prints_every_table_and_why_a_column_is_na() -> None:
    res = _result()
    other = _apps.AppResult("other", unavailable={_apps.MEMRAY: "No module named 'memray'"})
    other.runs[_apps.UNTRACED].append(_run(1.0, 50))
    text = _apps.render([res, other], _apps.CONFIGS, 3)
    assert "median of 3 rounds" in text
    lines = text.splitlines()
    cost = next(line for line in lines if line.startswith("app "))
    assert cost.split()[1:4] == ["2.00", "s,", "101"]
    assert "1.45x, +54 MiB" in cost
    assert "50.00x, +100 MiB" in cost
    assert "30.0 / 140.0" in text
    assert "90.0 / 200.0" in text
    assert "issue 16 targets" in text
    assert "(n/a memray: No module named 'memray')" in text


def _launch(tmp_path: Path, *args: str) -> dict[str, object]:
    result = tmp_path / "launch.json"
    subprocess.run(
        [
            sys.executable,
            str(_apps.LAUNCH),
            *args[:-1],
            str(result),
            sys.executable,
            "-c",
            args[-1],
        ],
        check=True,
        timeout=30,
    )
    launch: dict[str, object] = json.loads(result.read_text())
    return launch


def test_launcher_measures_peak_rss_and_exit_status(tmp_path: Path) -> None:
    code = "import sys; b = bytearray(200 * 2**20); sys.stderr.write('bye'); sys.exit(4)"
    launch = _launch(tmp_path, code)
    assert launch["returncode"] == 4
    assert launch["timed_out"] is False
    assert launch["stderr"] == "bye"
    assert isinstance(launch["maxrss"], int)
    assert 200 * MIB < launch["maxrss"] < 400 * MIB


def test_launcher_kills_at_its_timeout(tmp_path: Path) -> None:
    launch = _launch(tmp_path, "--timeout", "1", "import time; time.sleep(60)")
    assert launch["timed_out"] is True
    assert launch["returncode"] == -9


def test_command_lines() -> None:
    prog, res, cap = Path("/p/app.py"), Path("/t/r.json"), Path("/t/cap")
    run = _apps.command(_apps.HS_RUN, prog, ["2"], res, cap)
    assert run[1:] == [
        "-m",
        "heapscope",
        "run",
        "--trace-limit",
        "64",
        "-o",
        "/t/cap",
        "/p/app.py",
        "2",
    ]
    memray = _apps.command(_apps.MEMRAY, prog, [], res, cap)
    assert memray[1:5] == ["-m", "memray", "run", "--trace-python-allocators"]
    std = _apps.command(_apps.STD_64, prog, [], res, cap)
    assert std[2:] == ["stdlib", "64", "/t/r.json", "/p/app.py"]
    with pytest.raises(ValueError, match="unknown configuration"):
        _apps.command("nope", prog, [], res, cap)


@pytest.mark.timeout(60)
def test_section_runs_small_programs(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Real subprocesses: figures for a small program, n/a for one whose import fails."""
    (tmp_path / "lists.py").write_text(
        "import sys\n"
        "def main(n):\n"
        "    return [list(range(i % 50)) for i in range(n)]\n"
        "print(len(main(int(sys.argv[1]) * 20000)))\n"
    )
    (tmp_path / "needs_missing.py").write_text("import heapscope_no_such_module\n")
    configs = [_apps.UNTRACED, _apps.STD_64, _apps.HS_64]
    section = _apps.section(subprocess_env, "tiny", 1, configs, _apps.programs(tmp_path))
    assert section.crashes == []
    lists = next(line for line in section.text.splitlines() if line.startswith("lists "))
    assert lists.count("x, +") == 2  # stdlib-64 and heapscope-64: a ratio and added RSS each
    assert "(n/a untraced: needs_missing.py: No module named 'heapscope_no_such_module')" in (
        section.text
    )
    assert "load average" in section.text.splitlines()[-1]
    assert set(section.figures) == {"apps_run_time", "apps_run_vs_memray", "apps_hs_vs_stdlib"}
    assert section.figures["apps_run_time"] is None  # heapscope run was not among the configs
