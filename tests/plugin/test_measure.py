"""heapscope._measure: the shared start / finish measurement."""

from __future__ import annotations

import sys

from heapscope import tracemalloc
from heapscope._measure import LineStat, Measurement, Measuring

from .conftest import skip_if_traced

KEEP: list[object] = []


def test_measures_peak_kept_and_lines() -> None:
    skip_if_traced()
    measuring = Measuring(top=3)
    assert measuring.start()
    line = sys._getframe().f_lineno + 1
    KEEP.append(bytearray(2_000_000))
    temporary = bytearray(5_000_000)
    del temporary
    measurement = measuring.finish()
    KEEP.clear()
    assert not tracemalloc.is_tracing()
    assert measurement is not None
    assert 7_000_000 <= measurement.peak < 7_100_000
    assert 2_000_000 <= measurement.kept < 2_010_000
    assert measurement.kept_lines[0].where == f"{__file__}:{line}"
    assert 0 < len(measurement.kept_lines) <= 3
    top = measurement.peak_lines[0]
    assert top.where == f"{__file__}:{line + 1}"
    assert 5_000_000 <= top.size < 5_010_000
    assert top.count == 2  # the bytearray object and its buffer
    assert Measurement.from_plain(measurement.to_plain()) == measurement


def test_leaves_a_running_tracer_alone() -> None:
    skip_if_traced()
    tracemalloc.start()
    try:
        measuring = Measuring()
        assert not measuring.start()
        assert measuring.finish() is None
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_finish_without_start_or_after_the_code_stopped_the_tracer() -> None:
    skip_if_traced()
    assert Measuring().finish() is None
    measuring = Measuring()
    assert measuring.start()
    tracemalloc.stop()
    assert measuring.finish() is None


def test_line_stat_where() -> None:
    assert LineStat(10, 1, ("a.py:1", "b.py:2")).where == "a.py:1"
    assert LineStat(10, 1, ()).where == "<unknown>"
