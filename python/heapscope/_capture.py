"""Recording a capture file in-process: the native session plus the flush thread.

The native side samples memory every 50 ms on its own thread; this module runs a daemon
thread that drains the tracer and writes to the file every ``FLUSH_INTERVAL`` seconds, so a
program killed with SIGKILL leaves a capture readable up to its last flush.
"""

from __future__ import annotations

import _thread
import os
import sys

from heapscope import _native

# Child processes of `heapscope run` import this at start-up, so it uses `_thread` rather
# than `threading` (which imports functools and collections) and pathlib only when asked.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from pathlib import Path
else:
    import _signal  # what `signal` wraps, without importing enum

__all__ = ["DEFAULT_TRACE_LIMIT", "FLUSH_INTERVAL", "CaptureSession"]

#: Seconds between two flushes of the capture file (at least one a second).
FLUSH_INTERVAL = 0.9  # "at least once a second", with room for the drain itself
# How often the flush thread asks whether a burst of new stacks calls for an early drain.
POLL_INTERVAL = 0.05
#: Called by every session's flush thread at each poll (GIL held; must not raise): work that
#: must wait until the program's thread has moved on (`_follow`'s fork warning filter).
POLL_HOOKS: list[Callable[[], None]] = []

#: Frames kept per stack unless asked otherwise.
DEFAULT_TRACE_LIMIT = 64
#: The tracer's largest traceback limit (the stdlib's too).
MAX_TRACE_LIMIT = 65535


def _printable(arg: str) -> str:
    """An argument as the capture's UTF-8 text: bytes that are not UTF-8 (which Python keeps
    as surrogate escapes, as in file names) become U+FFFD."""
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _thread_names() -> list[tuple[int, str]]:
    threading = sys.modules.get("threading")
    if threading is None:  # the program has no named threads
        return []
    # The flush thread may run while the program is importing threading: the module is in
    # sys.modules before its body has run (no names then; the next flush or the stop has them).
    spec = getattr(threading, "__spec__", None)
    enumerate_threads = getattr(threading, "enumerate", None)
    if getattr(spec, "_initializing", False) or enumerate_threads is None:
        return []
    return [(t.native_id, t.name) for t in enumerate_threads() if t.native_id is not None]


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
        ppid: int | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        native: bool = False,
    ) -> None:
        self._path = os.fspath(path)
        self.native = native
        self.ppid = ppid
        self.flush_interval = flush_interval
        self.sample_rate = sample_rate
        self.command = list(sys.argv if command is None else command)
        self.trace_limit = trace_limit
        self.force = force
        self.size = 0
        # Released by `stop` to wake the flush thread; `_stopping` says why it woke.
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self._stopping = False
        self._error: BaseException | None = None
        self._pid = os.getpid()
        # Held while a flush writes; taken around fork() so a child never inherits the
        # recorder's lock in the middle of a write.
        # Reentrant: a SIGTERM handler may stop the session in the thread that holds it
        # across fork().
        self._flush_lock = _thread.RLock()
        self._held = False
        self._started = False
        self._stopped = False

    def check(self) -> None:
        """Raise ValueError for options ``start`` would refuse (nothing is created)."""
        if not 1 <= self.trace_limit <= MAX_TRACE_LIMIT:
            raise ValueError(
                f"the trace limit must be in 1..{MAX_TRACE_LIMIT}, not {self.trace_limit}"
            )
        if not 0 < self.flush_interval <= 60:
            raise ValueError(f"the flush interval must be in (0, 60] s, not {self.flush_interval}")
        if self.sample_rate is not None and not 0 < self.sample_rate < 2**63:
            raise ValueError(
                "the sample rate must be a positive number of bytes (under 2**63), "
                f"not {self.sample_rate}"
            )

    def start(self) -> None:
        """Create the file, start the tracer, the sampler and the flush thread."""
        self.check()
        self._pid = os.getpid()
        # The flush thread is started before tracing starts, so its own set-up is not in the
        # capture; it waits for `go` (set once the tracer runs) and `stop`. A bare `_thread`
        # thread: no start-up handshake to wait for (every followed child pays for one), and
        # the program's `threading.enumerate()` does not list it. It dies with the process,
        # like a daemon thread, and is never joined: `stop` takes the flush lock instead.
        go = _thread.allocate_lock()
        go.acquire()
        # Born with every signal blocked: signals sent to the process must reach the program's
        # threads (a SIGTERM taken here would leave the main thread asleep, its handler waiting).
        previous = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
        try:
            _thread.start_new_thread(self._flush_loop, (go,))
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)
        try:
            _native.start_capture(
                self._path,
                [_printable(arg) for arg in self.command],
                self.trace_limit,
                self.force,
                self.sample_rate,
                self.ppid,
                self.native,
            )
        except BaseException:
            self._stopping = True
            go.release()
            raise
        self._started = True
        go.release()

    @property
    def path(self) -> Path:
        """Where the capture is written."""
        from pathlib import Path

        return Path(self._path)

    @property
    def path_text(self) -> str:
        """Where the capture is written, as a string (no pathlib import)."""
        return self._path

    def _flush_loop(self, go: _thread.LockType) -> None:
        go.acquire()  # released once the tracer runs (or start failed)
        if self._stopping:
            return
        _native.ignore_current_thread()
        poll = min(POLL_INTERVAL, self.flush_interval)
        waited = 0.0
        while not self._wake.acquire(timeout=poll):
            # A SIGTERM the main thread has not handled for 200 ms: send it again there.
            _native.nudge_signal()
            for hook in POLL_HOOKS:
                hook()
            waited += poll
            if waited < self.flush_interval and not _native.capture_wants_flush():
                continue
            waited = 0.0
            try:
                with self._flush_lock:
                    if self._stopping:
                        return
                    _native.flush_capture(_thread_names())
            except BaseException as exc:  # reported by stop()
                self._error = exc
                return

    @property
    def active(self) -> bool:
        """True while this process records into this session."""
        return self._started and not self._stopped and os.getpid() == self._pid

    def flush_now(self) -> None:
        """Write what the tracer holds now (waits for a flush in progress)."""
        with self._flush_lock:
            if self.active:
                _native.flush_capture(_thread_names())

    #: OS threads an active session runs besides the program's: the flush thread and the
    #: native timeline sampler (both started before tracing starts, ended by ``stop``).
    OWN_THREADS = 2

    def hold_flushes(self) -> None:
        """Wait for a flush in progress and hold the next ones (before ``fork()``)."""
        self._flush_lock.acquire()
        self._held = True

    def release_flushes(self) -> None:
        """Let flushes go on again (after ``fork()``, in the parent)."""
        if self._held:
            self._held = False
            self._flush_lock.release()

    def stop(self, exit: tuple[str, int] | None = None) -> str:
        """Final flush, how the process ended (``("exit", code)``, ``("signal", number)``,
        ``("exec", 0)``; None if unknown) and the closing record; return the capture's path
        (a string: children stop without importing pathlib).

        Stopping twice does nothing the second time. In a child process forked while
        capturing, this does nothing: the capture belongs to the parent.
        """
        return self._stop(lambda names: _native.stop_capture(names, exit))

    def stop_at_exit(self, guess: int) -> str:
        """Like ``stop``, at interpreter exit when the status is not known to Python (the
        program returned, or raised ``SystemExit``): the C library's ``exit`` writes the real
        status (glibc); elsewhere ``guess`` is written."""
        return self._stop(lambda names: _native.stop_capture_at_exit(names, guess & 0xFF))

    def _stop(self, finish: Callable[[list[tuple[int, str]]], tuple[str, int]]) -> str:
        if not self.active:
            return self._path
        self._stopped = True
        self._stopping = True
        self._wake.release()
        # Waits for a flush in progress only; the flush thread sees `stop` and ends.
        with self._flush_lock:
            _path, self.size = finish(_thread_names())
        if self._error is not None:
            raise self._error
        return self._path
