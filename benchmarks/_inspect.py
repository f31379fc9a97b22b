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
RESOLVED_SIGMA = 0.05


@dataclass
class Section:
    """A rendered section, the figures the summary checks, and crash descriptions."""

    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)


MEMORY_KINDS = {
    "memory": "object()",
    "memory-mixed": "mixed sizes",
    "memory-fragmented": "mixed, 1 in 8 kept",
}


def memory(tracers: list[str], n_objects: int, env: dict[str, str]) -> Section:
    """Tracer memory per live trace with ``n_objects`` small objects alive, per tracer/limit.

    Three heaps: ``object()`` (16-byte blocks), blocks of every pymalloc size class, and the
    same with seven in eight freed (pools left 1/8 full: heapscope's pool records cost 4 bytes
    per block a pool can hold, so sparse pools cost more per live block).
    """
    rows, out = [], Section("")
    worst: dict[str, float] = {}
    for task, kind in MEMORY_KINDS.items():
        for nframe in (1, 64):
            for tracer in tracers:
                args = ["--task", task, "--size", str(n_objects)]
                res = run_driver(Config(tracer, tracer, nframe), args, env, 0)
                if res.status == "crash":
                    out.crashes.append(f"{task} {tracer} nframe={nframe}: {res.detail}")
                d = res.data if res.status == "ok" else {}
                rows.append(
                    [
                        kind,
                        f"{tracer}-{nframe}",
                        fmt(d.get("traces"), ",d"),
                        fmt(d["tracer_bytes"] / 2**20 if d else None, ".1f"),
                        fmt(d.get("total_per_trace"), ".1f"),
                        fmt(d.get("marginal_per_trace"), ".1f"),
                    ]
                )
                if tracer == HEAPSCOPE and d:
                    key = "marginal_fragmented" if task == "memory-fragmented" else "marginal"
                    worst[key] = max(worst.get(key, 0.0), d["marginal_per_trace"])
    out.figures["marginal"] = worst.get("marginal")
    out.figures["marginal_fragmented"] = worst.get("marginal_fragmented")
    header = ["heap", "tracer", "live traces", "tracer MiB", "B/trace", "B/trace excl. stacks"]
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


def _compare(
    exact: list[list[Any]], estimated: list[list[Any]], sample_rate: int
) -> tuple[list[Any], list[tuple[int, int, int, float, float]]]:
    """Errors of the estimates of the top-10 lines by exact bytes: a table row tail and details."""
    top = sorted(exact, key=lambda s: -s[1])[:TOP_LINES]
    est = {line: size_ for line, size_, _ in estimated}
    errs = [abs(est.get(line, 0) - b) / b for line, b, _ in top]
    sigma = [expected_error(b, count, sample_rate) for _, b, count in top]
    within = sum(e <= ACCURACY_TOLERANCE for e in errs)
    # Lines with enough bytes for the sampler to resolve them (expected error <= 5%): their
    # errors show whether the estimates are right, not just how much sampling noise there is.
    resolved = [e for e, sg in zip(errs, sigma, strict=True) if sg <= RESOLVED_SIGMA]
    row = [
        f"{sum(b for _, b, _ in top) / 2**20:.1f}",
        f"{max(errs):.1%}",
        f"{median(errs):.1%}",
        f"{within}/{len(top)}",
        f"{max(sigma):.0%}",
        f"{len(resolved)}",
        f"{max(resolved):.1%}" if resolved else "-",
    ]
    details = [
        (line, b, est.get(line, 0), e, sg)
        for (line, b, _), e, sg in zip(top, errs, sigma, strict=True)
    ]
    return row, details


def accuracy(
    workloads: list[str], size: str, sample_rate: int, env: dict[str, str], verbose: bool
) -> Section:
    """Sampled estimates of each workload's top-10 lines against exact figures, two views.

    Live bytes when ``main()`` returns (exact: the stdlib) and bytes allocated over the whole
    run (exact: heapscope tracing every block; the stdlib keeps no such totals).
    """
    out = Section("")
    live_cfg, total_cfg, sampled_cfg = (
        Config("stdlib-1", STDLIB, 1),
        Config("heapscope-1", HEAPSCOPE, 1),
        Config("hs-sampled", HEAPSCOPE, 64, True),
    )
    views: dict[str, tuple[list[list[Any]], list[str], list[float]]] = {
        "stats": ([], [], []),
        "totals": ([], [], []),
    }
    resolved_worst: list[float] = []
    for w in workloads:
        args = ["--task", "lines", *workload_args(w, size)]
        sampled = run_driver(sampled_cfg, args, env, sample_rate)
        if sampled.status == "n/a":
            out.text = f"Sampling accuracy: {NA} ({sampled.detail})"
            return out
        exacts = {
            "stats": run_driver(live_cfg, args, env, sample_rate),
            "totals": run_driver(total_cfg, args, env, sample_rate),
        }
        for name, res in (("sampled", sampled), *exacts.items()):
            if res.status == "crash":
                out.crashes.append(f"accuracy {w} {name}: {res.detail}")
        for key, exact in exacts.items():
            rows, details, worst = views[key]
            if exact.status != "ok" or sampled.status != "ok" or not exact.data.get(key):
                rows.append([w, NA, NA, NA, NA, NA, NA, NA])
                worst.append(math.nan)
                continue
            row, found = _compare(exact.data[key], sampled.data.get(key) or [], sample_rate)
            rows.append([w, *row])
            worst.append(max(e for *_, e, _ in found))
            resolved_worst += [e for *_, e, sg in found if sg <= RESOLVED_SIGMA]
            details += [
                f"  {w}:{line}  exact {b:,}  est {e_b:,}  err {e:.1%}  ~sigma {sg:.0%}"
                for line, b, e_b, e, sg in found
            ]
    header = [
        "workload",
        "top-10 MiB",
        "worst err",
        "median err",
        "within 10%",
        "worst ~sigma",
        "~sigma<=5%",
        "their worst",
    ]
    titles = {
        "stats": "live bytes per line when main() returns (exact = stdlib)",
        "totals": "bytes allocated per line over the run (exact = heapscope tracing every block)",
    }
    parts = []
    for key, (rows, details, worst) in views.items():
        name = "worst_error" if key == "stats" else "worst_error_total"
        out.figures[name] = None if not worst or any(map(math.isnan, worst)) else max(worst)
        parts.append(
            table(header, rows, f"Sampling accuracy: {titles[key]}, sample rate {sample_rate:,} B")
        )
        if verbose and details:
            parts.append("\n".join(details))
    out.figures["worst_resolved"] = max(resolved_worst) if resolved_worst else None
    parts.append(
        "(~sigma = the expected relative error of a line's estimate, see expected_error();"
        " ~sigma<=5% = how many of the top-10 lines hold enough bytes for that, their worst ="
        " the largest error among them)"
    )
    out.text = "\n\n".join(parts)
    return out
