"""Run the driver in fresh subprocesses and classify the outcome: ok, n/a or crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _configs import BENCH_DIR, DRIVER, PROFILER_ARGS, Config

EXIT_NA = 3
TIMEOUT_S = 900


@dataclass
class Outcome:
    """The result of one subprocess: ``status`` is "ok", "n/a" or "crash"."""

    status: str
    data: dict[str, Any] = field(default_factory=dict)
    wall: float = 0.0
    detail: str = ""


def child_env() -> dict[str, str]:
    """Environment of the children: this checkout's ``python/`` unless PYTHONPATH is set.

    An installed heapscope (e.g. an editable install of another checkout) would otherwise win;
    an explicit PYTHONPATH is respected as it is.
    """
    env = dict(os.environ)
    if not env.get("PYTHONPATH"):
        env["PYTHONPATH"] = str(BENCH_DIR.parent / "python")
    return env


def heapscope_location(env: dict[str, str]) -> str:
    """Where the children import heapscope from (without importing it)."""
    code = "import importlib.util as u; s = u.find_spec('heapscope'); print(s and s.origin)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or proc.stderr.strip()


def profiler_available(env: dict[str, str]) -> str:
    """Empty if `python -m heapscope run` exists, else why not."""
    probe = "import heapscope.cli.run"
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return ""
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def run_driver(
    config: Config,
    driver_args: list[str],
    env: dict[str, str],
    sample_rate: int,
) -> Outcome:
    """Run the driver once for ``config`` with ``driver_args`` (task, script, ...)."""
    with tempfile.TemporaryDirectory(prefix="hsbench-") as tmp:
        result = Path(tmp) / "result.json"
        args = [str(DRIVER), "--tracer", config.tracer, "--nframe", str(config.nframe)]
        if config.sampled:
            args += ["--sample-rate", str(sample_rate)]
        args += ["--result", str(result), *driver_args]
        if config.profiler:
            capture = str(Path(tmp) / "capture.hsc")
            cmd = [sys.executable, "-m", "heapscope", "run", *PROFILER_ARGS, "-o", capture, *args]
        else:
            cmd = [sys.executable, *args]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                env={**env, **dict(config.env)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome("crash", detail=f"timed out after {TIMEOUT_S} s: {' '.join(cmd)}")
        wall = time.perf_counter() - t0
        data = json.loads(result.read_text()) if result.exists() else {}
    if proc.returncode == EXIT_NA and data.get("status") == "n/a":
        return Outcome("n/a", data, wall, data.get("reason", ""))
    if proc.returncode != 0 or data.get("status") != "ok":
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        return Outcome("crash", data, wall, f"exit {proc.returncode}: {' '.join(cmd)}\n{tail}")
    return Outcome("ok", data, wall)
