"""Smoke test of an installed heapscope wheel (run by scripts/wheels.sh in a fresh venv).

Exercises the native module through the public API: the drop-in tracemalloc, a capture with
`heapscope run`, and its report; exits non-zero on any failure.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import heapscope
import heapscope.tracemalloc as tracemalloc


def allocate() -> list[bytes]:
    return [bytes(1000) for _ in range(1000)]


def main() -> int:
    assert "site-packages" in heapscope.__file__, heapscope.__file__
    tracemalloc.start(5)
    held = allocate()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = snapshot.statistics("lineno")[0]
    assert top.traceback[0].lineno == allocate.__code__.co_firstlineno + 1, top
    assert top.size >= 1000 * 1000, top
    del held
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "program.py"
        program.write_text("data = [str(i) * 10 for i in range(100_000)]\n")
        capture = Path(tmp) / "out.hsc"
        run = [sys.executable, "-m", "heapscope", "run", "-o", str(capture), str(program)]
        subprocess.run(run, check=True)
        report = [sys.executable, "-m", "heapscope", "report", str(capture)]
        text = subprocess.run(report, check=True, capture_output=True, text=True).stdout
        assert "program.py" in text, text
    print(f"wheel ok: heapscope {heapscope.__version__} on Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
