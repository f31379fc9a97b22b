"""``--native``: heapscope run --native beside memray run --native, on a numpy-heavy and a
pure-Python workload.

Each round runs every configuration once, in turn (so the machine's load hits them alike), in a
fresh process started by the small launcher (`_apps_launch.py`) that measures its wall time and
peak RSS. Printed: the median wall time per configuration, the time each tracer adds over the
untraced median, heapscope's added time as a share of memray's (issue 13 aims at 0.5 or less),
and the peak RSS each configuration adds over the untraced run's (median).
memray without ``--trace-python-allocators`` sees pymalloc's arenas, not every Python object,
while heapscope run traces every Python allocation too: the columns without ``--native`` show
what each tool costs before native tracing; ``memray --native --trace-python-allocators`` is the
like-for-like configuration (every Python allocation and every malloc, with native stacks), and
its ratio is printed beside the one the target is about.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _apps import LAUNCH
from _configs import workload_args
from _inspect import Section
from _report import fmt, median, table

WORKLOADS = ["numpy_arrays", "records"]
UNTRACED, HS_RUN, HS_NATIVE, MEMRAY, MEMRAY_NATIVE, MEMRAY_NATIVE_PY = (
    "untraced",
    "hs-run",
    "hs-run --native",
    "memray",
    "memray --native",
    "memray --native --trace-python-allocators",
)
CONFIGS = [UNTRACED, HS_RUN, HS_NATIVE, MEMRAY, MEMRAY_NATIVE, MEMRAY_NATIVE_PY]
TARGET = 0.5
MIB = 2**20
TIMEOUT_S = 900


def command(config: str, script_args: list[str], capture: Path) -> list[str]:
    """The command line of one configuration."""
    py = sys.executable
    if config == UNTRACED:
        return [py, *script_args]
    if config in (HS_RUN, HS_NATIVE):
        native = ["--native"] if config == HS_NATIVE else []
        return [py, "-m", "heapscope", "run", *native, "-o", str(capture), *script_args]
    native = {
        MEMRAY_NATIVE: ["--native"],
        MEMRAY_NATIVE_PY: ["--native", "--trace-python-allocators"],
    }.get(config, [])
    return [py, "-m", "memray", "run", *native, "-q", "-f", "-o", str(capture), *script_args]


def run_once(config: str, script_args: list[str], env: dict[str, str]) -> tuple[float, float] | str:
    """Wall seconds and peak RSS (bytes) of one run, or why it failed."""
    with tempfile.TemporaryDirectory(prefix="hsnative-") as tmp:
        result = Path(tmp) / "launch.json"
        cmd = [sys.executable, str(LAUNCH), "--timeout", str(TIMEOUT_S), str(result)]
        cmd += command(config, script_args, Path(tmp) / "cap")
        subprocess.run(cmd, env=env, cwd=tmp, timeout=TIMEOUT_S + 60, check=True)
        launch = json.loads(result.read_text())
        if launch.get("returncode") != 0:
            tail = "\n".join(str(launch.get("stderr", "")).strip().splitlines()[-6:])
            return f"exit {launch.get('returncode')}: {tail}"
        return float(launch["wall"]), float(launch["maxrss"])


def available(env: dict[str, str]) -> bool:
    """True if memray can be imported (the bench extra)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import memray"], env=env, capture_output=True, check=False
    )
    return proc.returncode == 0


def section(
    env: dict[str, str], size: str, rounds: int, workloads: list[str] | None = None
) -> Section:
    """Measure and render the section, on ``workloads`` (default: all of ``WORKLOADS``)."""
    configs = CONFIGS if available(env) else [UNTRACED, HS_RUN, HS_NATIVE]
    crashes: list[str] = []
    rows = []
    rss_rows = []
    figures: dict[str, float | None] = {}
    worst: float | None = None
    for name in WORKLOADS if workloads is None else workloads:
        args = workload_args(name, size)
        walls: dict[str, list[float]] = {c: [] for c in configs}
        rss: dict[str, list[float]] = {c: [] for c in configs}
        for _ in range(rounds):
            for config in configs:
                got = run_once(config, args, env)
                if isinstance(got, str):
                    crashes.append(f"native/{name}/{config}: {got}")
                else:
                    walls[config].append(got[0])
                    rss[config].append(got[1])
        med = {c: median(walls[c]) for c in configs}
        rss_med = {c: median(rss[c]) for c in configs}
        rss_base = rss_med[UNTRACED]
        rss_rows.append(
            [
                name,
                fmt(None if rss_base is None else rss_base / MIB, ".1f", " MiB"),
                *(
                    fmt(
                        None if v is None or rss_base is None else (v - rss_base) / MIB,
                        "+.1f",
                        " MiB",
                    )
                    for v in (rss_med[c] for c in configs[1:])
                ),
            ]
        )
        base = med[UNTRACED]

        def added(config: str, med: dict[str, float | None] = med, base: float | None = base):
            value = med.get(config)
            return None if value is None or base is None else value - base

        share = like = None
        hs, mem, mem_py = added(HS_NATIVE), added(MEMRAY_NATIVE), added(MEMRAY_NATIVE_PY)
        if hs is not None and mem is not None and mem > 0:
            share = hs / mem
            worst = share if worst is None else max(worst, share)
        if hs is not None and mem_py is not None and mem_py > 0:
            like = hs / mem_py
        rows.append(
            [
                name,
                *(fmt(med[c], ".2f", " s") for c in configs),
                *(fmt(added(c), "+.2f", " s") for c in configs[1:]),
                fmt(share, ".2f"),
                fmt(like, ".2f"),
            ]
        )
    figures["native_vs_memray"] = worst
    header = [
        "workload",
        *(f"{c} (median)" for c in configs),
        *(f"{c} added" for c in configs[1:]),
        "hs --native added / memray --native added",
        "... / memray --native --trace-python-allocators added",
    ]
    text = table(header, rows, f"--native beside memray --native ({rounds} rounds, size {size})")
    rss_header = ["workload", "untraced peak RSS", *(f"{c} added" for c in configs[1:])]
    text += "\n" + table(rss_header, rss_rows, "Peak RSS added over the untraced run (median)")
    return Section(text, figures, crashes)
