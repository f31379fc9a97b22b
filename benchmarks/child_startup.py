"""The start-up a child Python process pays when ``heapscope run`` follows it.

Times ``python -c pass`` (or ``--code``) started plainly and with the environment that
``heapscope run`` gives the program's children (the ``sitecustomize`` bootstrap starts a
recorded stream in a temporary capture directory). Runs alternate between the two, and the
medians are printed. Usage: ``python benchmarks/child_startup.py [--runs 40]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heapscope._follow import FollowConfig


def one_run(env: dict[str, str], code: str) -> float:
    """Wall time of one interpreter start, run and exit, in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


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
        plain: list[float] = []
        traced: list[float] = []
        one_run(plain_env, args.code)  # warm the OS caches for both
        one_run(traced_env, args.code)
        for _ in range(args.runs):
            plain.append(one_run(plain_env, args.code))
            traced.append(one_run(traced_env, args.code))
        streams = len(list(Path(tmp).glob("*.hsc")))
    p, t = statistics.median(plain), statistics.median(traced)
    print(f"python -c {args.code!r}, {args.runs} runs each, interleaved (median):")
    print(f"  plain            {p * 1000:7.1f} ms")
    print(f"  followed child   {t * 1000:7.1f} ms   ({streams} streams written)")
    print(f"  start-up cost    {(t - p) * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
