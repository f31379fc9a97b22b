"""Applications: import-heavy real programs (`benchmarks/apps/*.py`) under every tracer.

Each program runs, per round, untraced, under `heapscope run` (64 frames), under
`heapscope.tracemalloc.start(64)` and the stdlib's `tracemalloc.start(64)` (`_apps_trace.py`),
and under `memray run --trace-python-allocators`, each in a fresh process started by a fresh,
small parent (`_apps_launch.py`) that measures its wall time and peak RSS. Printed: time over
untraced, peak RSS added over untraced, capture-file sizes, and `get_tracemalloc_memory()`
beside the process's RSS for the in-process tracers; then the targets of issue 16.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _configs import BENCH_DIR
from _inspect import Section
from _report import NA, fmt, median, table, verdict

APPS_DIR = BENCH_DIR / "apps"
LAUNCH = BENCH_DIR / "_apps_launch.py"
TRACE = BENCH_DIR / "_apps_trace.py"
NFRAME = 64
EXIT_NA = 3
TIMEOUT_S = 1800
MIB = 2**20

UNTRACED, HS_RUN, HS_RUN_NOCACHE, HS_64, STD_64, MEMRAY = (
    "untraced",
    "hs-run",
    "hs-run-nocache",
    "heapscope-64",
    "stdlib-64",
    "memray",
)
CONFIGS = [UNTRACED, HS_RUN, HS_RUN_NOCACHE, HS_64, STD_64, MEMRAY]
# hs-run with the stack-walk cache (on by default, 3.13-3.15) off; the same as hs-run elsewhere.
ENV = {HS_RUN_NOCACHE: {"HEAPSCOPE_FRAME_CACHE": "0"}}
IN_PROCESS = {UNTRACED: "none", HS_64: "heapscope", STD_64: "stdlib"}
# What each tool needs importable; probed once before the first round (else the column is n/a).
PROBES = {
    HS_RUN: "import heapscope.cli.run",
    HS_RUN_NOCACHE: "import heapscope.cli.run",
    HS_64: "import heapscope.tracemalloc",
    MEMRAY: "import memray",
}
# The programs' argv[1] per --size (None: each program's default, ~1-3 s untraced).
APP_ARGS: dict[str, str | None] = {"full": None, "quick": "1", "tiny": "1"}
# Issue 16: heapscope run's time over untraced, heapscope.tracemalloc(64)'s added RSS over the
# stdlib's, heapscope run's added RSS over memray's.
TIME_TARGET = 1.5
HS_VS_STD_TARGET = 0.5
RUN_VS_MEMRAY_TARGET = 1.0


def programs(directory: Path = APPS_DIR) -> list[Path]:
    """The application programs in ``directory``, sorted by name."""
    return sorted(directory.glob("*.py"))


def command(config: str, program: Path, args: list[str], result: Path, capture: Path) -> list[str]:
    """The command line that runs ``program`` under ``config``."""
    py = sys.executable
    if config in IN_PROCESS:
        return [py, str(TRACE), IN_PROCESS[config], str(NFRAME), str(result), str(program), *args]
    if config in (HS_RUN, HS_RUN_NOCACHE):
        limit = ["--trace-limit", str(NFRAME)]
        return [py, "-m", "heapscope", "run", *limit, "-o", str(capture), str(program), *args]
    if config == MEMRAY:
        opts = ["--trace-python-allocators", "-q", "-f", "-o", str(capture)]
        return [py, "-m", "memray", "run", *opts, str(program), *args]
    raise ValueError(f"unknown configuration {config!r}")


@dataclass
class Run:
    """One measured process: wall seconds, peak RSS, and what the tracer reported."""

    wall: float
    maxrss: int
    capture: int | None = None
    tracer_memory: int | None = None
    rss: int | None = None


@dataclass
class Outcome:
    """``status`` is "ok" (with ``run``), "n/a" or "crash" (with ``detail``)."""

    status: str
    run: Run | None = None
    detail: str = ""


def outcome(launch: dict[str, Any], trace: dict[str, Any] | None, capture: int | None) -> Outcome:
    """Classify one process from the launcher's result, the tracer's result and the capture."""
    code = launch.get("returncode")
    if code == EXIT_NA and trace is not None and trace.get("status") == "n/a":
        return Outcome("n/a", detail=str(trace.get("reason", "")))
    if launch.get("timed_out"):
        return Outcome("crash", detail=f"timed out after {TIMEOUT_S} s")
    if code != 0 or (trace is not None and trace.get("status") != "ok"):
        tail = "\n".join(str(launch.get("stderr", "")).strip().splitlines()[-8:])
        return Outcome("crash", detail=f"exit {code}\n{tail}")
    trace = trace or {}
    run = Run(
        wall=float(launch["wall"]),
        maxrss=int(launch["maxrss"]),
        capture=capture,
        tracer_memory=trace.get("tracer_memory"),
        rss=trace.get("rss"),
    )
    return Outcome("ok", run)


def run_once(config: str, program: Path, args: list[str], env: dict[str, str]) -> Outcome:
    """Run ``program`` once under ``config`` from a fresh launcher process."""
    with tempfile.TemporaryDirectory(prefix="hsapps-") as tmp:
        launched, result, capture = (Path(tmp) / n for n in ("launch.json", "trace.json", "cap"))
        cmd = [
            sys.executable,
            str(LAUNCH),
            "--timeout",
            str(TIMEOUT_S),
            str(launched),
            *command(config, program, args, result, capture),
        ]
        try:
            # The launcher kills the program at TIMEOUT_S; this one is only a backstop.
            run_env = {**env, **ENV.get(config, {})}
            subprocess.run(cmd, env=run_env, cwd=tmp, timeout=TIMEOUT_S + 60, check=True)
        except subprocess.TimeoutExpired:
            return Outcome("crash", detail=f"launcher hung: {' '.join(cmd)}")
        except subprocess.CalledProcessError as exc:
            return Outcome("crash", detail=f"launcher failed ({exc.returncode}): {' '.join(cmd)}")
        launch = json.loads(launched.read_text())
        trace = json.loads(result.read_text()) if result.exists() else None
        if config in IN_PROCESS and trace is None and launch.get("returncode") == 0:
            return Outcome("crash", detail=f"no result from {' '.join(cmd)}")
        size = capture.stat().st_size if capture.exists() else None
        return outcome(launch, trace if config in IN_PROCESS else None, size)


def probe(config: str, env: dict[str, str]) -> str:
    """Empty if ``config``'s tool can be imported, else why not."""
    code = PROBES.get(config)
    if code is None:
        return ""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return ""
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


@dataclass
class AppResult:
    """Every run of one program, per configuration, and why a configuration did not run."""

    app: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    unavailable: dict[str, str] = field(default_factory=dict)

    def _median(self, config: str, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs.get(config, [])]
        return median([v for v in values if v is not None])

    def wall(self, config: str) -> float | None:
        """Median wall seconds."""
        return self._median(config, "wall")

    def maxrss_mib(self, config: str) -> float | None:
        """Median peak RSS in MiB."""
        value = self._median(config, "maxrss")
        return None if value is None else value / MIB

    def ratio(self, config: str) -> float | None:
        """Median wall time over the untraced median."""
        base, value = self.wall(UNTRACED), self.wall(config)
        return None if base is None or value is None or base <= 0 else value / base

    def added_rss(self, config: str) -> float | None:
        """Median peak RSS over the untraced median, in MiB."""
        base, value = self.maxrss_mib(UNTRACED), self.maxrss_mib(config)
        return None if base is None or value is None else value - base

    def mib(self, config: str, attr: str) -> float | None:
        """Median of ``capture``, ``tracer_memory`` or ``rss`` in MiB."""
        value = self._median(config, attr)
        return None if value is None else value / MIB

    def added_over(self, config: str, other: str) -> float | None:
        """``config``'s added RSS over ``other``'s (None unless ``other`` added some)."""
        mine, theirs = self.added_rss(config), self.added_rss(other)
        return None if mine is None or theirs is None or theirs <= 0 else mine / theirs


def measure(
    apps: list[Path], configs: list[str], app_args: list[str], rounds: int, env: dict[str, str]
) -> tuple[list[AppResult], list[str]]:
    """Run ``rounds`` rounds: each program under each configuration, order rotated per round.

    The untraced run always comes first in the configurations (it is the baseline); a program
    whose untraced run reports n/a (a module it needs is missing) is not run further.
    """
    crashes: list[str] = []
    active = [UNTRACED, *(c for c in configs if c != UNTRACED)]
    results = [AppResult(p.stem) for p in apps]
    for config in active[1:]:
        reason = probe(config, env)
        if reason:
            for r in results:
                r.unavailable[config] = reason
    for rnd in range(rounds):
        for program, res in zip(apps, results, strict=True):
            if UNTRACED in res.unavailable:
                continue
            todo = [c for c in active if c not in res.unavailable]
            shift = rnd % len(todo)
            progress = []
            for config in todo[shift:] + todo[:shift]:
                out = run_once(config, program, app_args, env)
                if out.status == "ok" and out.run is not None:
                    res.runs[config].append(out.run)
                    progress.append(f"{config}={out.run.wall:.2f}s/{out.run.maxrss / MIB:.0f}MiB")
                elif out.status == "n/a":
                    res.unavailable[config] = out.detail
                    progress.append(f"{config}=n/a")
                else:
                    crashes.append(f"apps {program.stem} {config}: {out.detail}")
                    progress.append(f"{config}=crash")
                if UNTRACED in res.unavailable:  # first in round 1: the program cannot run
                    break
            print(
                f"  round {rnd + 1}/{rounds} {program.stem}: {' '.join(progress)}", file=sys.stderr
            )
    return results, crashes


def _cell(res: AppResult, config: str) -> str:
    if config in res.unavailable or not res.runs.get(config):
        return NA
    if config == UNTRACED:
        wall, rss = res.wall(UNTRACED), res.maxrss_mib(UNTRACED)
        return f"{fmt(wall, '.2f', ' s')}, {fmt(rss, '.0f', ' MiB')}"
    return f"{fmt(res.ratio(config), '.2f', 'x')}, {fmt(res.added_rss(config), '+.0f', ' MiB')}"


def _tracer_cell(res: AppResult, config: str) -> str:
    if config in res.unavailable or config not in res.runs:
        return NA
    return f"{fmt(res.mib(config, 'tracer_memory'), '.1f')} / {fmt(res.mib(config, 'rss'), '.1f')}"


def render(results: list[AppResult], configs: list[str], rounds: int) -> str:
    """The applications' tables: cost, capture and tracer memory, issue-16 targets."""
    shown = [UNTRACED, *(c for c in configs if c != UNTRACED)]
    cost = [[r.app, *(_cell(r, c) for c in shown)] for r in results]
    rounds_text = "1 round" if rounds == 1 else f"median of {rounds} rounds"
    title = (
        "Applications: wall time over untraced, peak RSS added over untraced"
        f" ({rounds_text}, each run a fresh process)"
    )
    out = [table(["program", *shown], cost, title)]
    memory = [
        [
            r.app,
            fmt(r.mib(HS_RUN, "capture"), ".1f"),
            fmt(r.mib(MEMRAY, "capture"), ".1f"),
            _tracer_cell(r, HS_64),
            _tracer_cell(r, STD_64),
        ]
        for r in results
    ]
    header = [
        "program",
        "hs-run capture",
        "memray capture",
        "heapscope-64 tracer / RSS",
        "stdlib-64 tracer / RSS",
    ]
    title = "Applications: capture files; get_tracemalloc_memory() / RSS at the end (MiB)"
    out.append(table(header, memory, title))
    targets = [target_row(r) for r in results]
    out.append(table(TARGET_HEADER, targets, "Applications: issue 16 targets"))
    reasons = {f"{c}: {why}" for r in results for c, why in r.unavailable.items()}
    text = "\n\n".join(out)
    return text + "".join(f"\n(n/a {why})" for why in sorted(reasons))


TARGET_HEADER = [
    "program",
    "hs-run added RSS <= memray's",
    f"hs-run time <= {TIME_TARGET}x",
    "heapscope-64 added RSS <= stdlib-64's / 2",
]


def target_row(res: AppResult) -> list[str]:
    """One program's figures against the targets of issue 16, each with ok / MISS / n/a."""
    run_rss, memray_rss = res.added_rss(HS_RUN), res.added_rss(MEMRAY)
    hs_rss, std_rss = res.added_rss(HS_64), res.added_rss(STD_64)
    time = res.ratio(HS_RUN)
    rss_ok = verdict(None if run_rss is None or memray_rss is None else run_rss - memray_rss, 0)
    hs_ok = verdict(None if hs_rss is None or std_rss is None else hs_rss - std_rss / 2, 0)
    return [
        res.app,
        f"{fmt(run_rss, '+.0f')} vs {fmt(memray_rss, '+.0f')} MiB {rss_ok}",
        f"{fmt(time, '.2f', 'x')} {verdict(time, TIME_TARGET)}",
        f"{fmt(hs_rss, '+.0f')} vs {fmt(std_rss, '+.0f')} MiB {hs_ok}",
    ]


def _worst(values: list[float | None]) -> float | None:
    """The largest value, or None if any is missing (a target must hold on every program)."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def figures(results: list[AppResult]) -> dict[str, float | None]:
    """The summary's figures: the worst program for each target of issue 16."""
    return {
        "apps_run_time": _worst([r.ratio(HS_RUN) for r in results]),
        "apps_run_vs_memray": _worst([r.added_over(HS_RUN, MEMRAY) for r in results]),
        "apps_hs_vs_stdlib": _worst([r.added_over(HS_64, STD_64) for r in results]),
    }


def section(
    env: dict[str, str],
    size: str,
    rounds: int,
    configs: list[str] | None = None,
    apps: list[Path] | None = None,
) -> Section:
    """The applications section of `make bench`."""
    chosen = configs or CONFIGS
    apps = programs() if apps is None else apps
    arg = APP_ARGS.get(size)
    load = os.getloadavg()[0]
    results, crashes = measure(apps, chosen, [] if arg is None else [arg], rounds, env)
    text = render(results, chosen, rounds)
    # Tracing suffers more than untraced runs from other processes: a busy machine must show.
    cores = os.cpu_count() or 1
    text += (
        f"\n(1-min load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; {cores} cores)"
    )
    return Section(text, figures(results), crashes)
