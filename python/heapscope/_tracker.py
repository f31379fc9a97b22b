"""``heapscope.Tracker``: record part of a program to a capture file."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import TracebackType

from heapscope import _follow
from heapscope._capture import DEFAULT_TRACE_LIMIT, CaptureSession

__all__ = ["Tracker"]


class Tracker(contextlib.ContextDecorator):
    """Record the memory of a block of code (or of every call of a function) to ``path``.

    As a context manager::

        with heapscope.Tracker("build.hsc"):
            build()

    or as a decorator (each call overwrites the capture, so pass ``force=True`` if the
    function runs more than once)::

        @heapscope.Tracker("build.hsc", force=True)
        def build(): ...

    Read the capture with ``heapscope report build.hsc``.

    ``native=True`` also records what native code (C extensions, libraries loaded with
    ctypes, threads C code started) takes with the malloc family and ``mmap``, with the C
    frames above the Python stack that called it (``heapscope run --native``). If that cannot
    be set up, entering the Tracker raises ``HeapscopeError`` and nothing is installed.

    In a process that ``heapscope run`` records (the program or one of its children), the
    process's own stream ends while the Tracker records, and a new one starts after it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        force: bool = False,
        trace_limit: int = DEFAULT_TRACE_LIMIT,
        sample_rate: int | None = None,
        native: bool = False,
    ) -> None:
        self.path = Path(path)
        self.native = native
        self.force = force
        self.trace_limit = trace_limit
        self.sample_rate = sample_rate
        self._session: CaptureSession | None = None
        self._suspended: tuple[CaptureSession, _follow.FollowConfig | None] | None = None

    def __enter__(self) -> Tracker:
        if self._session is not None:
            raise RuntimeError("this Tracker is already recording")
        session = CaptureSession(
            self.path,
            command=list(sys.argv),
            trace_limit=self.trace_limit,
            force=self.force,
            sample_rate=self.sample_rate,
            native=self.native,
        )
        self._suspended = _follow.suspend()
        try:
            session.start()
        except BaseException:
            _follow.resume(self._suspended)
            self._suspended = None
            raise
        self._session = session
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        suspended, self._suspended = self._suspended, None
        try:
            if session is not None:
                session.stop()
        finally:
            _follow.resume(suspended)
