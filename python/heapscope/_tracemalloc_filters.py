"""The trace filters of ``heapscope.tracemalloc``: ``Filter``, ``DomainFilter``, ``BaseFilter``.

Their Python matching methods (``_match``, ``_match_frame``, ``_match_traceback``) behave like
the stdlib's and serve user subclasses; exact ``Filter``/``DomainFilter`` instances are handed
to the engine as specs (``_native_filter_spec``) and matched in Rust.
"""

from __future__ import annotations

import fnmatch
import os.path
from collections.abc import Sequence
from typing import Any

from heapscope._tracemalloc_values import RawFrame, RawTrace


def _normalize_filename(filename: str) -> str:
    filename = os.path.normcase(filename)
    return filename[:-1] if filename.endswith(".pyc") else filename


class BaseFilter:
    """Base class of trace filters; ``inclusive`` keeps matching traces, else drops them."""

    def __init__(self, inclusive: bool) -> None:
        self.inclusive = inclusive

    def _match(self, trace: RawTrace) -> bool:
        raise NotImplementedError


class Filter(BaseFilter):
    """Filter traces by file name pattern (``fnmatch``), line number and domain."""

    def __init__(
        self,
        inclusive: bool,
        filename_pattern: str,
        lineno: int | None = None,
        all_frames: bool = False,
        domain: int | None = None,
    ) -> None:
        super().__init__(inclusive)
        self._filename_pattern = _normalize_filename(filename_pattern)
        self.lineno = lineno
        self.all_frames = all_frames
        self.domain = domain

    @property
    def filename_pattern(self) -> str:
        """The file name pattern (``.pyc`` read as ``.py``)."""
        return self._filename_pattern

    def _match_frame_impl(self, filename: str, lineno: int) -> bool:
        if not fnmatch.fnmatch(_normalize_filename(filename), self._filename_pattern):
            return False
        return self.lineno is None or lineno == self.lineno

    def _match_frame(self, filename: str, lineno: int) -> bool:
        return self._match_frame_impl(filename, lineno) ^ (not self.inclusive)

    def _match_traceback(self, traceback: Sequence[RawFrame]) -> bool:
        if self.all_frames:
            hit = any(self._match_frame_impl(name, line) for name, line in traceback)
            return bool(self.inclusive) if hit else not self.inclusive
        name, line = traceback[0]
        return self._match_frame(name, line)

    def _match(self, trace: RawTrace) -> bool:
        domain, _size, traceback, _total = trace
        res = self._match_traceback(traceback)
        if self.domain is None:
            return res
        if self.inclusive:
            return res and domain == self.domain
        return res or domain != self.domain


class DomainFilter(BaseFilter):
    """Filter traces by address space (domain)."""

    def __init__(self, inclusive: bool, domain: int) -> None:
        super().__init__(inclusive)
        self._domain = domain

    @property
    def domain(self) -> int:
        """The domain to match."""
        return self._domain

    def _match(self, trace: RawTrace) -> bool:
        return (trace[0] == self.domain) ^ (not self.inclusive)


def _is_i64(value: object) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _native_filter_spec(f: BaseFilter) -> tuple[Any, ...] | None:
    """The engine's form of a stdlib filter, or None if Python must evaluate it."""
    if type(f) is Filter:
        ok = type(f._filename_pattern) is str and all(
            v is None or _is_i64(v) for v in (f.lineno, f.domain)
        )
        if ok:
            return (bool(f.inclusive), f._filename_pattern, f.lineno, bool(f.all_frames), f.domain)
    elif type(f) is DomainFilter and _is_i64(f.domain):
        return (bool(f.inclusive), None, None, False, f.domain)
    return None
