"""A drop-in replacement for the standard library's :mod:`tracemalloc`.

``import heapscope.tracemalloc as tracemalloc``: the same functions, classes, messages and
exceptions. Grouping, sorting, diffing and filtering run in Rust (``heapscope._native``);
snapshots that hold values the engine cannot represent, and filters that are user subclasses,
keep the stdlib's pure-Python behaviour. ``Snapshot.dump``/``load`` use heapscope's own
versioned binary format instead of pickle, so loading a file never runs code.
"""

from __future__ import annotations

import linecache  # noqa: F401  (the stdlib module exposes it; Traceback.format uses it)
import operator
import os
from collections.abc import Iterable, Sequence
from typing import Any, overload

from heapscope import _follow, _native, _startup_tracing
from heapscope._capture import MAX_TRACE_LIMIT
from heapscope._tracemalloc_filters import (
    BaseFilter,
    DomainFilter,
    Filter,
    _native_filter_spec,
    _normalize_filename,  # noqa: F401  (private helper the stdlib module has too)
)
from heapscope._tracemalloc_values import (
    Frame,
    RawFrame,
    RawTrace,
    Statistic,
    StatisticDiff,
    Trace,
    Traceback,
    _format_size,  # noqa: F401  (private helper the stdlib module has too)
)

__all__ = [
    "BaseFilter",
    "DomainFilter",
    "Filter",
    "Frame",
    "Snapshot",
    "Statistic",
    "StatisticDiff",
    "Trace",
    "Traceback",
    "clear_traces",
    "get_object_traceback",
    "get_traceback_limit",
    "get_traced_memory",
    "get_tracemalloc_memory",
    "is_tracing",
    "reset_peak",
    "start",
    "stop",
    "take_snapshot",
]

# The stdlib's tests build frames through this name.
_Frame = Frame

# Present the classes as this module's own (help(), repr of the classes).
for _cls in (Frame, Traceback, Trace, Statistic, StatisticDiff, BaseFilter, Filter, DomainFilter):
    _cls.__module__ = __name__
del _cls

_KEY_TYPES = ("traceback", "filename", "lineno")
# Instance attributes of Snapshot itself; everything else in its __dict__ is an extra attribute.
_SNAPSHOT_FIELDS = ("traces", "traceback_limit")


def start(nframe: int = 1, /, *, sample_rate: int | None = None, native: bool = False) -> None:
    """Start tracing Python memory allocations, storing at most ``nframe`` frames per trace.

    heapscope extension: with ``sample_rate=N``, record one block per ``N`` bytes allocated on
    average (Poisson sampling: a block of ``size`` bytes is recorded with probability
    ``1 - exp(-size / N)``) and count each recorded block as ``size / probability`` bytes, so
    sizes in snapshots and ``get_traced_memory()`` are unbiased estimates (counts are the number
    of sampled blocks). Unsampled blocks cost almost nothing: this is the production mode.

    heapscope extension: with ``native=True``, also trace what native code (C extensions,
    libraries loaded with ctypes) takes with ``malloc`` and ``mmap``, in domain
    ``0x6e617476``, with the C frames in the tracebacks (what ``heapscope run --native``
    records). Raises ``RuntimeError`` where that cannot be installed.

    As in the stdlib, ``start()`` while tracing changes nothing (the traceback limit stays),
    unless it changes heapscope's mode: another ``sample_rate`` (sampling or not), or
    ``native=True``.
    """
    nframe = _c_int(nframe)
    if _native.capture_active():
        # A capture's tracer: taken over (heapscope run's stream ends), or, a Tracker's or
        # an attach's, shared as it is.
        tracing_already = not _take_over_from_capture()
    else:
        tracing_already = (
            _native.is_tracing() and sample_rate == _native._get_sample_rate() and not native
        )
    if tracing_already:
        if not 1 <= nframe <= MAX_TRACE_LIMIT:
            raise ValueError(f"the number of frames must be in range [1; {MAX_TRACE_LIMIT}]")
        return
    _native.start(nframe, sample_rate=sample_rate, native=native)


# The stream of `heapscope run` (or of a followed child) that start() ended to trace on its own,
# started again by stop().
_suspended_stream: tuple[Any, Any] | None = None


def _take_over_from_capture() -> bool:
    """The process is being recorded, and heapscope has one tracer: a program that traces on
    its own under ``heapscope run`` takes the tracer over (its stream ends, a new one starts
    after ``stop()``), as a Tracker or ``pytest --heapscope`` does. A Tracker's or an attach's
    recording is not ended for it: False, the tracer is the capture's (``stop()`` leaves it)."""
    global _suspended_stream
    suspended = _follow.suspend()
    if suspended is None:
        return False
    _suspended_stream = suspended
    return True


def _c_int(value: object) -> int:
    """``value`` as the stdlib's ``start`` converts it to a C int: TypeError if it is not an
    integer, OverflowError if it does not fit 32 bits."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not -(2**31) <= number < 2**31:
        raise OverflowError("Python int too large to convert to C int")
    return number


def stop() -> None:
    """Stop tracing and clear every trace."""
    global _suspended_stream
    if _native.capture_active():
        return  # the tracer is a capture's, which start() did not take over
    _native.stop()
    suspended, _suspended_stream = _suspended_stream, None
    _follow.resume(suspended)


def is_tracing() -> bool:
    """Whether memory allocations are being traced."""
    return _native.is_tracing()


def clear_traces() -> None:
    """Clear the traces of the memory blocks allocated so far (and the peak)."""
    _native.clear_traces()


def get_traced_memory() -> tuple[int, int]:
    """The current size and the peak size of the traced memory blocks, in bytes."""
    return _native.get_traced_memory()


def reset_peak() -> None:
    """Set the peak size of traced memory blocks to the current size."""
    _native.reset_peak()


def get_traceback_limit() -> int:
    """The maximum number of frames stored in the traceback of a trace."""
    return _native.get_traceback_limit()


def get_tracemalloc_memory() -> int:
    """Memory used by the tracer itself to store traces, in bytes."""
    return _native.get_tracemalloc_memory()


def _get_traces() -> list[RawTrace]:
    """The raw traces: ``(domain, size, frames, total_nframe)`` tuples."""
    return _native._get_traces()


def _get_object_traceback(obj: object) -> tuple[RawFrame, ...] | None:
    """The raw frames where ``obj`` was allocated, or None."""
    return _native._get_object_traceback(obj)


_ORIGINAL_GET_TRACES = _get_traces


def get_object_traceback(obj: object) -> Traceback | None:
    """The traceback where ``obj`` was allocated, or None if it was not traced."""
    frames = _get_object_traceback(obj)
    return None if frames is None else Traceback(frames)


def take_snapshot() -> Snapshot:
    """A snapshot of the traces of the memory blocks allocated by Python."""
    if not is_tracing():
        raise RuntimeError(
            "the tracemalloc module must be tracing memory allocations to take a snapshot"
        )
    if _get_traces is _ORIGINAL_GET_TRACES:
        # Fast path: the tracer builds the snapshot natively, no raw tuples in between.
        native = _native._take_snapshot()
        return Snapshot._from_native(native, get_traceback_limit())
    traces = _get_traces()
    return Snapshot(traces, get_traceback_limit())


class _Traces(Sequence[Trace]):
    """The traces of a snapshot; ``_traces`` is the list of raw tuples (built on demand)."""

    def __init__(self, traces: Any, native: _native.NativeSnapshot | None = None) -> None:
        self._raw = traces
        self._native = native
        self._native_failed = False

    @property
    def _traces(self) -> Any:
        if self._raw is None and self._native is not None:
            self._raw = self._native.raw_traces()
        return self._raw  # None given as traces: iterating it fails as in the stdlib

    @_traces.setter
    def _traces(self, traces: Any) -> None:
        self._raw, self._native, self._native_failed = traces, None, False

    def _get_native(self) -> _native.NativeSnapshot | None:
        """The engine's copy of these traces, or None if they cannot be represented there."""
        native = self._native
        raw = self._raw
        # A length change means the raw list was edited in place: rebuild.
        if native is not None and (raw is None or len(raw) == len(native)):
            return native
        if self._native_failed:
            return None
        native = _native.NativeSnapshot.from_raw(raw, 0)
        self._native, self._native_failed = native, native is None
        return native

    def __getstate__(self) -> dict[str, Any]:
        # Picklable like the stdlib's (e.g. to send a snapshot to another process): the
        # engine copy is rebuilt on demand.
        return {"_raw": self._traces, "_native": None, "_native_failed": False}

    def __len__(self) -> int:
        if self._raw is None and self._native is not None:
            return len(self._native)
        return len(self._traces)

    @overload
    def __getitem__(self, index: int) -> Trace: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Trace, ...]: ...

    def __getitem__(self, index: int | slice) -> Trace | tuple[Trace, ...]:
        if isinstance(index, slice):
            return tuple(Trace(trace) for trace in self._traces[index])
        return Trace(self._traces[index])

    def __contains__(self, trace: Any) -> bool:
        return trace._trace in self._traces

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Traces):
            return NotImplemented
        return bool(self._traces == other._traces)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Traces len={len(self)}>"


class Snapshot:
    """The traces of the memory blocks allocated by Python at one moment."""

    def __init__(self, traces: Any, traceback_limit: int) -> None:
        self.traces = _Traces(traces)
        self.traceback_limit = traceback_limit

    @classmethod
    def _from_native(cls, native: _native.NativeSnapshot, traceback_limit: int) -> Snapshot:
        snapshot = cls.__new__(cls)
        snapshot.traces = _Traces(None, native)
        snapshot.traceback_limit = traceback_limit
        return snapshot

    def dump(self, filename: str | os.PathLike[str]) -> None:
        """Write the snapshot (and its extra plain-data attributes) to a heapscope file."""
        attrs = {k: v for k, v in vars(self).items() if k not in _SNAPSHOT_FIELDS}
        native = self.traces._get_native()
        if native is None:
            raise ValueError(
                "cannot dump this snapshot: its traces are not tracemalloc raw traces "
                "(domain, size, ((filename, lineno), ...), total_nframe) with str file names "
                "and non-negative ints"
            )
        native.dump(os.fsdecode(filename), self.traceback_limit, attrs)

    @staticmethod
    def load(filename: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`dump`. Never unpickles; never runs code."""
        native, attrs = _native.NativeSnapshot.load(os.fsdecode(filename))
        snapshot = Snapshot._from_native(native, native.traceback_limit)
        vars(snapshot).update((k, v) for k, v in attrs.items() if k not in _SNAPSHOT_FIELDS)
        return snapshot

    def _filter_trace(
        self, include: list[BaseFilter], exclude: list[BaseFilter], trace: RawTrace
    ) -> bool:
        if include and not any(f._match(trace) for f in include):
            return False
        return not (exclude and any(not f._match(trace) for f in exclude))

    def filter_traces(self, filters: Iterable[BaseFilter]) -> Snapshot:
        """A new snapshot with the traces the filters keep (a copy if ``filters`` is empty)."""
        if not isinstance(filters, Iterable):
            raise TypeError(f"filters must be a list of filters, not {type(filters).__name__}")
        traces = self.traces
        if not filters:
            if traces._raw is None and traces._native is not None:
                return Snapshot._from_native(traces._native, self.traceback_limit)
            copy = Snapshot(traces._traces.copy(), self.traceback_limit)
            copy.traces._native = traces._native  # same traces: share the immutable engine copy
            return copy
        include: list[BaseFilter] = []
        exclude: list[BaseFilter] = []
        for f in filters:
            (include if f.inclusive else exclude).append(f)
        specs = [_native_filter_spec(f) for f in include + exclude]
        native = traces._get_native() if None not in specs else None
        if native is not None:
            filtered = native.filter_traces(specs)
            if filtered is not None:
                return Snapshot._from_native(filtered, self.traceback_limit)
        kept = [t for t in traces._traces if self._filter_trace(include, exclude, t)]
        return Snapshot(kept, self.traceback_limit)

    def _group_by(self, key_type: str, cumulative: bool) -> dict[Traceback, Statistic]:
        """Statistics per group key (unsorted), as the stdlib's private helper returns."""
        return {stat.traceback: stat for stat in self._statistics(key_type, cumulative, False)}

    def _statistics(self, key_type: str, cumulative: bool, ordered: bool) -> list[Statistic]:
        if key_type not in _KEY_TYPES:
            raise ValueError(f"unknown key_type: {key_type!r}")
        if cumulative and key_type not in ("lineno", "filename"):
            raise ValueError(f"cumulative mode cannot by used with key type {key_type!r}")
        native = self.traces._get_native()
        if native is None:
            stats = _python_group_by(self.traces._traces, key_type, cumulative)
            if ordered:
                stats.sort(reverse=True, key=Statistic._sort_key)
            return stats
        from_raw = Traceback._from_raw
        rows = native.statistics(key_type, bool(cumulative))
        return [Statistic(from_raw(frames), size, count) for frames, size, count in rows]

    def statistics(self, key_type: str, cumulative: bool = False) -> list[Statistic]:
        """Statistics grouped by ``key_type`` ('traceback', 'filename', 'lineno'), biggest
        first; ``cumulative`` counts every frame of each traceback, not only the newest."""
        return self._statistics(key_type, cumulative, True)

    def compare_to(
        self, old_snapshot: Snapshot, key_type: str, cumulative: bool = False
    ) -> list[StatisticDiff]:
        """Differences from ``old_snapshot`` grouped by ``key_type``, biggest change first."""
        new_native = self.traces._get_native()
        old_traces = getattr(old_snapshot, "traces", None)
        old_native = old_traces._get_native() if isinstance(old_traces, _Traces) else None
        if new_native is not None and old_native is not None:
            if key_type not in _KEY_TYPES:
                raise ValueError(f"unknown key_type: {key_type!r}")
            from_raw = Traceback._from_raw
            rows = new_native.compare_to(old_native, key_type, bool(cumulative))
            return [StatisticDiff(from_raw(r[0]), *r[1:]) for r in rows]
        new_group = self._group_by(key_type, cumulative)
        old_group = dict(old_snapshot._group_by(key_type, cumulative))
        diffs = []
        for tb, stat in new_group.items():
            old = old_group.pop(tb, None)
            old_size, old_count = (old.size, old.count) if old is not None else (0, 0)
            diffs.append(
                StatisticDiff(
                    tb, stat.size, stat.size - old_size, stat.count, stat.count - old_count
                )
            )
        diffs.extend(StatisticDiff(tb, 0, -s.size, 0, -s.count) for tb, s in old_group.items())
        diffs.sort(reverse=True, key=StatisticDiff._sort_key)
        return diffs


def _python_group_by(
    traces: Iterable[RawTrace], key_type: str, cumulative: bool
) -> list[Statistic]:
    """The stdlib's grouping in Python, for traces the engine cannot represent."""
    stats: dict[Traceback, Statistic] = {}

    def add(frames: tuple[RawFrame, ...], size: int) -> None:
        key = Traceback(frames)
        stat = stats.get(key)
        if stat is None:
            stats[key] = Statistic(key, size, 1)
        else:
            stat.size += size
            stat.count += 1

    for _domain, size, frames, _total in traces:
        if cumulative:
            for frame in frames:
                add((frame,) if key_type == "lineno" else ((frame[0], 0),), size)
        elif key_type == "traceback":
            add(frames, size)
        elif key_type == "lineno":
            add(frames[:1], size)
        else:
            add(((frames[0][0], 0),), size)
    return list(stats.values())


# `python -X tracemalloc` / PYTHONTRACEMALLOC: trace from import on, as the stdlib does from
# startup (see heapscope._startup_tracing).
_startup_tracing.start_if_requested(start, is_tracing)
