"""Run one command and report its wall time and peak RSS: a fresh, small parent per run.

Usage: ``python benchmarks/_apps_launch.py [--timeout SECONDS] RESULT.json CMD [ARGS...]``. The
command's stdout goes to /dev/null, its stderr to the tail in the result; past the timeout it
is killed (SIGKILL). The peak RSS is the child's ``ru_maxrss`` from ``os.wait4``. Linux carries
the parent's high-water mark over into a child at ``exec`` (the child starts on the parent's
address space), so the parent must be a small process: this one imports only what it needs
(~12 MiB of peak RSS, carried into every child), far below any application measured. The
result is one JSON object: ``returncode``, ``wall`` (seconds), ``maxrss`` (bytes),
``timed_out``, ``stderr`` (its last 4,000 characters).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

STDERR_TAIL = 4000


def main(argv: list[str]) -> int:
    """Run the command, write the result file; 0 unless the launch itself failed."""
    timeout = 0
    if argv[0] == "--timeout":
        timeout, argv = int(argv[1]), argv[2:]
    result, cmd = argv[0], argv[1:]
    timed_out = False
    with tempfile.TemporaryFile("w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )

        def kill(_signum: int, _frame: FrameType | None) -> None:
            nonlocal timed_out
            timed_out = True
            proc.kill()

        signal.signal(signal.SIGALRM, kill)
        signal.alarm(timeout)  # 0: none
        # Interrupted by the alarm, wait4 is retried (PEP 475) and reaps the killed child.
        _pid, status, usage = os.wait4(proc.pid, 0)
        signal.alarm(0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-STDERR_TAIL:]
    out = {
        "returncode": proc.returncode,
        "wall": wall,
        "maxrss": usage.ru_maxrss * 1024,  # KiB on Linux
        "timed_out": timed_out,
        "stderr": stderr,
    }
    with open(result, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
