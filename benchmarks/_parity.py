"""Parity with the stdlib on real-library programs (`benchmarks/parity/*.py`).

Each program runs in fresh interpreters: under the stdlib's tracemalloc and heapscope's (one
frame, imports included, `gc.collect()` at the end; `parity/measure.py`), and under `heapscope
run`. Printed side by side: current and peak traced bytes, whether the top-10 lines are the
same, and the capture's peak against the stdlib's. The test suite runs the same comparison at
small sizes (`tests/integration/test_realapp_parity.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _inspect import Section
from _report import fmt, table

PARITY_DIR = Path(__file__).resolve().parent / "parity"
MEASURE = PARITY_DIR / "measure.py"


def programs() -> list[Path]:
    """The real-library programs, by name."""
    return sorted(p for p in PARITY_DIR.glob("*.py") if p.name != "measure.py")


def _env(env: dict[str, str], scale: int) -> dict[str, str]:
    # Same string hashes in both interpreters, so sets and dicts grow alike.
    return {**env, "PYTHONHASHSEED": "0", "PARITY_SCALE": str(scale)}


def _python(args: list[str], env: dict[str, str], what: str, cwd: str | None = None) -> str:
    """Run `python ARGS` in a fresh interpreter; its output, or RuntimeError naming `what`."""
    proc = subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def traced(tracer: str, program: Path, env: dict[str, str], scale: int = 1) -> dict[str, Any]:
    """`parity/measure.py`'s figures for one tracer ("stdlib" or "heapscope")."""
    out = _python(
        [str(MEASURE), tracer, str(program)], _env(env, scale), f"{tracer} {program.name}"
    )
    result: dict[str, Any] = json.loads(out)
    return result


def run_peak(program: Path, env: dict[str, str], scale: int = 1) -> int:
    """The peak traced bytes of a `heapscope run` capture of the program (one frame)."""
    with tempfile.TemporaryDirectory() as tmp:
        capture = str(Path(tmp) / "parity.hsc")
        run = ["-m", "heapscope", "run", "--trace-limit", "1", "-o", capture, str(program)]
        _python(run, _env(env, scale), f"heapscope run {program.name}", cwd=tmp)
        report = ["-m", "heapscope", "report", capture, "--json"]
        out = _python(report, env, f"heapscope report {program.name}")
        peak: int = json.loads(out)["meta"]["peak_bytes"]
        return peak


@dataclass
class Parity:
    """One program's figures under both tracers."""

    program: str
    stdlib: dict[str, Any]
    heapscope: dict[str, Any]
    run_peak: int

    def error(self, key: str) -> float:
        """Relative difference of heapscope's figure from the stdlib's."""
        std, hs = self.stdlib[key], self.heapscope[key]
        return abs(hs - std) / std if std else float(hs != 0)

    def run_error(self) -> float:
        """Relative difference of the capture's peak from the stdlib's peak."""
        return abs(self.run_peak - self.stdlib["peak"]) / self.stdlib["peak"]

    def top_lines(self, tracer: str) -> list[tuple[str, int]]:
        """The top-10 lines (file, line) in order."""
        return [(f, n) for f, n, _size, _count in getattr(self, tracer)["top"]]

    def same_top(self) -> bool:
        """Whether both tracers name the same top-10 lines in the same order."""
        return self.top_lines("stdlib") == self.top_lines("heapscope")


def compare(program: Path, env: dict[str, str], scale: int = 1) -> Parity:
    """Run the program under both tracers (and `heapscope run`) and pair the figures."""
    std = traced("stdlib", program, env, scale)
    hs = traced("heapscope", program, env, scale)
    return Parity(program.stem, std, hs, run_peak(program, env, scale))


def section(env: dict[str, str], scale: int) -> Section:
    """The parity table of `make bench`."""
    rows, crashes = [], []
    worst: float = 0.0
    all_same = True
    for program in programs():
        try:
            p = compare(program, env, scale)
        except (RuntimeError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
            crashes.append(str(exc))
            rows.append([program.stem, *(["crash"] * 8)])
            continue
        worst = max(worst, p.error("current"), p.error("peak"), p.run_error())
        all_same &= p.same_top()
        rows.append(
            [
                p.program,
                f"{p.stdlib['current']:,}",
                f"{p.heapscope['current']:,}",
                fmt(p.error("current"), ".2%"),
                f"{p.stdlib['peak']:,}",
                f"{p.heapscope['peak']:,}",
                fmt(p.error("peak"), ".2%"),
                "same" if p.same_top() else "DIFFER",
                f"{p.run_peak:,} ({fmt(p.run_error(), '.2%')})",
            ]
        )
    header = [
        "program",
        "current std",
        "current hs",
        "diff",
        "peak std",
        "peak hs",
        "diff",
        "top-10 lines",
        "hs run peak (diff)",
    ]
    title = "Parity with the stdlib on real-library programs (start(1), imports included)"
    text = table(header, rows, title)
    figures = {"parity_worst": worst, "parity_top_same": 1.0 if all_same else 0.0}
    return Section(text, figures, crashes)
