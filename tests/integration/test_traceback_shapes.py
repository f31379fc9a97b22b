"""Tracebacks that the interpreter builds in unusual ways have the stdlib's frames: the same
program runs under each tracer in a fresh interpreter and the formatted tracebacks of the
same objects must be identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A class called in a loop: from 3.13 the call is specialized and `__init__` runs above a shim
# frame of the interpreter (`_Py_InitCleanup`), which the stdlib leaves out. With a limit of 2
# the shim must not take the caller's slot.
SHIM = textwrap.dedent(
    """
    import json, os, sys
    if os.environ["TRACER"] == "heapscope":
        import heapscope.tracemalloc as tracemalloc
    else:
        import tracemalloc

    class Point:
        def __init__(self):
            self.data = [0] * 8

    def make(n):
        return [Point() for _ in range(n)]

    out = {}
    for limit in (2, 5):
        tracemalloc.start(limit)
        points = make(100)
        tb = tracemalloc.get_object_traceback(points[-1].data)
        out[limit] = [list(tb.format()), tb.total_nframe]
        tracemalloc.stop()
    print(json.dumps(out))
    """
)


def run(tracer: str, env: dict[str, str]) -> object:
    proc = subprocess.run(
        [sys.executable, "-c", SHIM],
        env={**env, "TRACER": tracer},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_specialized_class_call_has_no_shim_frame(subprocess_env: dict[str, str]) -> None:
    ours = run("heapscope", subprocess_env)
    assert ours == run("stdlib", subprocess_env)
    assert isinstance(ours, dict)
    for lines, _total in ours.values():
        assert not any("line 0" in line for line in lines), lines


def test_a_file_name_that_is_not_utf8_keeps_its_readable_part(tmp_path: Path) -> None:
    """Python keeps undecodable bytes of a path as lone surrogates; the name is reported with
    U+FFFD in their place (it was `<unknown>`), and filters still match it."""
    import heapscope.tracemalloc as tracemalloc

    directory = tmp_path / os.fsdecode(b"\xff\xfedir")
    directory.mkdir()
    (directory / "modsurr.py").write_text("def grow():\n    return [str(i) for i in range(500)]\n")
    sys.path.insert(0, str(directory))
    try:
        import modsurr  # type: ignore[import-not-found]

        tracemalloc.start(1)
        kept = modsurr.grow()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("modsurr", None)
    assert len(kept) == 500
    stats = snapshot.filter_traces([tracemalloc.Filter(True, "*modsurr.py")]).statistics("lineno")
    assert stats, snapshot.statistics("lineno")[:5]
    name = stats[0].traceback[0].filename
    assert name.endswith("\ufffd\ufffddir/modsurr.py"), name
    assert stats[0].traceback[0].lineno == 2
