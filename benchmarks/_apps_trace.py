"""Run one application under an in-process tracer and report what the tracer holds at the end.

Usage: ``python benchmarks/_apps_trace.py {none,stdlib,heapscope} NFRAME RESULT PROGRAM
[ARGS...]``. The tracer (stdlib ``tracemalloc`` or ``heapscope.tracemalloc``) is started with
NFRAME frames, the program runs as ``__main__`` from this module's top level (one extra frame
under its own, as in ``_driver.py``), and before ``stop()`` the result records
``get_tracemalloc_memory()``, ``get_traced_memory()`` and the process's current and peak RSS
(``VmRSS``/``VmHWM``). With ``none`` the program runs untraced and only the RSS is recorded.
Exit status 3 with ``"status": "n/a"``: the program (or the tracer) could not import a module.
"""

from __future__ import annotations

import builtins
import os
import sys
import types
from typing import Any

EXIT_NA = 3


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _write(path: str, result: dict[str, Any]) -> None:
    import json

    with open(path, "w") as f:
        json.dump(result, f)


def _tracer(name: str) -> Any:
    if name == "stdlib":
        import tracemalloc

        return tracemalloc
    if name == "heapscope":
        import heapscope.tracemalloc

        return heapscope.tracemalloc
    return None


_name, _nframe, _result, _program = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    _tracer_module = _tracer(_name)
except ImportError as _exc:
    _write(_result, {"status": "n/a", "reason": f"{_name}: {_exc}"})
    sys.exit(EXIT_NA)
_path = os.path.abspath(_program)
with open(_path, "rb") as _f:
    _code = compile(_f.read(), _path, "exec", dont_inherit=True)
_main = types.ModuleType("__main__")
_main.__dict__.update(__file__=_path, __builtins__=builtins)
sys.argv = [_path, *sys.argv[5:]]
sys.path[0] = os.path.dirname(_path)
sys.modules["__main__"] = _main
if _tracer_module is not None:
    _tracer_module.start(_nframe)
try:
    exec(_code, _main.__dict__)
except ImportError as _exc:
    if _tracer_module is not None:
        _tracer_module.stop()
    _write(_result, {"status": "n/a", "reason": f"{os.path.basename(_path)}: {_exc}"})
    sys.exit(EXIT_NA)
_out: dict[str, Any] = {"status": "ok"}
if _tracer_module is not None:
    _out["tracer_memory"] = _tracer_module.get_tracemalloc_memory()
    _out["traced_current"], _out["traced_peak"] = _tracer_module.get_traced_memory()
_out["rss"] = _status_kib("VmRSS")
_out["hwm"] = _status_kib("VmHWM")
if _tracer_module is not None:
    _tracer_module.stop()
_write(_result, _out)
