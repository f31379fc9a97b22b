"""The overhead section: every workload under every configuration, interleaved rounds."""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field

from _configs import BASELINE, PROFILER_WALL, Config, workload_args
from _report import NA, added_share, fmt, geomean, median, table
from _runner import Outcome, profiler_available, run_driver


@dataclass
class Overhead:
    """Medians per (workload, configuration) and what could not run."""

    workloads: list[str]
    columns: list[str]
    seconds: dict[tuple[str, str], float | None] = field(default_factory=dict)
    spread: dict[tuple[str, str], float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)

    def ratio(self, workload: str, column: str) -> float | None:
        """Median seconds of ``column`` over the untraced median."""
        base = self.seconds.get((workload, BASELINE))
        value = self.seconds.get((workload, column))
        return None if base is None or value is None or base <= 0 else value / base

    def geomean_ratio(self, column: str) -> float | None:
        """Geometric mean of the ratios over all workloads."""
        return geomean(self.ratio(w, column) for w in self.workloads)


def probe(config: Config, env: dict[str, str], sample_rate: int) -> Outcome:
    """Check once that ``config`` can run at all (n/a before the first round, not per run)."""
    if config.profiler:
        reason = profiler_available(env)
        if reason:
            return Outcome("n/a", detail=reason)
    return run_driver(config, ["--task", "probe"], env, sample_rate)


def measure(
    configs: list[Config],
    workloads: list[str],
    size: str,
    rounds: int,
    env: dict[str, str],
    sample_rate: int,
) -> Overhead:
    """Run ``rounds`` rounds; each round runs each workload under each config, rotated."""
    result = Overhead(workloads, [c.name for c in configs])
    active = []
    for config in configs:
        outcome = probe(config, env, sample_rate)
        if outcome.status == "ok":
            active.append(config)
        elif outcome.status == "n/a":
            result.unavailable[config.name] = outcome.detail
        else:
            result.crashes.append(f"{config.name} probe: {outcome.detail}")
    inner: dict[tuple[str, str], list[float]] = defaultdict(list)
    walls: dict[tuple[str, str], list[float]] = defaultdict(list)
    for rnd in range(rounds):
        for workload in workloads:
            shift = rnd % max(1, len(active))
            progress = []
            for config in active[shift:] + active[:shift]:
                args = ["--task", "time", *workload_args(workload, size)]
                outcome = run_driver(config, args, env, sample_rate)
                if outcome.status == "ok":
                    inner[workload, config.name].append(outcome.data["seconds"])
                    walls[workload, config.name].append(outcome.wall)
                    progress.append(f"{config.name}={outcome.data['seconds']:.2f}s")
                else:
                    result.crashes.append(f"{workload} {config.name}: {outcome.detail}")
                    progress.append(f"{config.name}={outcome.status}")
            print(f"  round {rnd + 1}/{rounds} {workload}: {' '.join(progress)}", file=sys.stderr)
    for key, values in inner.items():
        result.seconds[key] = median(values)
        result.spread[key] = max(values) / min(values) if min(values) > 0 else float("inf")
    _add_profiler_wall(result, inner, walls, configs)
    return result


def _add_profiler_wall(
    result: Overhead,
    inner: dict[tuple[str, str], list[float]],
    walls: dict[tuple[str, str], list[float]],
    configs: list[Config],
) -> None:
    """hs-run wall time minus the median start-up (+ exit) of an untraced process."""
    profiler = next((c.name for c in configs if c.profiler), None)
    if profiler is None:
        return
    result.columns.append(PROFILER_WALL)
    startup = median(
        [
            wall - sec
            for w in result.workloads
            for wall, sec in zip(walls[w, BASELINE], inner[w, BASELINE], strict=True)
        ]
    )
    if startup is None:
        return
    for w in result.workloads:
        if walls[w, profiler]:
            result.seconds[w, PROFILER_WALL] = median([x - startup for x in walls[w, profiler]])


def render(ov: Overhead, rounds: int) -> str:
    """The seconds table, the ratio table and the added-time comparison."""
    cols = ov.columns
    secs = [[w, *(fmt(ov.seconds.get((w, c)), ".3f") for c in cols)] for w in ov.workloads]
    ratios = [[w, *(fmt(ov.ratio(w, c), ".2f", "x") for c in cols)] for w in ov.workloads]
    ratios.append(["geomean", *(fmt(ov.geomean_ratio(c), ".2f", "x") for c in cols)])
    spread = [[w, *(fmt(ov.spread.get((w, c)), ".2f", "x") for c in cols)] for w in ov.workloads]
    parts = [
        table(["workload", *cols], secs, f"Median seconds of the workload ({rounds} rounds)"),
        table(["workload", *cols], ratios, "Ratio to untraced (median / untraced median)"),
        table(["workload", *cols], spread, "Noise: slowest / fastest round (1.00x = no spread)"),
        _added_table(ov),
    ]
    if ov.unavailable:
        parts.append("\n".join(f"{n}: {NA} ({why})" for n, why in ov.unavailable.items()))
    return "\n\n".join(parts)


def _added_table(ov: Overhead) -> str:
    """heapscope's added time as a share of the stdlib's, per limit."""
    rows = []
    for w in [*ov.workloads, "geomean"]:
        row = [w]
        for limit in (1, 64):
            if w == "geomean":
                hs, std = (
                    ov.geomean_ratio(f"heapscope-{limit}"),
                    ov.geomean_ratio(f"stdlib-{limit}"),
                )
            else:
                hs, std = ov.ratio(w, f"heapscope-{limit}"), ov.ratio(w, f"stdlib-{limit}")
            row += [
                fmt(None if std is None else std - 1, "+.0%"),
                fmt(None if hs is None else hs - 1, "+.0%"),
                fmt(added_share(hs, std), ".1f", "%"),
            ]
        rows.append(row)
    header = ["workload", "std-1 added", "hs-1 added", "hs/std 1"]
    header += ["std-64 added", "hs-64 added", "hs/std 64"]
    return table(header, rows, "heapscope added time as % of stdlib added time")
