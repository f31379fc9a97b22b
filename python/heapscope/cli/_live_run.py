"""``heapscope run --live``: the program runs in a child ``heapscope run`` that writes the
capture (flushed every ``LIVE_FLUSH_INTERVAL``), while this process shows the UI over that file.

The program's stdout and stderr go to a file beside the capture (``CAPTURE.out``) so they do not
tear the UI, and its stdin is ``/dev/null`` (the UI reads the keys). ``q`` closes the UI only:
the program runs to its end and the capture is written as by a plain ``heapscope run``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from heapscope.cli._live import require_terminal, run_ui

__all__ = ["LIVE_FLUSH_INTERVAL", "run_live"]

#: Seconds between two flushes of the capture in live mode (the UI redraws 4x a second).
LIVE_FLUSH_INTERVAL = 0.25


def run_live(
    output: Path,
    command: list[str],
    *,
    trace_limit: int,
    sample_rate: int | None,
    native: bool = False,
) -> int:
    """Run ``command`` (script and arguments, or ``-m module ...``) under the UI; return its
    exit status."""
    require_terminal()
    log = output.with_name(output.name + ".out")
    child_args = [sys.executable, "-m", "heapscope", "run", "-o", str(output), "--force"]
    child_args += ["--flush-interval", str(LIVE_FLUSH_INTERVAL)]
    child_args += ["--trace-limit", str(trace_limit)]
    if sample_rate is not None:
        child_args += ["--sample-rate", str(sample_rate)]
    if native:
        child_args.append("--native")
    child_args += command
    with open(log, "wb") as out:
        child = subprocess.Popen(
            child_args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )

    def status() -> str | None:
        code = child.poll()
        return None if code is None else f"program exited with status {code}"

    try:
        run_ui(
            output,
            title=" ".join(command),
            note=f"program output: {log} (pid {child.pid})",
            tick=lambda: None,
            status=status,
        )
        if child.poll() is None:
            print(
                f"heapscope: UI closed; the program (pid {child.pid}) runs on, its output in "
                f"{log}; waiting for it to end (Ctrl-C interrupts it)",
                file=sys.stderr,
            )
        code = child.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the program too: it ends as under a plain run.
        code = child.wait()
    print(
        f"heapscope: program exited with status {code}; capture {output}, its output {log}",
        file=sys.stderr,
    )
    return code
