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


def run_under(tracer: str, program: str, tmp_path: Path, name: str = "program.py") -> str:
    """Run ``program`` with ``TRACER=tracer`` (its choice of ``tracemalloc``) and this
    heapscope importable; its stdout (it must succeed)."""
    import os

    import heapscope

    script = tmp_path / name
    script.write_text(program)
    env = dict(os.environ, TRACER=tracer)
    env["PYTHONPATH"] = str(Path(heapscope.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
