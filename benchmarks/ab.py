"""Two builds of heapscope side by side: ``python benchmarks/ab.py --a DIR --b DIR W.py ...``.

Each ``DIR`` holds a ``heapscope`` package (a copy of ``python/heapscope`` with its built
``_native`` module), put first on ``PYTHONPATH``. Per round and workload the untraced run and
both builds run in turn (interleaved, so the machine's drift hits all three alike), each a fresh
``_driver.py`` process timing only the workload; the table gives medians as ratios to the
untraced run, and B's median over A's (``--run``: whole processes under ``heapscope run``
instead). A change to the hot path is kept on such a table, not on
instruction counts alone: on this project's machines a walk of the frame chain waits on loads,
and instructions added beside those loads can cost nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_whole(python: str, package_dir: str | None, script: list[str]) -> float:
    """Wall seconds of one whole process: ``heapscope run`` of ``script`` with the build in
    ``package_dir``, or ``script`` untraced if ``package_dir`` is None (start-up, the final
    drain and the capture's closing included, as a user meets them)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        cmd = [python, *script]
        if package_dir is not None:
            env["PYTHONPATH"] = package_dir
            cmd = [python, "-m", "heapscope", "run", "-o", str(Path(tmp) / "c.hscap"), *script]
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
        return time.perf_counter() - start


def run_once(python: str, package_dir: str, tracer_args: list[str], script: list[str]) -> float:
    """Seconds the driver measured for one run of ``script`` with ``tracer_args``."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=package_dir)
        cmd = [python, str(HERE / "_driver.py"), *tracer_args, "--result", str(result), *script]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return float(json.loads(result.read_text())["seconds"])


def main(argv: list[str]) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", required=True, help="directory holding build A's heapscope")
    parser.add_argument("--b", required=True, help="directory holding build B's heapscope")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--nframe", type=int, default=64)
    parser.add_argument("--sample-rate", type=int, default=None)
    parser.add_argument(
        "--run",
        action="store_true",
        help="time whole processes under `heapscope run` (64 frames) instead of the driver",
    )
    parser.add_argument("workloads", nargs="+", help="scripts, each optionally 'SCRIPT:ARG'")
    opts = parser.parse_args(argv)
    traced = ["--tracer", "heapscope", "--nframe", str(opts.nframe)]
    if opts.sample_rate is not None:
        traced += ["--sample-rate", str(opts.sample_rate)]
    configs = {
        "untraced": (opts.a, ["--tracer", "none"]),
        "A": (opts.a, traced),
        "B": (opts.b, traced),
    }
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(opts.rounds):
        for workload in opts.workloads:
            script = workload.split(":")
            if opts.run:
                script = [str(Path(script[0]).resolve()), *script[1:]]
            for name, (package_dir, args) in configs.items():
                if opts.run:
                    whole = None if name == "untraced" else str(Path(package_dir).resolve())
                    seconds = run_whole(opts.python, whole, script)
                else:
                    seconds = run_once(opts.python, package_dir, args, script)
                times.setdefault((workload, name), []).append(seconds)
        print(f"round {r + 1}/{opts.rounds} done", file=sys.stderr)
    print(f"{'workload':28} {'untraced':>9} {'A':>7} {'B':>7} {'B/A':>6}")
    for workload in opts.workloads:
        med = {name: statistics.median(times[(workload, name)]) for name in configs}
        base = med["untraced"]
        print(
            f"{Path(workload).name:28} {base:8.3f}s {med['A'] / base:6.3f}x"
            f" {med['B'] / base:6.3f}x {med['B'] / med['A']:6.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
