"""heapscope benchmarks: tracing overhead, tracer memory, snapshot speed, sampling accuracy,
parity with the stdlib and the cost on real applications.

Prints tables with the stdlib's tracemalloc beside heapscope. Configurations whose module is
not importable yet are reported as n/a. Exits 1 only if a run crashed; the figures against
the targets of the overhead issue are informational. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _apps
import _inspect
import _native_bench
import _overhead
import _parity
from _configs import CONFIGS, DEFAULT_SAMPLE_RATE, LIVE_OBJECTS, SIZES, workloads
from _report import fmt, table, verdict
from _runner import child_env, heapscope_location

# Issue 11's target on every CPython (issue 3 had 1.8x on 3.11).
LIMIT64_TARGET = 1.5
SECTIONS = ["overhead", "memory", "snapshot", "accuracy", "parity", "apps", "native"]
PARITY_SCALE = {"quick": 1, "full": 4}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds per configuration (default 3)")
    p.add_argument("--quick", action="store_true", help="small sizes (same as --size quick)")
    p.add_argument("--size", choices=list(SIZES), default="full", help="workload sizes")
    p.add_argument("--workloads", help="comma-separated workload names (default: all)")
    p.add_argument("--configs", help="comma-separated configurations (default: all)")
    p.add_argument("--apps", help="comma-separated applications (default: all in apps/)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="bytes/sample")
    p.add_argument("-v", "--verbose", action="store_true", help="per-line accuracy details")
    opts = p.parse_args(argv)
    if opts.quick and opts.size == "full":
        opts.size = "quick"
    if opts.rounds < 1:
        p.error("--rounds must be at least 1")
    return opts


def _select(names: str | None, known: list[str], what: str) -> list[str]:
    if not names:
        return known
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def main(argv: list[str]) -> int:
    """Run the selected sections, print their tables and a summary; 1 if anything crashed."""
    opts = parse_args(argv)
    names = _select(opts.workloads, workloads(), "workloads")
    known_configs = list(dict.fromkeys([*(c.name for c in CONFIGS), *_apps.CONFIGS]))
    config_names = _select(opts.configs, known_configs, "configurations")
    apps = _select(opts.apps, [p.stem for p in _apps.programs()], "applications")
    configs = [c for c in CONFIGS if c.name in config_names]
    sections = _select(opts.sections, SECTIONS, "sections")
    tracers = [t for t in ("stdlib", "heapscope") if any(c.tracer == t for c in configs)]
    env = child_env()
    t0 = time.perf_counter()
    python = sys.version.split()[0]
    print(f"heapscope benchmarks: size={opts.size} rounds={opts.rounds} python={python}")
    print(f"heapscope under test: {heapscope_location(env)}")
    figures: dict[str, float | None] = {}
    crashes: list[str] = []
    ov = None
    if "overhead" in sections:
        ov = _overhead.measure(configs, names, opts.size, opts.rounds, env, opts.sample_rate)
        crashes += ov.crashes
        print("\n" + _overhead.render(ov, opts.rounds))
    n_live = LIVE_OBJECTS[opts.size]
    extra = []
    if "memory" in sections and tracers:
        extra.append(_inspect.memory(tracers, n_live, env))
    if "snapshot" in sections and tracers:
        extra.append(_inspect.snapshot(tracers, n_live, opts.rounds, env))
    if "accuracy" in sections and "hs-sampled" in config_names:
        extra.append(_inspect.accuracy(names, opts.size, opts.sample_rate, env, opts.verbose))
    if "parity" in sections:
        extra.append(_parity.section(env, PARITY_SCALE.get(opts.size, 1)))
    if "apps" in sections:
        app_configs = [c for c in _apps.CONFIGS if c in config_names]
        programs = [p for p in _apps.programs() if p.stem in apps]
        extra.append(_apps.section(env, opts.size, opts.rounds, app_configs, programs))
    native_names = [n for n in _native_bench.WORKLOADS if n in names]
    if "native" in sections and native_names:
        extra.append(_native_bench.section(env, opts.size, opts.rounds, native_names))
    for section in extra:
        print("\n" + section.text)
        figures.update(section.figures)
        crashes += section.crashes
    print("\n" + summary(ov, figures))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    for crash in crashes:
        print(f"CRASH: {crash}", file=sys.stderr)
    return 1 if crashes else 0


def summary(ov: _overhead.Overhead | None, figures: dict[str, float | None]) -> str:
    """The figures against the targets of the overhead issue."""
    g = ov.geomean_ratio if ov else (lambda _c: None)
    share = None
    if ov and (hs := g("heapscope-64")) and (std := g("stdlib-64")) and std > 1:
        share = 100 * (hs - 1) / (std - 1)
    rows = [
        [
            "full tracing, limit 64 (geomean)",
            fmt(g("heapscope-64"), ".2f", "x"),
            f"<= {LIMIT64_TARGET}x",
        ],
        ["hs added / std added, limit 64", fmt(share, ".1f", "%"), "<= 10%"],
        ["traceback limit 1 (geomean)", fmt(g("heapscope-1"), ".2f", "x"), "<= 1.4x"],
        ["sampling (geomean)", fmt(g("hs-sampled"), ".2f", "x"), "<= 1.05x"],
        ["sampling: worst top-10 line, live", fmt(figures.get("worst_error"), ".1%"), "<= 10%"],
        [
            "sampling: worst top-10 line, allocated",
            fmt(figures.get("worst_error_total"), ".1%"),
            "<= 10%",
        ],
        [
            "sampling: worst line with ~sigma <= 5%",
            fmt(figures.get("worst_resolved"), ".1%"),
            "<= 10%",
        ],
        ["tracer B/trace excl. stacks, dense heaps", fmt(figures.get("marginal"), ".1f"), "<= 40"],
        [
            "tracer B/trace excl. stacks, 1 in 8 kept",
            fmt(figures.get("marginal_fragmented"), ".1f"),
            "<= 40",
        ],
        ["snapshot+statistics speedup", fmt(figures.get("speedup"), ".1f", "x"), ">= 10x"],
        ["snapshot statistics mismatches", fmt(figures.get("mismatches"), "d"), "0"],
        ["parity: worst current/peak/run diff", fmt(figures.get("parity_worst"), ".2%"), "<= 1%"],
        ["parity: top-10 lines identical", fmt(figures.get("parity_top_same"), ".0f"), "1"],
        [
            "apps: hs run time, worst program",
            fmt(figures.get("apps_run_time"), ".2f", "x"),
            f"<= {_apps.TIME_TARGET}x",
        ],
        [
            "apps: hs run added RSS / memray's, worst",
            fmt(figures.get("apps_run_vs_memray"), ".2f"),
            f"<= {_apps.RUN_VS_MEMRAY_TARGET}",
        ],
        [
            "apps: hs-64 added RSS / stdlib-64's, worst",
            fmt(figures.get("apps_hs_vs_stdlib"), ".2f"),
            f"<= {_apps.HS_VS_STD_TARGET}",
        ],
        [
            "--native added time / memray --native's, worst",
            fmt(figures.get("native_vs_memray"), ".2f"),
            f"<= {_native_bench.TARGET}",
        ],
    ]
    checks = [
        verdict(g("heapscope-64"), LIMIT64_TARGET),
        verdict(share, 10),
        verdict(g("heapscope-1"), 1.4),
        verdict(g("hs-sampled"), 1.05),
        verdict(figures.get("worst_error"), 0.10),
        verdict(figures.get("worst_error_total"), 0.10),
        verdict(figures.get("worst_resolved"), 0.10),
        verdict(figures.get("marginal"), 40),
        verdict(figures.get("marginal_fragmented"), 40),
        verdict(figures.get("speedup"), 10, higher_is_better=True),
        verdict(figures.get("mismatches"), 0),
        verdict(figures.get("parity_worst"), 0.01),
        verdict(figures.get("parity_top_same"), 1, higher_is_better=True),
        verdict(figures.get("apps_run_time"), _apps.TIME_TARGET),
        verdict(figures.get("apps_run_vs_memray"), _apps.RUN_VS_MEMRAY_TARGET),
        verdict(figures.get("apps_hs_vs_stdlib"), _apps.HS_VS_STD_TARGET),
        verdict(figures.get("native_vs_memray"), _native_bench.TARGET),
    ]
    rows = [[*r, c] for r, c in zip(rows, checks, strict=True)]
    return table(["heapscope target", "measured", "target", "status"], rows, "Summary")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
