"""The pure parts of attach and the live UI: the bootstrap, the /proc checks, the sparkline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heapscope._attach_agent import bootstrap_source
from heapscope._attach_target import inspect_target, python_version_of
from heapscope.cli._live import sparkline
from heapscope.errors import AttachError, HeapscopeError


def _run_bootstrap(workdir: Path) -> dict[str, object]:
    """Run the bootstrap as PyRun_SimpleString would, in a namespace standing for __main__."""
    main: dict[str, object] = {"__name__": "__main__"}
    exec(bootstrap_source(str(workdir)), main)
    return main


def test_bootstrap_cancelled_removes_its_workdir_and_binds_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "cancel").touch()
    main = _run_bootstrap(workdir)
    assert set(main) == {"__name__", "__builtins__"}
    assert not workdir.exists()


def test_bootstrap_reports_agent_failures_instead_of_raising(tmp_path: Path) -> None:
    # No config.json: the agent fails in its thread, and says so in the status file.
    main = _run_bootstrap(tmp_path)
    assert set(main) == {"__name__", "__builtins__"}
    deadline = time.monotonic() + 10
    while not (tmp_path / "status").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = json.loads((tmp_path / "status").read_text())
    assert status["state"] == "error"
    assert status["kind"] == "agent"
    assert "FileNotFoundError" in status["message"]
    assert "config.json" in status["message"]


def test_bootstrap_refuses_another_heapscope_version(tmp_path: Path) -> None:
    config = {"version": "0.0.0-other", "output": str(tmp_path / "x.hsc"), "trace_limit": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    _run_bootstrap(tmp_path)
    deadline = time.monotonic() + 10
    while not (tmp_path / "status").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    status = json.loads((tmp_path / "status").read_text())
    assert status["kind"] == "refused"
    assert "not 0.0.0-other" in status["message"]
    assert not (tmp_path / "x.hsc").exists()


def test_python_version_of_this_process() -> None:
    assert python_version_of(os.getpid()) == sys.version_info[:2]


def test_inspect_refuses_itself_and_bad_pids() -> None:
    with pytest.raises(AttachError, match="cannot attach to itself"):
        inspect_target(os.getpid())
    with pytest.raises(AttachError, match="not a process id"):
        inspect_target(0)
    assert issubclass(AttachError, HeapscopeError)


def test_sparkline_squeezes_keeping_each_buckets_maximum() -> None:
    assert sparkline([], 10) == ""
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    line = sparkline([0] * 50 + [100] + [0] * 49, 10)
    assert len(line) == 10
    assert line.count("█") == 1
    assert line.replace("█", "") == "▁" * 9
    assert len(sparkline(list(range(5)), 20)) == 5  # never stretched


def test_a_zombie_is_refused_in_one_line() -> None:
    """A child that exited and was not reaped yet: its /proc entry is there, its memory not."""
    from heapscope._attach_target import check_ptrace_allowed

    child = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    pid = child.pid
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        with pytest.raises(AttachError, match=f"process {pid} has exited"):
            check_ptrace_allowed(pid)
    finally:
        child.wait()
