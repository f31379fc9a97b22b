"""The %%heapscope cell magic, through IPython's InteractiveShell."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from heapscope import tracemalloc
from heapscope.ipython_magic import CellReport, HeapscopeMagics
from integration._native_build import build_extension

from .conftest import skip_if_traced


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    # IPython 9 spells the scheme in lower case (8 compares case-insensitively; 9 warns on
    # the old spelling).
    shell.colors = "nocolor"
    shell.run_line_magic("load_ext", "heapscope")
    yield shell
    shell.user_ns.pop("keep", None)


def magics(shell: InteractiveShell) -> HeapscopeMagics:
    instance = shell.magics_manager.registry["HeapscopeMagics"]
    assert isinstance(instance, HeapscopeMagics)
    return instance


def test_cell_report(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    skip_if_traced()
    result = shell.run_cell(
        "%%heapscope\n"
        "keep = [bytes(1000) for _ in range(2000)]\n"
        "tmp = bytearray(5_000_000)\n"
        "del tmp\n"
        "len(keep)\n"
    )
    assert result.success
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("heapscope: peak 6.")
    assert "kept 2.0 MiB (allocated by the cell and still held after it)" in lines[0]
    assert lines[1] == "Top lines at the peak:"
    assert "4.8 MiB" in lines[2] and lines[2].endswith(":2")  # the temporary
    kept = lines.index("What it kept:")
    assert "2.0 MiB" in lines[kept + 1] and "blocks" in lines[kept + 1]
    assert lines[kept + 1].endswith(":1")
    assert "Out[" in out and ": 2000" in out  # the cell's value is still shown
    assert len(shell.user_ns["keep"]) == 2000
    assert not tracemalloc.is_tracing()


def test_rows_and_traceback_limit(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    skip_if_traced()
    shell.run_cell(
        "%%heapscope -n 1 --limit 3\n"
        "def make():\n"
        "    return [str(i) for i in range(10_000)]\n"
        "strings = make()\n"
        "more = bytes(10)\n"
    )
    out = capsys.readouterr().out
    report = magics(shell).last_report
    assert report is not None and len(report.measurement.kept_lines) == 1
    (line,) = report.measurement.kept_lines
    assert line.where.endswith(":2") and len(line.frames) == 3
    assert out.count("called from") == 4  # two frames of callers, at the peak and kept
    shell.user_ns.pop("strings")


def test_exception_in_the_cell(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    skip_if_traced()
    result = shell.run_cell("%%heapscope\nbig = bytearray(1_000_000)\n1 / 0\n")
    assert not result.success
    captured = capsys.readouterr()
    assert "(the cell raised an exception)" in captured.out
    assert "ZeroDivisionError" in captured.out + captured.err
    report = magics(shell).last_report
    assert report is not None and report.raised
    # IPython formats the traceback after the measurement: only the cell's own memory is kept.
    assert 1_000_000 <= report.measurement.kept < 1_100_000
    assert not tracemalloc.is_tracing()
    shell.user_ns.pop("big")


@pytest.mark.parametrize("line", ["-n 0", "--top many", "--limit -1", "--limit 70000", "--bogus"])
def test_bad_arguments(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    skip_if_traced()
    shell.run_cell(f"%%heapscope {line}\nran = True\n")
    captured = capsys.readouterr()
    assert "UsageError" in captured.out + captured.err
    assert "ran" not in shell.user_ns


def test_leaves_a_running_tracer_alone(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    skip_if_traced()
    tracemalloc.start()
    try:
        magics(shell).last_report = None
        shell.run_cell("%%heapscope\nran_anyway = 42\nran_anyway\n")
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    captured = capsys.readouterr()
    assert "the tracer is already running" in captured.err
    assert ": 42" in captured.out
    assert magics(shell).last_report is None
    shell.user_ns.pop("ran_anyway")


def test_html_view(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    skip_if_traced()
    shell.run_cell("%%heapscope\nkeep = bytearray(100_000)\n")
    capsys.readouterr()
    report = magics(shell).last_report
    assert isinstance(report, CellReport)
    html = report._repr_html_()
    assert html.startswith("<div class='heapscope-cell'>")
    assert "<table>" in html and "<th>Size</th>" in html
    assert "&lt;ipython-input-" in html  # locations are escaped
    assert str(report).splitlines()[0] in html
    # heapscope's HTML report of the cell, isolated in an iframe
    assert '<iframe class="heapscope-report" srcdoc="' in html
    srcdoc = unescape(html.split('srcdoc="', 1)[1].split('"', 1)[0])
    assert srcdoc.lstrip().lower().startswith("<!doctype html>")
    assert "ipython-input" in srcdoc and 'type="application/json"' in srcdoc


def test_numpy_arrays_are_measured(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """numpy reports its buffers through PyTraceMalloc_Track: the magic counts them."""
    skip_if_traced()
    pytest.importorskip("numpy")
    result = shell.run_cell(
        "%%heapscope\n"
        "import numpy as np\n"
        "keep_np = np.zeros(1_000_000)\n"
        "tmp = np.empty(3_000_000)\n"
        "del tmp\n"
    )
    assert result.success
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("heapscope: peak 30.")  # 7.6 MiB kept + 22.9 MiB temporary
    assert lines[1] == "Top lines at the peak:"
    assert "22.9 MiB" in lines[2] and lines[2].endswith(":3")
    kept = lines.index("What it kept:")
    assert "7.6 MiB" in lines[kept + 1] and lines[kept + 1].endswith(":2")
    shell.user_ns.pop("keep_np")


def test_native_memory_with_native(
    shell: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a C extension takes with malloc shows with --native only, at its C line."""
    skip_if_traced()
    build_extension(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cell = "import nativeext\nnativeext.take(5_000_000, 0)\nnativeext.take(2_000_000, 1)\n"
    assert shell.run_cell("%%heapscope\n" + cell).success
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("heapscope: peak ") and " MiB" not in lines[0].split(",")[0], lines
    assert shell.run_cell("%%heapscope --native\n" + cell).success
    lines = capsys.readouterr().out.splitlines()
    # The 5 MB block is freed before the 2 MB one is taken: the peak is the first.
    assert lines[0].startswith("heapscope: peak 4.8 MiB"), lines
    assert "kept 1.9 MiB" in lines[0], lines
    assert lines[1] == "Top lines at the peak:"
    assert "4.8 MiB" in lines[2] and "nativeext.c:" in lines[2], lines
    kept = lines.index("What it kept:")
    assert "1.9 MiB" in lines[kept + 1] and "nativeext.c:" in lines[kept + 1], lines
    assert not tracemalloc.is_tracing()


def test_the_cell_is_named_by_its_own_number(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tracebacks and report lines name the cell that ran the magic (IPython 9 counts the next
    cell in `execution_count` while one runs)."""
    skip_if_traced()
    result = shell.run_cell("%%heapscope\n1 / 0\n", store_history=True)
    assert not result.success
    number = result.execution_count
    out = capsys.readouterr()
    assert f"Cell In[{number}], line 1" in out.out + out.err
    assert f"Cell In[{number + 1}]" not in out.out + out.err


def test_a_kernels_own_packages_are_not_the_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a Jupyter kernel, its output streams and messages (ipykernel, zmq, ...) allocate
    while the cell runs: their files are excluded like IPython's, when they are loaded."""
    import types

    from heapscope import ipython_magic

    fake = types.ModuleType("zmq")
    fake.__file__ = str(tmp_path / "zmq" / "__init__.py")
    monkeypatch.setitem(sys.modules, "zmq", fake)
    assert str(tmp_path / "zmq" / "*") in ipython_magic._internals()
    monkeypatch.delitem(sys.modules, "zmq")
    assert not any("zmq" in p for p in ipython_magic._internals())


def test_top_level_await_is_a_one_line_usage_error(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%%heapscope\nimport asyncio\nawait asyncio.sleep(0)\n")
    assert not result.success
    out = capsys.readouterr()
    assert "top-level `await` is not supported" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_unload_ext_removes_the_magic() -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "heapscope")
    shell.run_line_magic("unload_ext", "heapscope")
    assert "heapscope" not in shell.magics_manager.magics["cell"]
    shell.run_line_magic("load_ext", "heapscope")
    assert "heapscope" in shell.magics_manager.magics["cell"]
