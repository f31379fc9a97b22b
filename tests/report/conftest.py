"""Fixtures of the report tests: profiles built without a capture file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heapscope import _native

HERE = Path(__file__).resolve().parent
HOSTILE_FILE = "<img src=x onerror=alert(1)>.py"
HOSTILE_FUNC = "<script>alert(2)</script>"


@pytest.fixture(scope="session")
def workload_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real run of tests/report/workload.py recorded with tracemalloc, as profile JSON."""
    out = tmp_path_factory.mktemp("workload") / "profile.json"
    subprocess.run([sys.executable, str(HERE / "workload.py"), str(out)], check=True, timeout=120)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


@pytest.fixture
def workload_profile(workload_json: dict[str, Any]) -> object:
    """The workload run as a ``heapscope._native.Profile``."""
    return _native._profile_from_json(json.dumps(workload_json))


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
