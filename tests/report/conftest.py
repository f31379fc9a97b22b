"""Fixtures of the report tests: real captures recorded with ``heapscope run``, and hand-built
profiles whose every string is hostile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heapscope import _native

HERE = Path(__file__).resolve().parent
HOSTILE_FILE = "<img src=x onerror=alert(1)>.py"
HOSTILE_FUNC = "<script>alert(2)</script>"


def record(script: Path, out: Path) -> Path:
    """Record ``script`` with ``heapscope run`` (the package under test) into ``out``."""
    import heapscope

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(heapscope.__file__).resolve().parent.parent)
    subprocess.run(
        [sys.executable, "-m", "heapscope", "run", "--force", "-o", str(out), script.name],
        cwd=script.parent,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def workload_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture of tests/report/workload.py recorded with ``heapscope run``."""
    return record(HERE / "workload.py", tmp_path_factory.mktemp("workload") / "workload.hsc")


@pytest.fixture(scope="session")
def workload_profile(workload_capture: Path) -> object:
    """The workload's capture as a ``heapscope._native.Profile``."""
    return _native.load_capture(str(workload_capture))


@pytest.fixture(scope="session")
def workload_by_function(workload_profile: object) -> dict[str, dict[str, int]]:
    """Bytes per leaf function in each view, from heapscope's own JSON report."""
    views: dict[str, dict[str, int]] = {}
    for at in ("peak", "end", "total"):
        text = _native.render_report(workload_profile, at=at, by="function", top=10**6, json=True)
        sizes: dict[str, int] = {}
        for row in json.loads(text)["rows"]:
            sizes[row["function"]] = sizes.get(row["function"], 0) + row["size"]
        views[at] = sizes
    return views


@pytest.fixture(scope="session")
def hostile_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real capture of a script whose file name is an HTML injection attempt."""
    folder = tmp_path_factory.mktemp("hostile")
    script = folder / HOSTILE_FILE
    script.write_text("def grow():\n    return [bytes(100) for _ in range(1000)]\n\nx = grow()\n")
    return record(script, folder / "hostile.hsc")


def hostile_json() -> dict[str, Any]:
    """A profile whose file, function and command strings are HTML/JS injection attempts."""
    return {
        "meta": {
            "command": [HOSTILE_FILE, "--x='\"><svg onload=alert(3)>", "</script><!--"],
            "peak_bytes": 300,
            "peak_time_ms": 5,
            "duration_ms": 10,
        },
        "frames": [
            [HOSTILE_FILE, "<module>", 1],
            [HOSTILE_FILE, HOSTILE_FUNC, 2],
            ["a;b\nc.py", "javascript:alert(4)", 3],
            ["\u2028\u2029&amp;.py", 'on"click=alert(5)', 4],
        ],
        "stacks": [{"frames": [1, 0]}, {"frames": [2, 0]}, {"frames": [3, 1, 0]}],
        "at_peak": [[0, 100, 1], [1, 100, 1], [2, 100, 1]],
        "at_end": [[0, 50, 1]],
        "total": [[0, 200, 2], [1, 200, 2], [2, 100, 1]],
        "timeline": [[0, 0, 100], [5, 300, 400], [10, 50, 400]],
    }


@pytest.fixture
def hostile_names() -> tuple[str, str]:
    """The hostile file name and function name of the hostile profile."""
    return HOSTILE_FILE, HOSTILE_FUNC


@pytest.fixture
def hostile_profile() -> object:
    """The hostile profile as a ``heapscope._native.Profile``."""
    return _native._profile_from_json(json.dumps(hostile_json()))
