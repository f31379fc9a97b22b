"""What keeping a shadow stack would cost at least: a program run plain and with call/return
hooks that do nothing, side by side (issue 16; docs/architecture.md, "Where `heapscope run`'s
time goes on an application").

Usage: ``python benchmarks/shadow_stack_floor.py [--rounds N] SCRIPT [ARGS...]``. Before 3.12
the hook is a C profile function (``PyEval_SetProfile``) that counts calls and returns, built
here with the C compiler (``cc``, the interpreter's headers); from 3.12 on it is
``sys.monitoring``'s PY_START and PY_RETURN events with C callables. Prints the medians and
their ratio. Nothing of heapscope runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

PROFILE_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
static long depth, calls;
static int hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    if (what == PyTrace_CALL || what == PyTrace_C_CALL) { depth++; calls++; }
    else depth--;
    return 0;
}
static PyObject *get_calls(PyObject *self, PyObject *args) { return PyLong_FromLong(calls); }
static PyObject *install(PyObject *self, PyObject *args) {
    PyEval_SetProfile(hook, NULL);
    Py_RETURN_NONE;
}
static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, ""}, {"calls", get_calls, METH_NOARGS, ""}, {NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "noop_profile", NULL, -1, methods};
PyMODINIT_FUNC PyInit_noop_profile(void) { return PyModule_Create(&module); }
"""

RUN = """
import runpy, sys
{install}
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# The hooked run fails (exit 3) if its hook saw no call, so a hook that is not installed
# cannot pass for a cheap one.
INSTALL_PROFILE = """
import atexit, os
sys.path.insert(0, {dir!r})
import noop_profile
noop_profile.install()
atexit.register(lambda: noop_profile.calls() or os._exit(3))
"""

INSTALL_MONITORING = """
import atexit, operator, os
m = sys.monitoring
m.use_tool_id(2, "shadow-stack-floor")
m.register_callback(2, m.events.PY_START, operator.is_)
m.register_callback(2, m.events.PY_RETURN, slice)
m.set_events(2, m.events.PY_START | m.events.PY_RETURN)
atexit.register(lambda: m.get_events(2) or os._exit(3))
"""


def build_profile_module(where: Path) -> None:
    """Compile the C profile function as the extension ``noop_profile`` in ``where``."""
    source = where / "noop_profile.c"
    source.write_text(PROFILE_C)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [
            "cc",
            "-O2",
            "-shared",
            "-fPIC",
            f"-I{include}",
            str(source),
            "-o",
            str(where / f"noop_profile{suffix}"),
        ],
        check=True,
    )


def main() -> int:
    """Run the script plain and hooked, alternating, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not args.script:
        parser.error("a script to run is needed")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        if sys.version_info >= (3, 12):
            install, hook = INSTALL_MONITORING, "sys.monitoring PY_START/PY_RETURN"
        else:
            build_profile_module(where)
            install, hook = INSTALL_PROFILE.format(dir=tmp), "PyEval_SetProfile"
        runners = {"plain": where / "plain.py", "hooked": where / "hooked.py"}
        runners["plain"].write_text(RUN.format(install=""))
        runners["hooked"].write_text(RUN.format(install=install))
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(runner), *args.script],
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
                times[name].append(time.perf_counter() - start)
    plain, hooked = (statistics.median(times[n]) for n in ("plain", "hooked"))
    print(f"Python {sys.version.split()[0]}, {hook}, medians of {args.rounds}:")
    print(f"plain {plain:.2f} s, hooked {hooked:.2f} s, {hooked / plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
