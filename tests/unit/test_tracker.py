"""``heapscope.Tracker`` in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

import heapscope
from heapscope import _native
from heapscope.errors import HeapscopeError


def test_one_capture_at_a_time(tmp_path: Path) -> None:
    with heapscope.Tracker(tmp_path / "a.hsc") as tracker:
        assert _native.capture_active()
        with pytest.raises(HeapscopeError, match="already being recorded"):
            heapscope.Tracker(tmp_path / "b.hsc").__enter__()
        with pytest.raises(RuntimeError, match="already recording"):
            tracker.__enter__()
    assert not _native.capture_active()
    assert not (tmp_path / "b.hsc").exists()
    profile = _native.load_capture(tmp_path / "a.hsc")
    assert not _native.profile_truncated(profile)


def test_decorator_records_each_call(tmp_path: Path) -> None:
    @heapscope.Tracker(tmp_path / "d.hsc", force=True)
    def work(n: int) -> int:
        return len(bytearray(n))

    assert work(10) == 10
    assert work(20) == 20
    assert (tmp_path / "d.hsc").stat().st_size > 0


def test_bad_trace_limit(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="trace limit"),
        heapscope.Tracker(tmp_path / "x.hsc", trace_limit=0),
    ):
        pass
    assert not (tmp_path / "x.hsc").exists()


def test_load_capture_errors(tmp_path: Path) -> None:
    from heapscope.errors import FileFormatError

    with pytest.raises(FileNotFoundError):
        _native.load_capture(tmp_path / "missing.hsc")
    (tmp_path / "junk.hsc").write_bytes(b"junk" * 10)
    with pytest.raises(FileFormatError, match=r"junk\.hsc"):
        _native.load_capture(tmp_path / "junk.hsc")
