"""The start-up a child Python process pays when ``heapscope run`` follows it.

Times ``python -c pass`` (or ``--code``) started plainly and with the environment that
``heapscope run`` gives the program's children (the ``sitecustomize`` bootstrap starts a
recorded stream in a temporary capture directory). Runs alternate between the two, and the
medians are printed. Usage: ``python benchmarks/child_startup.py [--runs 40]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heapscope._follow import FollowConfig


def one_run(env: dict[str, str], code: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one interpreter start, run and exit, in
    seconds. CPU time is what a busy machine disturbs least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    """Print the medians and the difference."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="runs of each (default 40)")
    parser.add_argument("--code", default="pass", help="what the child runs (default: pass)")
    args = parser.parse_args(argv)
    plain_env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        config = FollowConfig(tmp, trace_limit=64, sample_rate=None)
        traced_env = config.environ(plain_env)
        plain: list[tuple[float, float]] = []
        traced: list[tuple[float, float]] = []
        one_run(plain_env, args.code)  # warm the OS caches for both
        one_run(traced_env, args.code)
        for _ in range(args.runs):
            plain.append(one_run(plain_env, args.code))
            traced.append(one_run(traced_env, args.code))
        streams = len(list(Path(tmp).glob("*.hsc")))
    print(f"python -c {args.code!r}, {args.runs} runs each, interleaved (median, ms):")
    print(f"  {'':16} {'wall':>7} {'cpu':>7}")
    rows = [("plain", plain), ("followed child", traced)]
    medians = {}
    for name, runs in rows:
        wall = statistics.median(r[0] for r in runs) * 1000
        cpu = statistics.median(r[1] for r in runs) * 1000
        medians[name] = (wall, cpu)
        print(f"  {name:16} {wall:7.1f} {cpu:7.1f}")
    (pw, pc), (tw, tc) = medians["plain"], medians["followed child"]
    print(f"  {'start-up cost':16} {tw - pw:7.1f} {tc - pc:7.1f}   ({streams} streams written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
