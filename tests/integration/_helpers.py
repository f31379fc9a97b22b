"""Helpers for the integration tests: run ``python -m heapscope`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def heapscope(
    *args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m heapscope ARGS`` and capture its output."""
    return python("-m", "heapscope", *args, cwd=cwd, env=env, timeout=timeout)


def python(
    *args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` (the test interpreter) and capture its output."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def report_json(capture: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """The JSON report of a capture."""
    proc = heapscope("report", capture, "--json", *args, cwd=capture.parent, env=env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_program(
    program: str, tmp_path: Path, *args: str, name: str = "program.py", **env: str | None
) -> str:
    """Run ``program`` (written to ``tmp_path / name``) with ``args`` in a fresh interpreter
    that imports this heapscope; ``env`` entries are set (None: unset). Its stdout; it must
    succeed."""
    import os

    import heapscope

    script = tmp_path / name
    script.write_text(program)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = str(Path(heapscope.__file__).resolve().parent.parent)
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
