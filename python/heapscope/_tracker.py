"""``heapscope.Tracker``: record part of a program to a capture file."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from heapscope import _follow
from heapscope._capture import DEFAULT_TRACE_LIMIT, CaptureSession

__all__ = ["Tracker"]


_F = TypeVar("_F", bound=Callable[..., Any])
# `inspect`'s CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR (inspect itself is a heavy import).
_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


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
    heapscope has one tracer per process: a Tracker entered while ``heapscope.tracemalloc``
    traces records from that tracer (the capture starts with the blocks it holds) and leaves it
    tracing, as it was, when it ends; inside a Tracker, ``heapscope.tracemalloc.start()`` and
    ``stop()`` change nothing (the tracer is the capture's).
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
        except FileExistsError:
            _follow.resume(self._suspended)
            self._suspended = None
            raise FileExistsError(
                errno.EEXIST, "already exists (pass force=True to overwrite it)", str(self.path)
            ) from None
        except BaseException:
            _follow.resume(self._suspended)
            self._suspended = None
            raise
        self._session = session
        return self

    def __call__(self, func: _F) -> _F:
        """Record every call of ``func``: of a generator (or async generator) function, the
        whole iteration, of a coroutine function, until it returns (contextlib's decorator
        would only record the creation of the generator or coroutine)."""
        flags = getattr(getattr(func, "__code__", None), "co_flags", 0)
        if flags & _CO_GENERATOR:

            @functools.wraps(func)
            def generator(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return (yield from func(*args, **kwargs))

            return generator  # type: ignore[return-value]
        if flags & _CO_COROUTINE:

            @functools.wraps(func)
            async def coroutine(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return await func(*args, **kwargs)

            return coroutine  # type: ignore[return-value]
        if flags & _CO_ASYNC_GENERATOR:

            @functools.wraps(func)
            async def async_generator(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    async for item in func(*args, **kwargs):
                        yield item

            return async_generator  # type: ignore[return-value]
        return super().__call__(func)

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
