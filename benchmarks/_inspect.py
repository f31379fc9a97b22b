"""Sections that inspect the tracer: memory per trace, snapshot speed, sampling accuracy."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from _configs import Config, workload_args
from _report import NA, fmt, median, table
from _runner import run_driver

STDLIB, HEAPSCOPE = "stdlib", "heapscope"
TOP_LINES = 10
ACCURACY_TOLERANCE = 0.10


@dataclass
class Section:
    """A rendered section, the figures the summary checks, and crash descriptions."""

    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)


def memory(tracers: list[str], n_objects: int, env: dict[str, str]) -> Section:
    """Tracer memory per live trace with ``n_objects`` small objects alive, per tracer/limit."""
    rows, out = [], Section("")
    for nframe in (1, 64):
        for tracer in tracers:
            args = ["--task", "memory", "--size", str(n_objects)]
            res = run_driver(Config(tracer, tracer, nframe), args, env, 0)
            if res.status == "crash":
                out.crashes.append(f"memory {tracer} nframe={nframe}: {res.detail}")
            d = res.data if res.status == "ok" else {}
            rows.append(
                [
                    f"{tracer}-{nframe}",
                    fmt(d.get("traces"), ",d"),
                    fmt(d["tracer_bytes"] / 2**20 if d else None, ".1f"),
                    fmt(d.get("total_per_trace"), ".1f"),
                    fmt(d.get("marginal_per_trace"), ".1f"),
                ]
            )
            if tracer == HEAPSCOPE and nframe == 64 and d:
                out.figures["marginal"] = d["marginal_per_trace"]
    header = ["tracer", "live traces", "tracer MiB", "B/trace", "B/trace excl. stacks"]
    title = (
        f"Tracer memory: get_tracemalloc_memory() with {n_objects:,} small objects alive "
        "(excl. stacks = growth per extra trace once its stack is interned)"
    )
    out.text = table(header, rows, title)
    return out


def snapshot(tracers: list[str], n_objects: int, rounds: int, env: dict[str, str]) -> Section:
    """take_snapshot() + statistics("lineno") seconds (interleaved rounds) and equality."""
    out = Section("")
    seconds: dict[str, list[float]] = {t: [] for t in tracers}
    stats: dict[str, list[list[int]]] = {}
    traces: dict[str, int] = {}
    for rnd in range(rounds):
        for tracer in tracers[rnd % len(tracers) :] + tracers[: rnd % len(tracers)]:
            args = ["--task", "snapshot", "--size", str(n_objects)]
            res = run_driver(Config(tracer, tracer, 1), args, env, 0)
            if res.status == "crash":
                out.crashes.append(f"snapshot {tracer}: {res.detail}")
            if res.status != "ok":
                continue
            seconds[tracer].append(res.data["seconds"])
            stats.setdefault(tracer, res.data["stats"])
            traces[tracer] = res.data["traces"]
    med = {t: median(v) for t, v in seconds.items()}
    base = med.get(STDLIB)
    rows = []
    for t in tracers:
        speedup = None if base is None or not med[t] else base / med[t]
        rows.append([t, fmt(traces.get(t), ",d"), fmt(med[t], ".3f"), fmt(speedup, ".1f", "x")])
    hs = med.get(HEAPSCOPE)
    out.figures["speedup"] = None if base is None or not hs else base / hs
    title = (
        f"take_snapshot() + statistics('lineno'), ~{n_objects:,} live traces, traceback limit 1 "
        f"(median of {rounds})"
    )
    out.text = table(["tracer", "live traces", "seconds", "speedup"], rows, title)
    if STDLIB in stats and HEAPSCOPE in stats:
        bad, total = _mismatches(stats[STDLIB], stats[HEAPSCOPE])
        out.figures["mismatches"] = bad
        out.text += f"\nstatistics identical on the generated lines: {bad} of {total} differ"
    else:
        out.text += f"\nstatistics identical on the generated lines: {NA}"
    return out


def expected_error(size: int, count: int, rate: int) -> float:
    """Relative standard deviation of a Poisson-sampled estimate of a line's bytes.

    Each allocation of ``s`` bytes is sampled with probability ``p = 1 - exp(-s / rate)`` and
    counted as ``s / p``; assuming the line's ``count`` allocations all have the mean size, the
    variance is ``count * s**2 * (1 - p) / p``. For ``s`` much below ``rate`` this is about
    ``sqrt(rate / size)``.
    """
    mean = size / count
    p = -math.expm1(-mean / rate)
    return math.sqrt((1 - p) / (count * p))


def _mismatches(a: list[list[int]], b: list[list[int]]) -> tuple[int, int]:
    """Lines whose (size, count) differ or that only one side has; and all lines."""
    da = {line: (size, count) for line, size, count in a}
    db = {line: (size, count) for line, size, count in b}
    lines = set(da) | set(db)
    return sum(da.get(x) != db.get(x) for x in lines), len(lines)


def accuracy(
    workloads: list[str], size: str, sample_rate: int, env: dict[str, str], verbose: bool
) -> Section:
    """Sampled estimates of each workload's top-10 lines against exact stdlib figures."""
    out = Section("")
    exact_cfg, sampled_cfg = (
        Config("stdlib-1", STDLIB, 1),
        Config("hs-sampled", HEAPSCOPE, 64, True),
    )
    rows, details, worst_all = [], [], 0.0
    for w in workloads:
        args = ["--task", "lines", *workload_args(w, size)]
        sampled = run_driver(sampled_cfg, args, env, sample_rate)
        if sampled.status == "n/a":
            out.text = f"Sampling accuracy: {NA} ({sampled.detail})"
            return out
        exact = run_driver(exact_cfg, args, env, sample_rate)
        for name, res in (("exact", exact), ("sampled", sampled)):
            if res.status == "crash":
                out.crashes.append(f"accuracy {w} {name}: {res.detail}")
        if exact.status != "ok" or sampled.status != "ok":
            rows.append([w, NA, NA, NA, NA, NA])
            worst_all = math.nan
            continue
        top = sorted(exact.data["stats"], key=lambda s: -s[1])[:TOP_LINES]
        est = {line: size_ for line, size_, _ in sampled.data["stats"]}
        errs = [abs(est.get(line, 0) - exact_b) / exact_b for line, exact_b, _ in top]
        sigma = [expected_error(b, count, sample_rate) for _, b, count in top]
        worst_all = max(worst_all, *errs)
        within = sum(e <= ACCURACY_TOLERANCE for e in errs)
        rows.append(
            [
                w,
                f"{sum(b for _, b, _ in top) / 2**20:.1f}",
                f"{max(errs):.1%}",
                f"{median(errs):.1%}",
                f"{within}/{len(top)}",
                f"{max(sigma):.0%}",
            ]
        )
        details += [
            f"  {w}:{line}  exact {b:,}  est {est.get(line, 0):,}  err {e:.1%}  ~sigma {s:.0%}"
            for (line, b, _), e, s in zip(top, errs, sigma, strict=True)
        ]
    out.figures["worst_error"] = None if math.isnan(worst_all) else worst_all
    header = ["workload", "top-10 MiB", "worst err", "median err", "within 10%", "worst ~sigma"]
    title = (
        f"Sampling accuracy: live bytes per line when main() returns, sample rate {sample_rate:,} B"
        "\n(exact = stdlib; ~sigma = the expected relative error of a line's estimate, see"
        " expected_error())"
    )
    out.text = table(header, rows, title)
    if verbose and details:
        out.text += "\n" + "\n".join(details)
    return out
