"""What ``heapscope attach`` costs a running program: before, while attached, and after.

A target runs an allocation-heavy loop (JSON round trips of small records) and prints, every
0.2 s, how many iterations it did, the longest gap between two iterations and its RSS. This
script attaches to it twice (full tracing, then sampling) and prints each phase's throughput
against the baseline before the first attach, the longest stall at an attach, and the RSS
after. Run: ``python benchmarks/attach_cost.py`` (about 25 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TARGET = textwrap.dedent(
    """
    import json, sys, time
    record = {"id": 1, "name": "x" * 20, "tags": ["a", "b", "c"], "score": 1.5}
    window, n, gap, last = time.monotonic(), 0, 0.0, time.monotonic()
    while True:
        json.loads(json.dumps([dict(record, id=i) for i in range(20)]))
        now = time.monotonic()
        gap, last, n = max(gap, now - last), now, n + 1
        if now - window >= 0.2:
            rss = int(open("/proc/self/statm").read().split()[1]) * 4096
            print(f"{time.time():.3f} {n / (now - window):.1f} {gap * 1000:.1f} {rss}", flush=True)
            window, n, gap = now, 0, 0.0
    """
)


def _attach(pid: int, out: Path, *extra: str) -> tuple[float, float]:
    start = time.time()
    cmd = [sys.executable, "-m", "heapscope", "attach", str(pid), "-o", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    return start, time.time()


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phase", type=float, default=3.0, help="seconds per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "target.py"
        script.write_text(TARGET)
        target = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        lines: list[str] = []
        try:
            marks = {"baseline": (time.time() + 0.5, time.time() + 0.5 + args.phase)}
            time.sleep(0.5 + args.phase)
            d = str(args.phase)
            marks["attached, full tracing"] = _attach(
                target.pid, Path(tmp) / "a.hsc", "--duration", d
            )
            time.sleep(0.5)
            marks["after detach"] = (time.time(), time.time() + args.phase)
            time.sleep(args.phase)
            marks["attached, --sample-rate 524288"] = _attach(
                target.pid, Path(tmp) / "b.hsc", "--duration", d, "--sample-rate", "524288"
            )
            time.sleep(0.5)
            marks["after second detach"] = (time.time(), time.time() + args.phase)
            time.sleep(args.phase)
        finally:
            target.kill()
            out, _ = target.communicate()
            lines = out.splitlines()
    rows = [tuple(map(float, line.split())) for line in lines if line.count(" ") == 3]
    base = None
    print(f"{'phase':32} {'iter/s':>9} {'vs base':>8} {'max stall ms':>13} {'RSS MiB':>8}")
    for name, (t0, t1) in marks.items():
        inside = [r for r in rows if t0 + 0.2 <= r[0] <= t1]
        if not inside:
            continue
        rate = statistics.median(r[1] for r in inside)
        base = base or rate
        stall = max(r[2] for r in rows if t0 - 0.2 <= r[0] <= t1 + 0.4)
        rss = inside[-1][3] / 2**20
        print(f"{name:32} {rate:9.0f} {rate / base:8.2f} {stall:13.1f} {rss:8.1f}")


if __name__ == "__main__":
    main()
