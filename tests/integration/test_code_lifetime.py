"""Tracing never keeps a code object alive, and traces made by code that has died still name
the right file and line (in snapshots, ``get_object_traceback``, and dumped snapshots)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import heapscope.tracemalloc as tracemalloc
from heapscope import _native


@pytest.fixture
def tracing() -> Iterator[None]:
    tracemalloc.start(5)
    try:
        yield
    finally:
        tracemalloc.stop()


def _make(i: int) -> Callable[[], Any]:
    """A function compiled from source, named ``<gen i>``, that allocates a distinct object on
    line ``2 + i % 5``."""
    pad = "\n" * (i % 5)
    source = f"def make():\n{pad}    return bytearray({1000 + i})\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<gen {i}>", "exec"), namespace)
    make: Callable[[], Any] = namespace["make"]
    return make


def test_a_dead_function_s_code_object_is_freed(tracing: None) -> None:
    make = _make(0)
    obj = make()
    code = weakref.ref(make.__code__)
    del make
    gc.collect()
    assert code() is None, "the tracer kept the code object alive"
    assert tracemalloc.get_object_traceback(obj)[-1] == tracemalloc.Frame(("<gen 0>", 2))


def test_traces_of_dead_code_keep_their_file_and_line(tracing: None, tmp_path: Path) -> None:
    # Code objects die one after another, so later ones are allocated where earlier ones were:
    # a trace must never take the name of a newer code object at the same address.
    kept = []
    for i in range(300):
        kept.append(_make(i)())
        gc.collect()
    snapshot = tracemalloc.take_snapshot()
    expected = {(f"<gen {i}>", 2 + i % 5) for i in range(300)}
    by_line = {
        (s.traceback[0].filename, s.traceback[0].lineno): s for s in snapshot.statistics("lineno")
    }
    assert expected <= set(by_line)
    for i, obj in enumerate(kept):
        frame = tracemalloc.get_object_traceback(obj)[-1]  # the most recent frame
        assert (frame.filename, frame.lineno) == (f"<gen {i}>", 2 + i % 5)
        assert by_line[(frame.filename, frame.lineno)].size == sys.getsizeof(obj)
    path = tmp_path / "dead.snapshot"
    snapshot.dump(str(path))
    loaded = tracemalloc.Snapshot.load(str(path))
    assert {
        (s.traceback[0].filename, s.traceback[0].lineno) for s in loaded.statistics("lineno")
    } >= expected


def test_a_dead_code_object_s_frames_below_the_top_are_kept(tracing: None) -> None:
    source = "def outer(f):\n    return f()\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<outer>", "exec"), namespace)
    obj = namespace["outer"](_make(3))
    del namespace
    gc.collect()
    traceback = tracemalloc.get_object_traceback(obj)
    assert [(f.filename, f.lineno) for f in traceback][-2:] == [("<outer>", 2), ("<gen 3>", 5)]


_DISTINCT_FILENAMES = textwrap.dedent(
    """
    import gc, json, sys
    import tracemalloc
    import heapscope.tracemalloc
    if sys.argv[1] == "heapscope":
        tracemalloc = heapscope.tracemalloc
    compile("pass", "<warm-up>", "exec")  # the compiler's one-time state, before tracing
    tracemalloc.start(1)
    kept = []
    for i in range(400):
        namespace = {}
        exec(compile("y = [0] * 5", f"<cell {i:04d}>", "exec"), namespace)
        kept.append(namespace["y"])
        del namespace
    gc.collect()
    print(json.dumps([tracemalloc.get_traced_memory()[0],
                      sum(sys.getsizeof(f"<cell {i:04d}>") for i in range(400))]))
    """
)


def test_only_the_stdlib_keeps_file_names_of_dead_code_alive(tmp_path: Path) -> None:
    # The stdlib's traces hold a reference to the file name of each frame, so the name of a
    # dead code object that a live trace points to stays alive (and traced); heapscope keeps
    # nothing alive. The difference between the two is exactly those strings.
    script = tmp_path / "cells.py"
    script.write_text(_DISTINCT_FILENAMES)

    def run(tracer: str) -> list[int]:
        proc = subprocess.run(
            [sys.executable, str(script), tracer],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        result: list[int] = __import__("json").loads(proc.stdout)
        return result

    (stdlib, names), (ours, _) = run("stdlib"), run("heapscope")
    if sys.version_info >= (3, 15):
        # 3.15's stdlib no longer keeps them (measured): both tracers agree.
        assert stdlib == ours
    else:
        assert stdlib - ours == pytest.approx(names, rel=0.02)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def test_line_table_reader_agrees_with_the_interpreter() -> None:
    # A dying code object's lines are read from its location table in one pass; the reader
    # must give PyCode_Addr2Line's answer for every instruction of every code object of the
    # standard library on this version.
    stdlib = Path(os.__file__).parent
    checked = 0
    for path in sorted(stdlib.glob("*.py")):
        try:
            top = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for code in _code_objects(top):
            assert _native._check_line_table(code) == 0, (path, code.co_name)
            checked += 1
    assert checked > 5000
