"""Recording a capture file in-process: the native session plus the flush thread.

The native side samples memory every 50 ms on its own thread; this module runs a daemon
thread that drains the tracer and writes to the file every ``FLUSH_INTERVAL`` seconds, so a
program killed with SIGKILL leaves a capture readable up to its last flush.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from heapscope import _native

__all__ = ["DEFAULT_TRACE_LIMIT", "FLUSH_INTERVAL", "CaptureSession"]

#: Seconds between two flushes of the capture file (at least one a second).
FLUSH_INTERVAL = 0.9  # "at least once a second", with room for the drain itself

#: Frames kept per stack unless asked otherwise.
DEFAULT_TRACE_LIMIT = 64


def _thread_names() -> list[tuple[int, str]]:
    return [(t.native_id, t.name) for t in threading.enumerate() if t.native_id is not None]


class CaptureSession:
    """One capture being recorded: start it, let it run, stop it once.

    ``flush_interval``: seconds between two writes (``--live`` readers want a shorter one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        command: list[str] | None = None,
        trace_limit: int = DEFAULT_TRACE_LIMIT,
        force: bool = False,
        sample_rate: int | None = None,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.sample_rate = sample_rate
        self.command = list(sys.argv if command is None else command)
        self.trace_limit = trace_limit
        self.force = force
        self.size = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pid = os.getpid()

    def start(self) -> None:
        """Create the file, start the tracer, the sampler and the flush thread."""
        if not 1 <= self.trace_limit <= 65535:
            raise ValueError(f"the trace limit must be in 1..65535, not {self.trace_limit}")
        self._pid = os.getpid()
        if not 0 < self.flush_interval <= 60:
            raise ValueError(f"the flush interval must be in (0, 60] s, not {self.flush_interval}")
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(
                f"the sample rate must be a positive number of bytes, not {self.sample_rate}"
            )
        # The flush thread is created and started before tracing starts, so its own set-up is
        # not in the capture; it waits for `go` (set once the tracer runs) and `stop`.
        go = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_loop, args=(go,), name="heapscope-flush", daemon=True
        )
        self._thread.start()
        try:
            _native.start_capture(
                str(self.path), self.command, self.trace_limit, self.force, self.sample_rate
            )
        except BaseException:
            self._stop.set()
            go.set()
            self._thread.join()
            self._thread = None
            raise
        go.set()

    def _flush_loop(self, go: threading.Event) -> None:
        go.wait()
        if self._stop.is_set():
            return
        _native.ignore_current_thread()
        while not self._stop.wait(self.flush_interval):
            try:
                _native.flush_capture(_thread_names())
            except BaseException as exc:  # reported by stop()
                self._error = exc
                return

    def stop(self) -> Path:
        """Final flush, closing record; return the path of the capture.

        In a child process forked while capturing, this does nothing: the capture belongs to
        the parent.
        """
        if os.getpid() != self._pid:
            return self.path
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _path, self.size = _native.stop_capture(_thread_names())
        if self._error is not None:
            raise self._error
        return self.path
