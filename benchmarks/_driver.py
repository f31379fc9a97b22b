"""Run one benchmark task in a fresh interpreter and write its result as JSON.

Usage: ``python benchmarks/_driver.py --tracer {none,stdlib,heapscope} [--nframe N]
[--sample-rate BYTES] --result FILE [--task TASK] [script [args...]]``.

Tasks: ``time`` (start the tracer, time the script run as ``__main__`` with ``perf_counter``),
``probe`` (check that the tracer can be started with these options), and the tasks of
``_tasks.py`` (``memory``, ``snapshot``, ``lines``). The tracer is started *before* the timer
and stopped after it, so interpreter start-up, imports and ``stop()`` are not timed.

The ``time`` task executes the script's code from this module's top level rather than through
``runpy.run_path``: runpy and helper functions put ~7 extra frames under every allocation,
which made the stdlib's 64-frame tracing ~60% slower than running the script directly. Here the
workload's frames sit on one extra frame (this module), as with ``python -X tracemalloc``.

Exit status: 0 ok, 3 the tracer is not available (the result says ``"status": "n/a"``),
anything else a crash.
"""

from __future__ import annotations

import argparse
import builtins
import ctypes
import json
import os
import runpy
import sys
import time
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

EXIT_NA = 3
# The keyword of heapscope.tracemalloc.start() that turns sampling on (one place on purpose).
SAMPLE_KEYWORD = "sample_rate"


class TracerUnavailableError(Exception):
    """The requested tracer cannot be imported or started with the requested options."""


def load_tracer(name: str) -> ModuleType | None:
    """The tracemalloc-compatible module for ``name``, or None for ``none``."""
    if name == "none":
        return None
    if name == "stdlib":
        import tracemalloc

        return tracemalloc
    try:
        import heapscope.tracemalloc as hs_tracemalloc
    except ImportError as exc:
        raise TracerUnavailableError(f"cannot import heapscope.tracemalloc: {exc}") from exc
    return hs_tracemalloc


def start(tracer: ModuleType | None, nframe: int, sample_rate: int | None) -> None:
    """Start ``tracer`` (if any) with ``nframe`` frames, sampling when ``sample_rate`` is set."""
    if tracer is None:
        return
    if sample_rate is None:
        tracer.start(nframe)
        return
    try:
        tracer.start(nframe, **{SAMPLE_KEYWORD: sample_rate})
    except TypeError as exc:
        raise TracerUnavailableError(f"sampling not supported: {exc}") from exc


def drop_ref_tracer() -> None:
    """Take the reference tracer (PyRefTracer, 3.13+) away from a tracer just started, when
    ``HEAPSCOPE_BENCH_NO_REF_TRACER=1``: the ``hs-64-noreftracer`` configuration, which shows
    what re-attributing objects reused from free lists costs (a measurement only: such a run
    no longer re-attributes them, and ``stop()`` warns that the tracer was replaced)."""
    if os.environ.get("HEAPSCOPE_BENCH_NO_REF_TRACER") != "1":
        return
    if sys.version_info < (3, 13):
        raise TracerUnavailableError("PyRefTracer is new in CPython 3.13")
    set_tracer = ctypes.pythonapi.PyRefTracer_SetTracer
    set_tracer.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    set_tracer.restype = ctypes.c_int
    if set_tracer(None, None) != 0:
        raise TracerUnavailableError("PyRefTracer_SetTracer(NULL) failed")


def run_script(script: str, args: list[str]) -> None:
    """Run ``script`` as ``__main__`` with ``args`` as its command-line arguments."""
    saved = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = saved


def prepare_script(script: str, args: list[str]) -> tuple[CodeType, dict[str, Any]]:
    """The compiled script and a ``__main__``-like namespace; sets ``sys.argv``/``sys.path``."""
    path = Path(script).resolve()
    code = compile(path.read_bytes(), str(path), "exec")
    sys.argv = [script, *args]
    sys.path.insert(0, str(path.parent))
    namespace = {"__name__": "__main__", "__file__": str(path), "__builtins__": builtins}
    return code, namespace


def task_probe(tracer: ModuleType | None, opts: argparse.Namespace) -> dict[str, Any]:
    """Start and stop the tracer once, to tell "not available" from a crash up front."""
    start(tracer, opts.nframe, opts.sample_rate)
    if tracer is not None:
        tracer.take_snapshot()
        tracer.stop()
    return {}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The driver's options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracer", choices=["none", "stdlib", "heapscope"], default="none")
    parser.add_argument("--nframe", type=int, default=1)
    parser.add_argument("--sample-rate", type=int, default=None)
    parser.add_argument("--task", default="time")
    parser.add_argument("--size", type=int, default=0, help="size argument of a _tasks task")
    parser.add_argument("--result", required=True, help="JSON file to write the result to")
    parser.add_argument("script", nargs="?", default="")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def write_result(path: str, result: dict[str, Any]) -> None:
    """Write the JSON result file the parent reads."""
    Path(path).write_text(json.dumps(result))


def main(argv: list[str]) -> int:
    """Run a task other than ``time``; write ``{"status": ..., ...}`` to the result file."""
    opts = parse_args(argv)
    result: dict[str, Any]
    status = 0
    try:
        tracer = load_tracer(opts.tracer)
        if opts.task == "probe":
            result = task_probe(tracer, opts)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import _tasks

            result = _tasks.run(opts.task, tracer, opts)
        result["status"] = "ok"
    except TracerUnavailableError as exc:
        result, status = {"status": "n/a", "reason": str(exc)}, EXIT_NA
    write_result(opts.result, result)
    return status


if __name__ == "__main__":
    _opts = parse_args(sys.argv[1:])
    if _opts.task == "time":
        _tracer = None
        try:
            _tracer = load_tracer(_opts.tracer)
            _code, _namespace = prepare_script(_opts.script, _opts.args)
            start(_tracer, _opts.nframe, _opts.sample_rate)
            drop_ref_tracer()
        except TracerUnavailableError as _exc:
            write_result(_opts.result, {"status": "n/a", "reason": str(_exc)})
            sys.exit(EXIT_NA)
        # Timed at module level on purpose: see the module docstring.
        _t0 = time.perf_counter()
        exec(_code, _namespace)
        _elapsed = time.perf_counter() - _t0
        if _tracer is not None:
            _tracer.stop()
        write_result(_opts.result, {"status": "ok", "seconds": _elapsed})
    else:
        sys.exit(main(sys.argv[1:]))
