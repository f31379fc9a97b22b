"""Traced memory of one real-library program under the stdlib's tracemalloc or heapscope's.

``python measure.py stdlib|heapscope PROGRAM.py`` starts tracing with one frame, runs the
program as ``__main__`` (imports included; compiled first, as ``heapscope run`` does),
collects garbage and prints one JSON object: current and peak traced bytes and the top lines
by size. The parity benchmark and the test
suite run it once per tracer, each in a fresh interpreter, and compare the two.
"""

from __future__ import annotations

import gc
import io
import os
import runpy  # noqa: F401  (loaded by `python -m`, as for `python -m heapscope run`)
import sys

TYPE_CHECKING = False  # not `typing`'s, which `heapscope run` does not load
if TYPE_CHECKING:
    from typing import Any


def main() -> None:
    tracer, program = sys.argv[1], sys.argv[2]
    # Every run starts from the modules `python -m heapscope run` has loaded when it starts
    # tracing (its CLI: argparse, re, locale, ...), so that the program's own
    # imports, traced, are the same here under either tracer and under `heapscope run`. Each
    # side drives its tracer's C module while tracing (`_tracemalloc`, `heapscope._native`):
    # the Python modules `tracemalloc` and `heapscope.tracemalloc` are imported only after, as
    # `heapscope run` has neither loaded. Their classes would be in the interpreter's registry
    # of `object`'s subclasses, whose resize (an 18 KB block at 1,024 slots) a program creating
    # classes then makes at another point: 3.13's codegen peak differed by that block.
    import _tracemalloc

    import heapscope.cli
    from heapscope import _native
    from heapscope.cli.run import _compile_script

    heapscope.cli._parser(["run"])  # imports what `heapscope run` imports
    tracer_module: Any = _native if tracer == "heapscope" else _tracemalloc
    sys.argv = [program]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    # Compiled before tracing starts and run in a fresh __main__, as `heapscope run` does.
    code, module = _compile_script(program)
    assert code is not None and module is not None
    sys.modules["__main__"] = module
    output = io.StringIO()
    if os.environ.get("PARITY_MODULES"):
        with open(os.environ["PARITY_MODULES"], "w") as f:
            f.write("\n".join(sorted(sys.modules)))
    gc.collect()  # as `heapscope run` does when it starts tracing
    tracer_module.start(1)
    # Not contextlib.redirect_stdout: `heapscope run` has not loaded contextlib.
    saved_stdout, sys.stdout = sys.stdout, output
    try:
        exec(code, module.__dict__)
    finally:
        sys.stdout = saved_stdout
    gc.collect()
    current, peak = tracer_module.get_traced_memory()
    traces = tracer_module._get_traces()
    limit = tracer_module.get_traceback_limit()
    tracer_module.stop()
    import json
    import tracemalloc

    import heapscope.tracemalloc

    values: Any = heapscope.tracemalloc if tracer == "heapscope" else tracemalloc
    # The tracers' own work while tracing (``_get_traces`` builds its list) is not the program's.
    own = [os.path.abspath(__file__), os.path.dirname(heapscope.tracemalloc.__file__) + "/*"]
    snapshot = values.Snapshot(traces, limit).filter_traces(
        [values.Filter(False, pattern) for pattern in own]
    )
    top = [
        [stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count]
        for stat in snapshot.statistics("lineno")[:10]
    ]
    json.dump({"current": current, "peak": peak, "top": top}, sys.stdout)


if __name__ == "__main__":
    main()
