"""What the benchmark runs: tracer configurations, workloads and their sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORKLOAD_DIR = BENCH_DIR / "workloads"
DRIVER = BENCH_DIR / "_driver.py"

# Poisson sampling: one sample per this many bytes on average (the issue asks for ~512 KiB).
DEFAULT_SAMPLE_RATE = 512 * 1024
# Extra arguments of `heapscope run` so that it records full stacks (limit 64). The profiler's
# options are not settled yet: keep them here, in one place.
PROFILER_ARGS: list[str] = []


@dataclass(frozen=True)
class Config:
    """One way of running a workload."""

    name: str
    tracer: str  # "none", "stdlib" or "heapscope" (the driver's --tracer)
    nframe: int = 1
    sampled: bool = False
    profiler: bool = False  # run the driver under `python -m heapscope run`
    # Extra environment of the run: "hs-64-nocache" turns the stack-walk cache (3.13-3.15, on
    # by default) off with HEAPSCOPE_FRAME_CACHE=0, so its effect shows beside heapscope-64.
    env: tuple[tuple[str, str], ...] = ()


CONFIGS: list[Config] = [
    Config("untraced", "none"),
    Config("stdlib-1", "stdlib", 1),
    Config("stdlib-64", "stdlib", 64),
    Config("heapscope-1", "heapscope", 1),
    Config("heapscope-64", "heapscope", 64),
    Config("hs-64-nocache", "heapscope", 64, env=(("HEAPSCOPE_FRAME_CACHE", "0"),)),
    # Full tracing with the reference tracer taken away after start (3.13+): what
    # re-attributing objects reused from free lists costs, beside heapscope-64.
    Config(
        "hs-64-noreftracer",
        "heapscope",
        64,
        env=(("HEAPSCOPE_BENCH_NO_REF_TRACER", "1"),),
    ),
    Config("hs-sampled", "heapscope", 64, sampled=True),
    # Sampling with the MEM/OBJ free hook kept (how it ran before sampled blocks came from RAW).
    Config(
        "hs-sampled-freehook",
        "heapscope",
        64,
        sampled=True,
        env=(("HEAPSCOPE_SAMPLING_FREE_HOOK", "1"),),
    ),
    Config("hs-run", "none", 64, profiler=True),
]
BASELINE = "untraced"
# Derived from the hs-run processes: wall time of the whole process minus the untraced start-up.
PROFILER_WALL = "hs-run-wall"

# Size argument (argv[1]) per workload; None runs the workload's own default (~0.5-2 s).
SIZES: dict[str, dict[str, int | None]] = {
    "full": {},
    "quick": {
        "json_roundtrip": 5,
        "numpy_arrays": 15_000,
        "records": 40_000,
        "strings": 30_000,
        "trees": 13,
        "templates": 70,
        "toml_parse": 3,
    },
    "tiny": {
        "json_roundtrip": 1,
        "numpy_arrays": 1_000,
        "records": 2_000,
        "strings": 2_000,
        "trees": 8,
        "templates": 3,
        "toml_parse": 1,
    },
}
# Live objects for the tracer-memory and snapshot sections.
LIVE_OBJECTS = {"full": 1_000_000, "quick": 200_000, "tiny": 20_000}


def workloads() -> list[str]:
    """Names of the workload scripts, sorted."""
    return sorted(p.stem for p in WORKLOAD_DIR.glob("*.py"))


def workload_args(name: str, size: str) -> list[str]:
    """The script path and arguments of workload ``name`` at ``size``."""
    arg = SIZES[size].get(name)
    script = str(WORKLOAD_DIR / f"{name}.py")
    return [script] if arg is None else [script, str(arg)]
