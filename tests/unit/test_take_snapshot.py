"""take_snapshot(): the native fast path, and the seams the stdlib's tests patch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from heapscope import _native
from heapscope import tracemalloc as hs


@pytest.fixture
def tracing() -> Iterator[None]:
    hs.start(5)
    try:
        yield
    finally:
        hs.stop()


def test_fast_path_uses_the_native_snapshot(tracing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def take() -> _native.NativeSnapshot:
        calls.append(1)
        native = _native.NativeSnapshot.from_raw(_native._get_traces(), 5)
        assert native is not None
        return native

    monkeypatch.setattr(_native, "_take_snapshot", take, raising=False)
    data = [bytes(1000) for _ in range(100)]
    snapshot = hs.take_snapshot()
    assert calls == [1]
    assert snapshot.traceback_limit == 5
    assert snapshot.traces._raw is None  # raw tuples are built only on demand
    top = snapshot.statistics("lineno")[0]
    assert top.count >= 100
    assert len(snapshot.traces) == len(snapshot.traces._traces)
    del data


def test_patched_get_traces_bypasses_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = [(0, 5, (("a.py", 2),), 10)]
    monkeypatch.setattr(_native, "_take_snapshot", lambda: pytest.fail("fast path"), raising=False)
    monkeypatch.setattr(hs, "is_tracing", lambda: True)
    monkeypatch.setattr(hs, "get_traceback_limit", lambda: 7)
    monkeypatch.setattr(hs, "_get_traces", lambda: raw)
    snapshot = hs.take_snapshot()
    assert snapshot.traceback_limit == 7
    assert snapshot.traces._traces is raw


def test_a_patched_get_traces_is_used(tracing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = hs._get_traces

    def spy() -> list[tuple[int, int, tuple[tuple[str, int], ...], int]]:
        calls.append(1)
        return original()

    monkeypatch.setattr(hs, "_get_traces", spy)
    snapshot = hs.take_snapshot()
    assert calls == [1]
    assert isinstance(snapshot.traces._traces, list)


def test_not_tracing() -> None:
    with pytest.raises(RuntimeError, match="must be tracing memory allocations"):
        hs.take_snapshot()


def test_snapshot_file_of_a_live_snapshot(tracing: None, tmp_path: Path) -> None:
    path = tmp_path / "live.hsnap"
    snapshot = hs.take_snapshot()
    snapshot.label = {"run": 1, "tags": ["a", "b"]}  # type: ignore[attr-defined]
    snapshot.dump(path)
    loaded = hs.Snapshot.load(path)
    assert loaded.traces == snapshot.traces
    assert loaded.label == {"run": 1, "tags": ["a", "b"]}  # type: ignore[attr-defined]
    assert loaded.statistics("filename") == snapshot.statistics("filename")


def test_snapshots_stay_picklable_in_memory(tracing: None) -> None:
    import pickle

    snapshot = hs.take_snapshot()
    snapshot.statistics("lineno")
    copy = pickle.loads(pickle.dumps(snapshot))
    assert copy.traces == snapshot.traces
    assert copy.statistics("lineno") == snapshot.statistics("lineno")
