"""The interpreter's own switches for tracing from startup, honoured by heapscope.tracemalloc.

``python -X tracemalloc[=N]`` and ``PYTHONTRACEMALLOC=N`` (ignored under ``-E``) make the
interpreter start the stdlib's tracer before any module is imported: the stdlib module is
tracing when a program first looks. heapscope cannot start that early, so the drop-in starts
its own tracer when it is first imported, with the limit the interpreter parsed (invalid values
never get here: the interpreter refuses them at startup). Allocations made before the import
are not traced. The stdlib's tracer keeps running too: stdlib users (e.g. the source tracebacks
of ``ResourceWarning``) still see it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def requested_limit() -> int | None:
    """The traceback limit the interpreter was asked to trace with at startup, if any."""
    asked = "tracemalloc" in sys._xoptions or (
        not sys.flags.ignore_environment and os.environ.get("PYTHONTRACEMALLOC", "0") != "0"
    )
    if not asked:
        return None
    import tracemalloc as stdlib

    # The interpreter validated the value and started the stdlib's tracer with it.
    return stdlib.get_traceback_limit() if stdlib.is_tracing() else None


def start_if_requested(start: Callable[[int], None], is_tracing: Callable[[], bool]) -> None:
    """Start heapscope's tracer if the interpreter was told to trace from startup."""
    limit = requested_limit()
    if limit is not None and not is_tracing():
        import warnings

        with warnings.catch_warnings():
            # On 3.13+ the stdlib's tracer, started by the interpreter, has a reference tracer
            # of its own: heapscope's chains to it, as expected here, not worth a warning.
            warnings.filterwarnings("ignore", "another reference tracer", RuntimeWarning)
            start(limit)
