"""Where the tracer's time goes per allocation: hook, stack walk, interning, table + counters.

Builds heapscope with the ``ablation`` feature (the hot path stops after a stage chosen by
``HEAPSCOPE_ABLATION``) into a scratch directory, then times each workload untraced and at each
stage, interleaved, median of ``--rounds``. Prints ns per allocation for each stage's increment.

    python benchmarks/ablation.py [--rounds 5] [--limit 64] [workload.py ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["hook", "+stack walk", "+interning", "+table, counters"]

DRIVER = """
import os, runpy, sys, time, io, contextlib
stage, limit, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = [path]
if stage != "none":
    os.environ["HEAPSCOPE_ABLATION"] = stage
    from heapscope import _native
    _native.start(limit)
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    runpy.run_path(path, run_name="__main__")
elapsed = time.perf_counter() - t
count = _native._allocation_totals()[0] if stage == "3" else 0
print(elapsed, count)
"""


def build(scratch: Path) -> Path:
    target = scratch / "target"
    subprocess.run(
        ["cargo", "build", "--release", "-p", "heapscope-py", "--features", "ablation"],
        cwd=ROOT,
        env={**os.environ, "CARGO_TARGET_DIR": str(target), "PYO3_PYTHON": sys.executable},
        check=True,
    )
    package = scratch / "python"
    shutil.copytree(ROOT / "python", package, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    shutil.copy(
        target / "release" / "libheapscope_native.so", package / "heapscope" / f"_native{suffix}"
    )
    return package


def run(package: Path, stage: str, limit: int, workload: Path) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, stage, str(limit), str(workload)],
        env={**os.environ, "PYTHONPATH": str(package)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=64)
    args = parser.parse_args()
    workloads = args.workloads or sorted((ROOT / "benchmarks" / "workloads").glob("*.py"))
    with tempfile.TemporaryDirectory() as tmp:
        package = build(Path(tmp))
        stages = ["none", "0", "1", "2", "3"]
        print(f"traceback limit {args.limit}, median of {args.rounds} rounds; ns per allocation")
        print(
            f"{'workload':<18}{'untraced s':>11}{'allocs':>11}"
            + "".join(f"{s:>18}" for s in STAGES)
            + f"{'total x':>9}"
        )
        for workload in workloads:
            times: dict[str, list[float]] = {s: [] for s in stages}
            count = 0
            for _ in range(args.rounds):
                for stage in stages:
                    elapsed, n = run(package, stage, args.limit, workload)
                    times[stage].append(elapsed)
                    count = max(count, n)
            med = {s: statistics.median(v) for s, v in times.items()}
            steps = [med["0"] - med["none"]]
            steps += [med[b] - med[a] for a, b in itertools.pairwise(stages[1:])]
            cells = "".join(f"{1e9 * d / max(count, 1):>18.1f}" for d in steps)
            ratio = med["3"] / med["none"]
            print(f"{workload.name:<18}{med['none']:>11.3f}{count:>11}{cells}{ratio:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
