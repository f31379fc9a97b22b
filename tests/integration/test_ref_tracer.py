"""heapscope's reference tracer (3.13+) beside another one: the stdlib's tracemalloc installs its
own. Each scenario runs in a fresh interpreter (the warning is once per process) and reads the
installed tracer with ctypes (PyRefTracer_GetTracer).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="PyRefTracer is new in CPython 3.13"
)

PRELUDE = textwrap.dedent(
    """
    import ctypes, gc, sys, tracemalloc as std, warnings
    import heapscope.tracemalloc as hs

    get = ctypes.pythonapi.PyRefTracer_GetTracer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.POINTER(ctypes.c_void_p)]

    def tracer():
        data = ctypes.c_void_p()
        return get(ctypes.byref(data)), data.value

    def reused_list():
        gc.collect()
        obj = []
        obj = None
        obj = []  # the list just freed, from the free list
        return obj, sys._getframe().f_lineno - 1

    warnings.simplefilter("error")
    """
)


def run(body: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_own_tracer_reattributes_and_is_removed_on_stop() -> None:
    out = run(
        """
        assert tracer() == (None, None)
        hs.start(1)
        assert tracer()[0] is not None
        obj, line = reused_list()
        assert hs.get_object_traceback(obj)[0].lineno == line
        hs.stop()
        assert tracer() == (None, None)
        print("ok")
        """
    )
    assert out == "ok\n"


def test_another_tracer_is_chained_and_restored() -> None:
    out = run(
        """
        std.start(1)
        theirs = tracer()
        assert theirs[0] is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hs.start(1)
        assert len(caught) == 1 and caught[0].category is RuntimeWarning
        assert str(caught[0].message).startswith("another reference tracer (PyRefTracer")
        assert tracer() != theirs
        obj, line = reused_list()
        # Both tracers re-attributed the reused list: ours, then theirs through the chain.
        assert hs.get_object_traceback(obj)[0].lineno == line
        assert std.get_object_traceback(obj)[0].lineno == line
        hs.stop()
        assert tracer() == theirs
        hs.start(1)  # the warning was given once: no second one (warnings are errors here)
        hs.stop()
        std.stop()
        print("ok")
        """
    )
    assert out == "ok\n"


def test_a_tracer_replacing_ours_is_left_in_place() -> None:
    out = run(
        """
        hs.start(1)
        std.start(1)  # replaces heapscope's reference tracer (and wraps its allocator hooks)
        theirs = tracer()
        obj, line = reused_list()
        assert std.get_object_traceback(obj)[0].lineno == line
        std.stop()  # removes its reference tracer: none is installed now
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hs.stop()
        assert len(caught) == 1 and caught[0].category is RuntimeWarning
        assert str(caught[0].message).startswith("heapscope's reference tracer (PyRefTracer)")
        assert tracer() == (None, None)
        hs.start(1)
        std.start(1)
        hs.stop()  # heapscope leaves the stdlib's tracer in place (no second warning)
        assert tracer() == theirs
        std.stop()
        print("ok")
        """
    )
    assert out == "ok\n"
