"""The value classes of ``heapscope.tracemalloc``: frames, tracebacks, traces and statistics.

They behave exactly like the standard library's (equality, ordering, hashing, ``str()`` and
``repr()``), and keep the same private seams (``Traceback._frames``, ``Trace._trace``).
"""

from __future__ import annotations

import linecache
from collections.abc import Iterator, Sequence
from functools import total_ordering
from typing import Any, TypeAlias, overload

#: A raw frame: ``(filename, lineno)``.
RawFrame: TypeAlias = tuple[str, int]
#: A raw trace: ``(domain, size, frames most recent first, total_nframe)``.
RawTrace: TypeAlias = tuple[int, int, tuple[RawFrame, ...], int]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _format_size(size: float, sign: bool) -> str:
    """Render a byte count the way tracemalloc does (``10 B``, ``1.5 KiB``, ``+3 MiB``)."""
    for unit in _UNITS:
        if abs(size) < 100 and unit != "B":
            return f"{size:+.1f} {unit}" if sign else f"{size:.1f} {unit}"
        if abs(size) < 10 * 1024 or unit == _UNITS[-1]:
            return f"{size:+.0f} {unit}" if sign else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@total_ordering
class Frame:
    """One frame of a traceback: a file name and a line number."""

    __slots__ = ("_frame",)

    def __init__(self, frame: RawFrame) -> None:
        self._frame = frame

    @property
    def filename(self) -> str:
        """The file name of the code."""
        return self._frame[0]

    @property
    def lineno(self) -> int:
        """The line number (0 if unknown)."""
        return self._frame[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame == other._frame

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame < other._frame

    def __hash__(self) -> int:
        return hash(self._frame)

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def __repr__(self) -> str:
        return f"<Frame filename={self.filename!r} lineno={self.lineno!r}>"


@total_ordering
class Traceback(Sequence[Frame]):
    """The frames of an allocation, oldest first (``frames`` is given most recent first)."""

    __slots__ = ("_frames", "_total_nframe")

    def __init__(self, frames: Sequence[RawFrame], total_nframe: int | None = None) -> None:
        self._frames: tuple[RawFrame, ...] = tuple(reversed(frames))
        self._total_nframe = total_nframe

    @classmethod
    def _from_raw(cls, frames: tuple[RawFrame, ...]) -> Traceback:
        """Fast constructor from a raw frames tuple, without ``total_nframe``."""
        tb = cls.__new__(cls)
        tb._frames = frames[::-1]
        tb._total_nframe = None
        return tb

    @property
    def total_nframe(self) -> int | None:
        """How many frames the stack had, including those the limit cut off (or None)."""
        return self._total_nframe

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, index: int) -> Frame: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Frame, ...]: ...

    def __getitem__(self, index: int | slice) -> Frame | tuple[Frame, ...]:
        if isinstance(index, slice):
            return tuple(Frame(frame) for frame in self._frames[index])
        return Frame(self._frames[index])

    def __contains__(self, frame: Any) -> bool:
        return frame._frame in self._frames

    def __hash__(self) -> int:
        return hash(self._frames)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames == other._frames

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames < other._frames

    def __str__(self) -> str:
        return str(self[0])

    def __repr__(self) -> str:
        text = f"<Traceback {tuple(self)}"
        if self._total_nframe is not None:
            text += f" total_nframe={self._total_nframe}"
        return text + ">"

    def format(self, limit: int | None = None, most_recent_first: bool = False) -> list[str]:
        """Lines like a Python traceback's; ``limit`` keeps the newest (>0) or oldest (<0)."""
        frames: Sequence[Frame] = self
        if limit is not None:
            frames = self[-limit:] if limit > 0 else self[:limit]
        ordered: Iterator[Frame] | Sequence[Frame] = (
            reversed(frames) if most_recent_first else frames
        )
        lines = []
        for frame in ordered:
            lines.append(f'  File "{frame.filename}", line {frame.lineno}')
            # Looked up at call time: callers (and the stdlib's tests) patch it.
            source = linecache.getline(frame.filename, frame.lineno).strip()
            if source:
                lines.append(f"    {source}")
        return lines


class Trace:
    """One traced memory block: its domain, size and traceback."""

    __slots__ = ("_trace",)

    def __init__(self, trace: RawTrace) -> None:
        self._trace = trace

    @property
    def domain(self) -> int:
        """The address space (0 for Python's allocators)."""
        return self._trace[0]

    @property
    def size(self) -> int:
        """Size of the block in bytes."""
        return self._trace[1]

    @property
    def traceback(self) -> Traceback:
        """Where the block was allocated."""
        return Traceback(*self._trace[2:])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self._trace == other._trace

    def __hash__(self) -> int:
        return hash(self._trace)

    def __str__(self) -> str:
        return f"{self.traceback}: {_format_size(self.size, False)}"

    def __repr__(self) -> str:
        size = _format_size(self.size, False)
        return f"<Trace domain={self.domain} size={size}, traceback={self.traceback!r}>"


class Statistic:
    """Memory allocated at one group key: total size and number of blocks."""

    __slots__ = ("count", "size", "traceback")

    def __init__(self, traceback: Traceback, size: int, count: int) -> None:
        self.traceback = traceback
        self.size = size
        self.count = count

    def __hash__(self) -> int:
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Statistic):
            return NotImplemented
        return (self.traceback, self.size, self.count) == (
            other.traceback,
            other.size,
            other.count,
        )

    def __str__(self) -> str:
        size = _format_size(self.size, False)
        text = "%s: size=%s, count=%i" % (self.traceback, size, self.count)  # noqa: UP031  (%i formats exactly like the stdlib)
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return "<Statistic traceback=%r size=%i count=%i>" % (  # noqa: UP031  (%i formats exactly like the stdlib)
            self.traceback,
            self.size,
            self.count,
        )

    def _sort_key(self) -> tuple[Any, ...]:
        return (self.size, self.count, self.traceback)


class StatisticDiff:
    """A group's size and count in a new snapshot, and their change since an old one."""

    __slots__ = ("count", "count_diff", "size", "size_diff", "traceback")

    def __init__(
        self, traceback: Traceback, size: int, size_diff: int, count: int, count_diff: int
    ) -> None:
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    def _key(self) -> tuple[Any, ...]:
        return (self.traceback, self.size, self.size_diff, self.count, self.count_diff)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatisticDiff):
            return NotImplemented
        return self._key() == other._key()

    def __str__(self) -> str:
        text = "%s: size=%s (%s), count=%i (%+i)" % (  # noqa: UP031  (%i formats exactly like the stdlib)
            self.traceback,
            _format_size(self.size, False),
            _format_size(self.size_diff, True),
            self.count,
            self.count_diff,
        )
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return "<StatisticDiff traceback=%r size=%i (%+i) count=%i (%+i)>" % (  # noqa: UP031  (%i formats exactly like the stdlib)
            self.traceback,
            self.size,
            self.size_diff,
            self.count,
            self.count_diff,
        )

    def _sort_key(self) -> tuple[Any, ...]:
        return (
            abs(self.size_diff),
            self.size,
            abs(self.count_diff),
            self.count,
            self.traceback,
        )
