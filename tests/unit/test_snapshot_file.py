"""Snapshot files: heapscope's own binary format, never pickle."""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import tracemalloc as stdlib_tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heapscope import _native
from heapscope import tracemalloc as hs
from heapscope.errors import HeapscopeError

RAW = [
    (0, 10, (("a.py", 2), ("b.py", 4)), 3),
    (0, 10, (("a.py", 2), ("b.py", 4)), 3),
    (1, 2, (("a.py", 5), ("b.py", 4)), 3),
    (2, 66, (("b.py", 1),), 1),
    (3, 7, (("<unknown>", 0),), 1),
]


def _dump(tmp_path: Path, **attrs: Any) -> Path:
    snapshot = hs.Snapshot(list(RAW), 2)
    for name, value in attrs.items():
        setattr(snapshot, name, value)
    path = tmp_path / "snap.hsnap"
    snapshot.dump(path)
    return path


def test_round_trip(tmp_path: Path) -> None:
    path = _dump(tmp_path)
    loaded = hs.Snapshot.load(path)
    assert loaded.traceback_limit == 2
    assert loaded.traces._traces == RAW
    assert loaded.statistics("lineno") == hs.Snapshot(list(RAW), 2).statistics("lineno")
    assert not path.read_bytes().startswith(b"\x80")


def test_round_trip_str_path(tmp_path: Path) -> None:
    path = _dump(tmp_path)
    assert hs.Snapshot.load(str(path)).traces == hs.Snapshot(list(RAW), 2).traces


PLAIN: dict[str, Any] = {
    "s": "new",
    "unicode": "h\u00e9\u2603\U0001f600",
    "i": -(2**63),
    "big": 2**63 - 1,
    "f": 1.5,
    "neg_zero": -0.0,
    "inf": math.inf,
    "t": True,
    "f0": False,
    "none": None,
    "nested": [1, [2.0, {"k": ["v", None, {"deep": True}]}], {}],
}


def test_plain_attributes_round_trip_type_exact(tmp_path: Path) -> None:
    loaded = hs.Snapshot.load(_dump(tmp_path, **PLAIN))
    for name, value in PLAIN.items():
        got = getattr(loaded, name)
        assert got == value
        assert type(got) is type(value)
    assert math.copysign(1.0, loaded.neg_zero) == -1.0
    assert loaded.nested[1][1]["k"][2]["deep"] is True


def test_nan_attribute(tmp_path: Path) -> None:
    assert math.isnan(hs.Snapshot.load(_dump(tmp_path, x=math.nan)).x)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, (1, 2), b"bytes", object(), [1, {2}], {"k": {1: 2}}, {1: "int key"}, 1j],
)
def test_non_plain_attributes_raise_type_error(tmp_path: Path, value: Any) -> None:
    with pytest.raises(TypeError, match="snapshot attribute 'bad'"):
        _dump(tmp_path, bad=value)


def test_int_beyond_64_bits(tmp_path: Path) -> None:
    with pytest.raises(OverflowError, match=r"'big'.*64 bits"):
        _dump(tmp_path, big=2**64)


def test_cyclic_attribute(tmp_path: Path) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="nests deeper"):
        _dump(tmp_path, cycle=cycle)


def test_every_truncation_is_a_clear_error(tmp_path: Path) -> None:
    data = _dump(tmp_path, s="x", l=[1, 2]).read_bytes()
    cut = tmp_path / "cut"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(_native.FileFormatError, match=r"truncated|not a heapscope"):
            hs.Snapshot.load(cut)


def test_every_bit_flip_is_a_clear_error(tmp_path: Path) -> None:
    data = _dump(tmp_path, s="x").read_bytes()
    bad = tmp_path / "bad"
    for i in range(len(data)):
        for bit in (0, 3, 7):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            bad.write_bytes(bytes(flipped))
            with pytest.raises(HeapscopeError):
                hs.Snapshot.load(bad)


def test_errors_are_typed(tmp_path: Path) -> None:
    assert issubclass(_native.FileFormatError, HeapscopeError)
    with pytest.raises(FileNotFoundError) as info:
        hs.Snapshot.load(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")
    other = tmp_path / "other"
    other.write_bytes(b"hello, this is not a snapshot file at all")
    with pytest.raises(_native.FileFormatError, match="not a heapscope snapshot"):
        hs.Snapshot.load(other)
    data = bytearray(_dump(tmp_path).read_bytes())
    data[8] = 99
    future = tmp_path / "future"
    future.write_bytes(bytes(data))
    with pytest.raises(_native.FileFormatError, match="unsupported snapshot file version 99"):
        hs.Snapshot.load(future)


class _Boom:
    """Unpickling this would run code: it must never happen."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(_Boom.marker).write_text, ("pwned",))

    marker = ""


def test_stdlib_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _Boom.marker = str(marker)
    snapshot = stdlib_tracemalloc.Snapshot(list(RAW), 2)
    snapshot.payload = _Boom()  # type: ignore[attr-defined]
    path = tmp_path / "stdlib.pickle"
    snapshot.dump(str(path))
    assert path.read_bytes()[:1] == b"\x80"
    with pytest.raises(_native.FileFormatError, match="pickle"):
        hs.Snapshot.load(path)
    assert not marker.exists()
    # The same file does run code through pickle: the test is meaningful.
    with path.open("rb") as fp:
        pickle.load(fp)
    assert marker.exists()


def test_dump_of_unrepresentable_traces_is_a_clear_error(tmp_path: Path) -> None:
    snapshot = hs.Snapshot([(0, 1, (("\udcff", 1),), 1)], 1)
    with pytest.raises(ValueError, match="cannot dump this snapshot"):
        snapshot.dump(tmp_path / "x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_are_refused_cleanly(data: bytes, with_magic: bool) -> None:
    path = Path(tempfile.gettempdir()) / f"heapscope-fuzz-{os.getpid()}.hsnap"
    path.write_bytes((b"\x89HSNAP\r\n\x01\x00" if with_magic else b"") + data)
    try:
        with pytest.raises(_native.FileFormatError):
            hs.Snapshot.load(path)
    finally:
        path.unlink()
