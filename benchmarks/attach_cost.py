"""What ``heapscope attach`` costs a running program: before, while attached, and after.

A target runs an allocation-heavy loop (JSON round trips of small records) and prints, every
0.2 s, how many iterations it did per second of its main thread's CPU time (so other
processes on a busy machine do not skew it), the process's CPU time over the main thread's
(the cost of heapscope's own threads), the longest gap between two iterations and its RSS. This
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
    cpu0, proc0 = time.thread_time(), time.process_time()
    while True:
        json.loads(json.dumps([dict(record, id=i) for i in range(20)]))
        now = time.monotonic()
        gap, last, n = max(gap, now - last), now, n + 1
        if now - window >= 0.2:
            cpu, proc = time.thread_time(), time.process_time()
            rss = int(open("/proc/self/statm").read().split()[1]) * 4096
            rate, extra = n / max(cpu - cpu0, 1e-6), (proc - proc0) / max(cpu - cpu0, 1e-6)
            print(f"{time.time():.3f} {rate:.1f} {gap * 1000:.1f} {rss} {extra:.3f}", flush=True)
            window, n, gap, cpu0, proc0 = now, 0, 0.0, cpu, proc
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
    rows = [tuple(map(float, line.split())) for line in lines if line.count(" ") == 4]
    base = None
    print(
        f"{'phase':32} {'iter/cpu-s':>10} {'vs base':>8} {'cpu/main':>9} "
        f"{'stall ms start/end':>18} {'RSS MiB':>8}"
    )
    for name, (t0, t1) in marks.items():
        inside = [r for r in rows if t0 + 0.2 <= r[0] <= t1]
        if not inside:
            continue
        rate = statistics.median(r[1] for r in inside)
        base = base or rate
        extra = statistics.median(r[4] for r in inside)
        # The longest gap between two iterations at the start of the phase (for an attach:
        # gdb's stop and the agent's start) and at its end (the final drain, hooks out).
        stall = max(r[2] for r in rows if t0 - 0.2 <= r[0] <= max(t0 + 0.2, t1 - 2.0))
        stall_end = max(r[2] for r in rows if t1 - 1.0 <= r[0] <= t1 + 0.4)
        rss = inside[-1][3] / 2**20
        print(
            f"{name:32} {rate:10.0f} {rate / base:8.2f} {extra:9.2f} "
            f"{stall:9.0f}/{stall_end:<8.0f} {rss:8.1f}"
        )


if __name__ == "__main__":
    main()
