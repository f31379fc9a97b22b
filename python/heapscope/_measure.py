"""Measure a block of code under heapscope's tracer: its peak, what it kept, and the top lines.

Shared by the pytest plugin and the IPython magic. A :class:`Measuring` starts the tracer, and
:meth:`Measuring.finish` reads the peak, collects garbage, takes a snapshot of what is still
held and stops the tracer. It never touches a tracer somebody else started: :meth:`start`
returns ``False`` and :meth:`finish` returns ``None`` in that case.

It uses the stdlib-identical API of :mod:`heapscope.tracemalloc` (``is_tracing``,
``start(nframe)``, ``stop``, ``get_traced_memory``, ``reset_peak``, ``take_snapshot``,
``Snapshot.filter_traces``, ``Snapshot.statistics``, ``Filter`` and the value classes) plus the
tracer's exact figures at the peak (``_native._peak_traces``).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from heapscope import _native, tracemalloc

__all__ = ["LineStat", "Measurement", "Measuring", "package_pattern", "top_lines_at_peak"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class LineStat:
    """Memory allocated at one line (or one traceback, most recent call first)."""

    size: int
    count: int
    frames: tuple[str, ...]

    @property
    def where(self) -> str:
        """The ``file:line`` of the most recent frame."""
        return self.frames[0] if self.frames else "<unknown>"

    def to_plain(self) -> list[object]:
        """A JSON/execnet-friendly form (pytest-xdist sends reports between processes)."""
        return [self.size, self.count, list(self.frames)]

    @classmethod
    def from_plain(cls, plain: Sequence[object]) -> LineStat:
        """Inverse of :meth:`to_plain`."""
        size, count, frames = plain
        assert isinstance(size, int) and isinstance(count, int) and isinstance(frames, list)
        return cls(size, count, tuple(str(frame) for frame in frames))


@dataclass(frozen=True)
class Measurement:
    """What a measured block did: its peak and what it still held at the end.

    ``peak_lines`` are the lines that held memory at the moment of the peak (see
    :func:`top_lines_at_peak`); ``kept_lines`` those still holding it at the end.
    """

    peak: int
    kept: int
    peak_lines: tuple[LineStat, ...]
    kept_lines: tuple[LineStat, ...]

    def to_plain(self) -> dict[str, object]:
        """A JSON/execnet-friendly form."""
        return {
            "peak": self.peak,
            "kept": self.kept,
            "peak_lines": [line.to_plain() for line in self.peak_lines],
            "kept_lines": [line.to_plain() for line in self.kept_lines],
        }

    @classmethod
    def from_plain(cls, plain: dict[str, object]) -> Measurement:
        """Inverse of :meth:`to_plain`."""
        peak_lines, kept_lines = plain["peak_lines"], plain["kept_lines"]
        assert isinstance(peak_lines, list) and isinstance(kept_lines, list)
        peak, kept = plain["peak"], plain["kept"]
        assert isinstance(peak, int) and isinstance(kept, int)
        return cls(
            peak=peak,
            kept=kept,
            peak_lines=tuple(LineStat.from_plain(line) for line in peak_lines),
            kept_lines=tuple(LineStat.from_plain(line) for line in kept_lines),
        )


def _module_file(module: object) -> str:
    return os.path.abspath(str(getattr(module, "__file__", "<unknown>")))


def _tracer_file() -> str:
    # Where take_snapshot() is written (the stdlib's file when heapscope.tracemalloc re-exports
    # it): its own allocations while snapshotting are not the measured code's.
    code = getattr(tracemalloc.take_snapshot, "__code__", None)
    return str(code.co_filename) if code is not None else _module_file(tracemalloc)


def package_pattern(module: object) -> str:
    """A ``Filter`` pattern matching every file of ``module``'s package directory."""
    return os.path.dirname(_module_file(module)) + os.sep + "*"


def _key_type(nframe: int) -> str:
    return "lineno" if nframe <= 1 else "traceback"


def _line_stats(stats: Sequence[tracemalloc.Statistic], top: int) -> tuple[LineStat, ...]:
    lines = []
    for stat in stats[:top]:
        frames = tuple(f"{frame.filename}:{frame.lineno}" for frame in reversed(stat.traceback))
        lines.append(LineStat(stat.size, stat.count, frames))
    return tuple(lines)


def top_lines_at_peak(
    filters: Sequence[tracemalloc.Filter], nframe: int, top: int
) -> tuple[LineStat, ...]:
    """Return the ``top`` lines that held the most memory at the peak.

    Called while the tracer still runs. The tracer keeps, per traceback, the bytes and blocks
    held at the moment of the peak (since ``reset_peak``); they are filtered with ``filters``
    (as ``Snapshot.filter_traces`` would) and grouped by line, or by whole traceback when
    ``nframe`` > 1.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for size, count, frames, _total in _native._peak_traces():
        raw = tuple((filename, lineno) for filename, lineno, _function in frames)
        if not all(f._match_traceback(raw) for f in filters):
            continue
        key = raw if nframe > 1 else raw[:1]
        figures = groups.setdefault(tuple(f"{fn}:{ln}" for fn, ln in key), [0, 0])
        figures[0] += size
        figures[1] += count
    ranked = sorted(groups.items(), key=lambda item: (item[1][0], item[1][1]), reverse=True)
    return tuple(LineStat(size, count, frames) for frames, (size, count) in ranked[:top])


class Measuring:
    """Trace one block of code: ``start()``, run it, then ``finish()``.

    ``nframe`` is the traceback limit given to ``tracemalloc.start``; with more than one frame
    the lines are grouped by whole traceback. ``top`` is how many lines to keep. Allocations
    whose most recent frame matches an ``exclude`` pattern (``fnmatch``, as ``tracemalloc.Filter``)
    or lies in heapscope itself are left out of what was kept and of the lines (not of the peak).
    With ``native``, what native code takes with ``malloc`` and ``mmap`` counts too; its lines
    are those of the C code that called ``malloc`` (the innermost frame).
    """

    def __init__(
        self,
        nframe: int = 1,
        top: int = 5,
        exclude: Sequence[str] = (),
        profile_command: Sequence[str] | None = None,
        native: bool = False,
    ) -> None:
        self.nframe = nframe
        self.native = native
        self.top = top
        # With a command, finish() also keeps the tracer's figures as a profile (``profile``)
        # for the HTML report.
        self.profile_command = None if profile_command is None else list(profile_command)
        self.profile: _native.Profile | None = None
        self._started_at = 0.0
        self._exclude = [_PACKAGE_DIR + os.sep + "*", _tracer_file(), *exclude]
        self._started = False

    def start(self) -> bool:
        """Start the tracer; return ``False`` (and do nothing) if it is already tracing."""
        if tracemalloc.is_tracing():
            return False
        tracemalloc.start(self.nframe, native=self.native)
        tracemalloc.reset_peak()
        self._started = True
        self._started_at = time.monotonic()
        return True

    def finish(self) -> Measurement | None:
        """Read the peak and what is still held (after ``gc.collect()``), then stop the tracer.

        Returns ``None`` if :meth:`start` did not start the tracer or the tracer was stopped
        by the measured code itself.
        """
        if not self._started:
            return None
        self._started = False
        if not tracemalloc.is_tracing():
            return None
        filters = [tracemalloc.Filter(False, pattern) for pattern in self._exclude]
        try:
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()
            end = tracemalloc.take_snapshot().filter_traces(filters)
            peak_lines = top_lines_at_peak(filters, self.nframe, self.top)
            if self.profile_command is not None:
                elapsed_ms = int((time.monotonic() - self._started_at) * 1000)
                self.profile = _native._profile_of_tracer(self.profile_command, elapsed_ms)
        finally:
            tracemalloc.stop()
        kept_stats = end.statistics(_key_type(self.nframe))
        return Measurement(
            peak=peak,
            kept=sum(stat.size for stat in kept_stats),
            peak_lines=peak_lines,
            kept_lines=_line_stats(kept_stats, self.top),
        )
