"""Following every process of a traced program: the environment contract, one capture stream
per process, and the hooks that end a stream cleanly (exit, ``os._exit``, ``exec``, SIGTERM)
or start a new one (``fork``).

``heapscope run`` writes the root process to ``OUT.hsc`` and every child to
``OUT.hsc.d/<pid>.hsc``. Children are found through the environment (see ``FollowConfig``):
a Python interpreter started by the program imports the ``sitecustomize`` module in
``heapscope/_bootstrap/`` (first on ``PYTHONPATH``), which calls ``heapscope._child``.
A process forked without ``exec`` gets its own stream from an ``os.register_at_fork`` hook.
"""

from __future__ import annotations

import atexit
import os
import sys

from heapscope import _capture, _native
from heapscope._capture import CaptureSession

# Every child pays for what this module imports at its start-up: no typing, dataclasses,
# pathlib or contextlib at run time, and `_signal` (what `signal` wraps, without its enums).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Mapping
    from types import FrameType
    from typing import Any, NoReturn
else:
    import _signal as signal

__all__ = [
    "BOOTSTRAP_DIR",
    "ENV_BOOTSTRAP",
    "ENV_CAPTURE_DIR",
    "ENV_NATIVE",
    "ENV_SAMPLE_RATE",
    "ENV_TRACE_LIMIT",
    "FollowConfig",
    "children_dir",
    "end",
    "install",
    "start_child",
]

#: Where the streams of child processes go (absolute path of ``OUT.hsc.d``).
ENV_CAPTURE_DIR = "HEAPSCOPE_CAPTURE_DIR"
#: Frames kept per stack in children.
ENV_TRACE_LIMIT = "HEAPSCOPE_TRACE_LIMIT"
#: Sampling rate in bytes for children (absent: every block).
ENV_SAMPLE_RATE = "HEAPSCOPE_SAMPLE_RATE"
ENV_NATIVE = "HEAPSCOPE_NATIVE"
#: The directory prepended to ``PYTHONPATH`` (removed again from a child's ``sys.path``).
ENV_BOOTSTRAP = "HEAPSCOPE_BOOTSTRAP"

#: The directory holding heapscope's ``sitecustomize.py``.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "_bootstrap")


def children_dir(capture: str | os.PathLike[str]) -> str:
    """``OUT.hsc`` -> ``OUT.hsc.d``: where the streams of its child processes go."""
    return os.fspath(capture) + ".d"


class FollowConfig:
    """What every process of the tree needs to record itself: the children directory
    (absolute), the traceback limit and the sampling rate (None: every block)."""

    __slots__ = ("capture_dir", "native", "sample_rate", "trace_limit")

    def __init__(
        self, capture_dir: str, trace_limit: int, sample_rate: int | None, native: bool = False
    ) -> None:
        self.capture_dir = capture_dir
        self.trace_limit = trace_limit
        self.sample_rate = sample_rate
        self.native = native

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus the variables that make child interpreters record themselves."""
        env = dict(base)
        env[ENV_CAPTURE_DIR] = self.capture_dir
        env[ENV_TRACE_LIMIT] = str(self.trace_limit)
        if self.sample_rate is not None:
            env[ENV_SAMPLE_RATE] = str(self.sample_rate)
        else:
            env.pop(ENV_SAMPLE_RATE, None)
        if self.native:
            env[ENV_NATIVE] = "1"
        else:
            env.pop(ENV_NATIVE, None)
        env[ENV_BOOTSTRAP] = BOOTSTRAP_DIR
        old = base.get("PYTHONPATH", "")
        env["PYTHONPATH"] = BOOTSTRAP_DIR + (os.pathsep + old if old else "")
        return env

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> FollowConfig | None:
        """The configuration ``environ`` wrote, or None if ``env`` has none (or a bad one)."""
        directory = env.get(ENV_CAPTURE_DIR)
        if not directory:
            return None
        try:
            limit = int(env.get(ENV_TRACE_LIMIT, "64"))
            rate_text = env.get(ENV_SAMPLE_RATE)
            rate = int(rate_text) if rate_text else None
        except ValueError:
            return None
        return cls(directory, limit, rate, env.get(ENV_NATIVE) == "1")


# This process's state. After fork() the child gets a copy, which the fork hook replaces.
_config: FollowConfig | None = None
_session: CaptureSession | None = None
_hooks_installed = False
_ending = False
#: A SIGTERM taken while the stream was being finished, handled once the finish is done.
_deferred_signal: int | None = None
_sys_exit_code: int | None = None
_real_os_exit = os._exit
_real_execv = os.execv
_real_execve = os.execve


def install(session: CaptureSession, config: FollowConfig | None, *, child: bool) -> None:
    """Make ``session`` this process's stream and install the process hooks (once per
    process lineage). ``config`` None: children are not followed (``--no-follow``)."""
    global _config, _session, _hooks_installed
    _config = config
    _session = session
    if _hooks_installed:
        return
    _hooks_installed = True
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
    )
    _install_sigterm_handler()
    # Replaced by wrappers that end the stream, then call the original.
    os._exit = _os_exit
    os.execv = _execv  # type: ignore[assignment]  # accepts what the original does
    os.execve = _execve  # type: ignore[assignment]
    # The fork warning's filter goes once the parent's os.fork() returned (see _before_fork).
    _capture.POLL_HOOKS.append(_show_the_fork_warning_again)
    if child:
        sys.exit = _sys_exit
    atexit.register(_at_exit)


def end(exit: tuple[str, int] | None) -> None:
    """End this process's stream (if it has one) with how the process ends; never raises."""
    _finish(None, exit)


def end_at_exit(guess: int) -> None:
    """End this process's stream at interpreter exit: the C library's ``exit`` writes the
    status the process really exits with (``guess`` where it cannot); never raises."""
    _finish(guess, None)


def _finish(guess: int | None, exit: tuple[str, int] | None) -> None:
    """``session.stop_at_exit(guess)`` if a guess is given, else ``session.stop(exit)``.
    What ending allocates (the last drain, thread names) is heapscope's, not the program's:
    the thread is ignored meanwhile (no closure made before that, as it would be traced)."""
    _native._set_thread_ignored(True)
    try:
        _finish_stream(guess, exit)
    finally:
        _native._set_thread_ignored(False)  # a stream may start again (failed exec, Tracker)


def _finish_stream(guess: int | None, exit: tuple[str, int] | None) -> None:
    global _session, _ending, _deferred_signal
    session = _session
    if session is None or _ending or not session.active:
        return
    _ending = True
    try:
        if guess is None:
            session.stop(exit)
        else:
            session.stop_at_exit(guess)
    except Exception as exc:  # the program's own exit must not fail because of heapscope
        try:  # noqa: SIM105  (contextlib costs every child an import)
            sys.stderr.write(f"heapscope: could not finish {session.path_text}: {exc}\n")
        except Exception:
            pass
    finally:
        _session = None
        _ending = False
    if _deferred_signal is not None:
        signum, _deferred_signal = _deferred_signal, None
        _die_by(signum)


def start_child(config: FollowConfig, ppid: int) -> CaptureSession:
    """Start this process's stream in the children directory: ``<pid>.hsc``, or
    ``<pid>.<n>.hsc`` if that pid already has one (a program after ``exec``)."""
    pid = os.getpid()
    command = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    n = 0
    while True:
        name = f"{pid}.hsc" if n == 0 else f"{pid}.{n}.hsc"
        path = os.path.join(config.capture_dir, name)
        if not os.path.exists(path):
            break
        n += 1
    session = CaptureSession(
        path,
        command=command,
        trace_limit=config.trace_limit,
        sample_rate=config.sample_rate,
        ppid=ppid,
        native=config.native,
    )
    # Hooks first: what installing them allocates is not the program's.
    install(session, config, child=True)
    session.start()
    return session


def suspend() -> tuple[CaptureSession, FollowConfig | None] | None:
    """End this process's stream so another capture (``heapscope.Tracker``) can run; returns
    what ``resume`` needs, or None if the process has no stream."""
    session, config = _session, _config
    if session is None or not session.active:
        return None
    end(None)
    return session, config


def resume(state: tuple[CaptureSession, FollowConfig | None] | None) -> None:
    """Start a new stream for this process after ``suspend`` (children directory only)."""
    if state is None:
        return
    _session_before, config = state
    if config is not None and os.path.isdir(config.capture_dir):
        _restart(config)


def _restart(config: FollowConfig) -> None:
    try:
        start_child(config, os.getppid())
    except Exception as exc:
        write_untraced_note(config.capture_dir, f"could not record again: {exc}")


# --- hooks -------------------------------------------------------------------------------


def _before_fork() -> None:
    if _session is not None and _session.active:
        _session.hold_flushes()
        if sys.version_info >= (3, 12):
            _native._set_thread_ignored(True)  # what this hook allocates is not the program's
            try:
                _hide_the_fork_warning_of_our_threads(_session)
            finally:
                _native._set_thread_ignored(False)


def _after_fork_parent() -> None:
    if _session is not None:
        _session.release_flushes()
    # The warning comes after this hook, inside os.fork(): the flush thread takes the filter
    # out at its next poll (within 50 ms).


def _after_fork_child() -> None:
    global _session
    _show_the_fork_warning_again()  # the child is not warned
    # The parent's session (and its held lock) belong to the parent: never touched here.
    _session = None
    config = _config
    if config is None or _about_to_exec():
        return
    try:
        start_child(config, os.getppid())
    except Exception as exc:
        write_untraced_note(config.capture_dir, f"could not start recording after fork: {exc}")


#: What CPython 3.12+ warns in ``os.fork()`` and ``os.forkpty()``, in the parent after the
#: fork hooks, when the process runs more than one thread (it counts them in
#: ``/proc/self/stat``, heapscope's own included).
_FORK_WARNING = (
    r"This process \(pid=\d+\) is multi-threaded, use of fork(pty)?\(\) may lead to deadlocks"
)
#: The warnings filter the last fork added, until it is taken out again.
_fork_filter: Any = None


def _hide_the_fork_warning_of_our_threads(session: CaptureSession) -> None:
    """heapscope's threads (the flush thread, the timeline sampler) are not the program's: a
    program whose only thread forks gets no warning about threads without heapscope, so it
    gets none with it. If no other thread is the program's, a filter hides that warning of
    this fork; a thread of the program's own leaves the warning as it is. (Filtered rather
    than by wrapping ``os.fork``: the warning names the frame that calls it.)"""
    global _fork_filter
    # Counted, not named: right after the session starts, its threads may not have run yet
    # (no name of their own); from then until `stop` both exist as OS threads.
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return
    if threads - session.OWN_THREADS > 1 or _fork_filter is not None:
        return
    import warnings

    warnings.filterwarnings("ignore", message=_FORK_WARNING, category=DeprecationWarning)
    _fork_filter = _warning_filters()[0]


def _show_the_fork_warning_again() -> None:
    """Take out the filter ``_before_fork`` added (the child at once, the parent from the flush
    thread's poll, once its ``os.fork()`` has returned)."""
    global _fork_filter
    item, _fork_filter = _fork_filter, None
    if item is None:
        return
    import warnings

    try:
        _warning_filters().remove(item)
    except ValueError:
        return
    warnings._filters_mutated()  # type: ignore[attr-defined]  # CPython's, 3.11-3.15


def _warning_filters() -> list[Any]:
    """The filters list in force (3.14+ may keep one per context)."""
    import warnings

    get: Any = getattr(warnings, "_get_filters", None)
    if get is not None:
        filters: list[Any] = get()
        return filters
    return warnings.filters  # type: ignore[return-value]  # a list at run time


def _about_to_exec() -> bool:
    """True in the child `subprocess` forks to run a ``preexec_fn`` before it execs: that
    child never runs the program (the program it execs records itself if it is Python)."""
    try:
        caller = sys._getframe(2)  # past this function and the fork hook
    except ValueError:
        return False
    code = caller.f_code
    return code.co_name == "_execute_child" and code.co_filename.endswith("subprocess.py")


def _os_exit(status: int) -> NoReturn:
    end(("exit", status & 0xFF))
    _real_os_exit(status)


def _execv(path: Any, argv: Any) -> None:
    if not _may_exec(path):
        _real_execv(path, argv)  # fails: the program goes on, its stream too
    _before_exec()
    try:
        _real_execv(path, argv)
    except BaseException:
        _after_failed_exec()
        raise


def _execve(path: Any, argv: Any, env: Any) -> None:
    if not _may_exec(path):
        _real_execve(path, argv, env)  # fails: the program goes on, its stream too
    _before_exec()
    try:
        _real_execve(path, argv, env)
    except BaseException:
        _after_failed_exec()
        raise


def _may_exec(path: Any) -> bool:
    """False for a path ``exec`` cannot run (no such file, not executable): ``os.execvp``
    tries each directory of PATH in turn, and the stream is ended only before an exec that
    can succeed, not restarted after each that fails. A file descriptor: True."""
    if isinstance(path, int):
        return True
    try:
        return os.access(path, os.X_OK) and not os.path.isdir(path)
    except (TypeError, ValueError):
        return True  # the real exec raises its own error


def _before_exec() -> None:
    end(("exec", 0))


def _after_failed_exec() -> None:
    # The program goes on: record it again, in a new stream of this pid.
    if _config is not None and os.path.isdir(_config.capture_dir):
        _restart(_config)


def _sys_exit(status: object = None) -> NoReturn:
    global _sys_exit_code
    _sys_exit_code = _status_of(status)
    raise SystemExit(status)  # what sys.exit does


def _status_of(code: object) -> int:
    """The exit status the interpreter derives from ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _at_exit() -> None:
    _native._set_thread_ignored(True)  # heapscope's work from here (the process is ending)
    last = getattr(sys, "last_value", None)
    if isinstance(last, KeyboardInterrupt):
        # The interpreter re-raises SIGINT to die by it: no exit status.
        end(("signal", signal.SIGINT))
        return
    guess = _sys_exit_code if _sys_exit_code is not None else (1 if last is not None else 0)
    end_at_exit(guess)
    if _session is None and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        # The interpreter finalizes after this, and puts its handlers back to the default
        # first: a SIGTERM then would kill the process before `exit()` writes its status.
        # A native handler ends the stream first (set after the default, which replaces it).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _native.arm_exit_signal(signal.SIGTERM)


_previous_sigterm: Callable[[int, FrameType | None], Any] | None = None


def _install_sigterm_handler() -> None:
    """Flush on SIGTERM, then die by it as before. A handler the program already has is
    chained after the flush; an ignored SIGTERM stays ignored."""
    global _previous_sigterm
    try:
        current = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return
    if current == signal.SIG_IGN or current is None:
        return
    if callable(current):
        _previous_sigterm = current
        handler = _chained_sigterm
    else:
        handler = _on_sigterm
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return
    # A SIGTERM that lands just before the main thread blocks would wait for that call to
    # return: the flush thread nudges the main thread (`signal_watch.rs`).
    _native.watch_signal(signal.SIGTERM)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _deferred_signal
    _native.signal_taken()
    if _ending:
        # This handler interrupted the finish of the stream (handlers run between two
        # bytecodes of the main thread): dying now would cut it short. It ends first.
        _deferred_signal = signum
        return
    end(("signal", signum))
    _die_by(signum)


def _die_by(signum: int) -> None:
    """Die by ``signum`` as without heapscope. A stream finished at exit waits for the status
    ``exit()`` gives, which a signal never reaches: it is ended with the signal first."""
    try:  # noqa: SIM105
        _native.end_capture_by_signal(signum)
    except Exception:  # the process dies by its signal whatever happens here
        pass
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _chained_sigterm(signum: int, frame: FrameType | None) -> None:
    _native.signal_taken()
    session = _session
    if session is not None and session.active:
        try:  # noqa: SIM105
            session.flush_now()
        except Exception:  # the program's handler runs whatever happens here
            pass
    if _previous_sigterm is not None:
        _previous_sigterm(signum, frame)


def write_untraced_note(directory: str, reason: str) -> None:
    """Leave ``<pid>.untraced`` in the children directory: the reader lists it as a Python
    process that could not be traced (format in docs/capture-format.md)."""
    v = sys.version_info
    command = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    fields = [str(os.getpid()), str(os.getppid()), f"{v[0]}.{v[1]}.{v[2]}", reason, *command]
    path = os.path.join(directory, f"{os.getpid()}.untraced")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\0".join(fields))
    except OSError:
        pass
