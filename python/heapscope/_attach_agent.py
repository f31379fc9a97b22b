"""The part of ``heapscope attach`` that runs inside the target process.

``heapscope attach`` makes the target's main thread run a small stdlib-only bootstrap
(:func:`bootstrap_source`) at a safe point of its eval loop (a pending call through gdb, or
``sys.remote_exec`` on 3.14+). The bootstrap starts a thread that imports this module and calls
:func:`start`, which records a capture and returns; a watcher thread stops the capture and
takes the hooks out when the ``stop`` file appears, the duration ends, or the ``heapscope
attach`` process stops touching its heartbeat file. An ``atexit`` handler finishes the
capture if the target exits.

The work directory holds the whole conversation (every file written atomically):

* ``config.json`` (written by the CLI): version, output, duration, sampling, limits.
* ``status`` (written here): ``{"state": "tracing" | "detached" | "exited" | "error", ...}``.
* ``stop``, ``heartbeat``, ``cancel`` (written by the CLI).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from heapscope import __version__, _native
from heapscope._capture import CaptureSession

__all__ = ["bootstrap_source", "start"]

#: The detach reason when ``heapscope attach`` stopped touching the heartbeat file.
HEARTBEAT_LOST = "heapscope attach went away"

#: How often the watcher looks at the stop file, the deadline and the heartbeat.
POLL_INTERVAL = 0.1

_lock = threading.Lock()
_active: _Attached | None = None


def bootstrap_source(workdir: str) -> str:
    """The code injected into the target: stdlib only, binds no name in ``__main__``, never
    raises (a pending call that raised would surface as an error in the target's code)."""
    body = f"""
import json, os, sys, threading
w = {workdir!r}
def status(d):
    tmp = os.path.join(w, "status.tmp")
    with open(tmp, "w") as f:
        json.dump(d, f)
    os.replace(tmp, os.path.join(w, "status"))
def run():
    try:
        try:
            import heapscope._attach_agent as agent
        except BaseException as exc:
            status({{"state": "error", "kind": "import", "message": type(exc).__name__ + ": "
                    + str(exc), "executable": sys.executable, "path": sys.path}})
        else:
            agent.start(w)
    except BaseException as exc:
        try:
            status({{"state": "error", "kind": "agent", "message": type(exc).__name__
                    + ": " + str(exc)}})
        except BaseException:
            pass
if os.path.exists(os.path.join(w, "cancel")):
    import shutil
    shutil.rmtree(w, ignore_errors=True)
else:
    # Importing heapscope and starting the tracer take ~0.1 s: off the main thread, which
    # goes back to the program at once.
    threading.Thread(target=run, name="heapscope-attach-start", daemon=True).start()
"""
    run = f"exec({body!r}, {{'__name__': '__heapscope_attach__'}})"
    return f"try:\n    {run}\nexcept BaseException:\n    pass\n"


def _write_status(workdir: Path, **fields: Any) -> None:
    tmp = workdir / "status.tmp"
    tmp.write_text(json.dumps(fields))
    os.replace(tmp, workdir / "status")


class _Attached:
    """One attach window: the capture, its watcher thread and its exit handler."""

    def __init__(self, workdir: Path, session: CaptureSession, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.session = session
        duration = config.get("duration")
        self.deadline = None if duration is None else time.monotonic() + float(duration)
        self.heartbeat_timeout = float(config.get("heartbeat_timeout", 10.0))
        self.done = False
        self.thread = threading.Thread(target=self._watch, name="heapscope-attach", daemon=True)

    def _heartbeat_stale(self) -> bool:
        try:
            age = time.time() - (self.workdir / "heartbeat").stat().st_mtime
        except OSError:
            return True
        return age > self.heartbeat_timeout

    def _watch(self) -> None:
        _native.ignore_current_thread()
        while True:
            if (self.workdir / "stop").exists():
                reason = "stopped"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                reason = "duration"
            elif self._heartbeat_stale():
                reason = HEARTBEAT_LOST
            else:
                time.sleep(POLL_INTERVAL)
                continue
            self.finish("detached", reason)
            return

    def finish(self, state: str, reason: str) -> None:
        """Stop the capture (hooks out, closing record) once; report it in ``status``."""
        global _active
        with _lock:
            if self.done:
                return
            self.done = True
            _active = None
            atexit.unregister(_at_exit)
            try:
                path = self.session.stop()
            except BaseException as exc:
                _write_status(self.workdir, state="error", kind="stop", message=str(exc))
                return
            _write_status(
                self.workdir,
                state=state,
                reason=reason,
                output=str(path),
                size=self.session.size,
                tracing=_native.is_tracing(),
            )
            if reason == HEARTBEAT_LOST:  # nobody is left to read the status or remove it
                shutil.rmtree(self.workdir, ignore_errors=True)


def _at_exit() -> None:
    attached = _active
    if attached is not None:
        attached.finish("exited", "the target exited")


def _refusal(config: dict[str, Any]) -> str | None:
    if config.get("version") != __version__:
        return (
            f"the target imports heapscope {__version__} from "
            f"{Path(__file__).resolve().parent}, not {config.get('version')}: install the same "
            "heapscope in both environments"
        )
    if _active is not None or _native.capture_active():
        return "the target is already being recorded by heapscope (attach or heapscope.Tracker)"
    if _native.is_tracing():
        return "heapscope.tracemalloc is tracing in the target"
    stdlib = sys.modules.get("tracemalloc")
    if stdlib is not None and stdlib.is_tracing():
        return "the stdlib's tracemalloc is tracing in the target"
    return None


def start(workdir: str) -> None:
    """Start recording as ``workdir/config.json`` says; report in ``workdir/status``."""
    global _active
    w = Path(workdir)
    config: dict[str, Any] = json.loads((w / "config.json").read_text())
    with _lock:
        refusal = _refusal(config)
        if refusal is not None:
            _write_status(w, state="error", kind="refused", message=refusal)
            return
        session = CaptureSession(
            config["output"],
            command=list(sys.orig_argv),
            trace_limit=int(config["trace_limit"]),
            force=bool(config.get("force", False)),
            sample_rate=config.get("sample_rate"),
            flush_interval=float(config.get("flush_interval", 0.9)),
            native=bool(config.get("native", False)),
        )
        try:
            session.start()
        except BaseException as exc:
            _write_status(w, state="error", kind="start", message=str(exc))
            return
        # This thread is heapscope's (the bootstrap's "heapscope-attach-start"): what it
        # allocates from here (the watcher thread, the status file) is not the target's. It
        # ends soon after: its slot among the ignored threads is given back.
        _native._set_thread_ignored(True)
        try:
            attached = _Attached(w, session, config)
            _active = attached
            atexit.register(_at_exit)
            attached.thread.start()
            _write_status(w, state="tracing", pid=os.getpid(), output=str(session.path))
        finally:
            _native._set_thread_ignored(False)
