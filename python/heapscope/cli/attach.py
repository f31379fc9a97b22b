"""``heapscope attach PID``: record a capture of a running Python process for a while.

The checks of :mod:`heapscope._attach_target` run first and only read ``/proc``; then the
bootstrap is queued in the target (:mod:`heapscope._attach_inject`) and the agent
(:mod:`heapscope._attach_agent`) records until the duration ends, Ctrl-C, or the target exits,
and takes its hooks out. This process talks to the agent through files in a work directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from heapscope import __version__
from heapscope._attach_agent import bootstrap_source
from heapscope._attach_inject import inject
from heapscope._attach_target import Target, inspect_target
from heapscope._capture import DEFAULT_TRACE_LIMIT, FLUSH_INTERVAL, MAX_TRACE_LIMIT
from heapscope.errors import AttachError, HeapscopeError

#: Seconds between two touches of the heartbeat file (the agent detaches if they stop).
HEARTBEAT_INTERVAL = 0.5
#: Flush interval in the target with ``--live`` (the UI refreshes at least twice a second).
LIVE_FLUSH_INTERVAL = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``attach``'s options."""
    parser.add_argument("pid", type=int, help="process id of a running Python program")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="detach after this many seconds (default: at Ctrl-C or when the target exits)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="capture file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing capture")
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        metavar="BYTES",
        help="sample one block per BYTES allocated on average (production mode, e.g. 524288)",
    )
    parser.add_argument(
        "--trace-limit",
        type=int,
        default=DEFAULT_TRACE_LIMIT,
        metavar="N",
        help=f"frames kept per stack (default {DEFAULT_TRACE_LIMIT})",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up if the target's main thread runs no Python code for this long (default 10)",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="also record what native code takes with malloc and mmap from now on, with C "
        "frames in the stacks (as heapscope run --native)",
    )
    parser.add_argument("--live", action="store_true", help="watch memory in a terminal UI")


def _default_output(pid: int) -> Path:
    n = 0
    while True:
        path = Path(f"heapscope-attach.{pid}.{n}.hsc")
        if not path.exists():
            return path
        n += 1


def _validate(args: argparse.Namespace) -> None:
    if args.duration is not None and args.duration <= 0:
        raise ValueError("--duration must be a positive number of seconds")
    if args.sample_rate is not None and args.sample_rate <= 0:
        raise ValueError("--sample-rate must be a positive number of bytes")
    if not 1 <= args.trace_limit <= MAX_TRACE_LIMIT:
        raise ValueError(f"the trace limit must be in 1..{MAX_TRACE_LIMIT}, not {args.trace_limit}")
    if args.start_timeout <= 0:
        raise ValueError("--start-timeout must be positive")
    if args.live:
        from heapscope.cli._live import require_terminal

        require_terminal()


def _make_workdir(target: Target) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"heapscope-attach-{target.pid}-"))
    workdir.chmod(0o755)
    if os.geteuid() == 0 and target.uid != 0:
        # The agent runs as the target's user and writes its status here.
        os.chown(workdir, target.uid, target.gid)
    return workdir


def _write(path: Path, text: str, target: Target) -> None:
    path.write_text(text)
    if os.geteuid() == 0 and target.uid != 0:
        os.chown(path, target.uid, target.gid)


def _read_status(workdir: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((workdir / "status").read_text())
    except (OSError, ValueError):
        return None
    return status


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class Attachment:
    """The CLI's side of one attach window (work directory, heartbeat, status)."""

    def __init__(self, target: Target, workdir: Path, output: Path) -> None:
        self.target = target
        self.workdir = workdir
        self.output = output
        self._last_beat = 0.0

    def beat(self) -> None:
        """Touch the heartbeat file (at most every ``HEARTBEAT_INTERVAL``)."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_INTERVAL:
            (self.workdir / "heartbeat").touch()
            self._last_beat = now

    def status(self) -> dict[str, Any] | None:
        """The agent's last status, if any."""
        return _read_status(self.workdir)

    def finished(self) -> bool:
        """True once the agent detached, or the target is gone."""
        status = self.status()
        state = status.get("state") if status else None
        return state in ("detached", "exited", "error") or not _alive(self.target.pid)

    def request_stop(self) -> None:
        """Ask the agent to stop recording and take its hooks out."""
        _write(self.workdir / "stop", "", self.target)


def _start_error(status: dict[str, Any], target: Target) -> AttachError:
    message = str(status.get("message", "unknown error"))
    if status.get("kind") == "import":
        path = os.pathsep.join(str(p) for p in status.get("path", []))
        return AttachError(
            f"heapscope is not importable in process {target.pid} ({message}); its Python is "
            f"{status.get('executable')} with sys.path {path}: install heapscope=={__version__} "
            "in the target's environment"
        )
    return AttachError(f"process {target.pid}: {message}")


def _wait_started(att: Attachment, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        att.beat()
        status = att.status()
        if status is not None:
            if status.get("state") == "error":
                raise _start_error(status, att.target)
            return status
        if not _alive(att.target.pid):
            raise AttachError(f"process {att.target.pid} exited before tracing started")
        time.sleep(0.02)
    _write(att.workdir / "cancel", "", att.target)
    raise AttachError(
        f"process {att.target.pid} ran no Python code in its main thread for {timeout:g} s "
        "(blocked in a system call?): nothing was started, and the queued request is "
        "cancelled; try again with a longer --start-timeout"
    )


def _record(att: Attachment, duration: float | None, live: bool) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    try:
        if live:
            from heapscope.cli._live import run_ui

            run_ui(
                att.output,
                title=f"process {att.target.pid}",
                note="the target's output is its own; q closes this UI, recording goes on",
                tick=att.beat,
                status=lambda: "detached" if _window_over(att, deadline) else None,
            )
            if not _window_over(att, deadline):
                print("heapscope: UI closed; still recording (Ctrl-C detaches)", file=sys.stderr)
        while not _window_over(att, deadline):
            att.beat()
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    if not att.finished():
        att.request_stop()
    # The agent's final drain and closing record; the target may also die meanwhile.
    limit = time.monotonic() + 30
    while not att.finished() and time.monotonic() < limit:
        att.beat()
        time.sleep(0.02)


def _window_over(att: Attachment, deadline: float | None) -> bool:
    return att.finished() or (deadline is not None and time.monotonic() >= deadline)


def execute(args: argparse.Namespace) -> int:
    """Attach, record, detach; 0 when a capture was written."""
    _validate(args)
    target = inspect_target(args.pid)
    if not target.same_root:
        raise AttachError(
            f"process {target.pid} sees another root directory (a container): run heapscope "
            "attach inside its container (e.g. kubectl exec / docker exec), where the same "
            "heapscope is installed"
        )
    output = (Path(args.output) if args.output else _default_output(target.pid)).resolve()
    if output.exists() and not args.force:
        raise HeapscopeError(f"{output} already exists (use --force to overwrite it)")
    workdir = _make_workdir(target)
    try:
        config = {
            "version": __version__,
            "output": str(output),
            "force": args.force,
            "duration": args.duration,
            "sample_rate": args.sample_rate,
            "trace_limit": args.trace_limit,
            "native": bool(args.native),
            "flush_interval": LIVE_FLUSH_INTERVAL if args.live else FLUSH_INTERVAL,
        }
        _write(workdir / "config.json", json.dumps(config), target)
        att = Attachment(target, workdir, output)
        att.beat()
        try:
            route = inject(target.pid, target.version, bootstrap_source(str(workdir)), workdir)
            _wait_started(att, args.start_timeout)
        except KeyboardInterrupt:
            # The bootstrap, if it runs later, does nothing; an agent that just started stops.
            _write(workdir / "cancel", "", target)
            att.request_stop()
            raise AttachError("interrupted before tracing started") from None
        version = ".".join(map(str, target.version))
        until = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
        print(
            f"heapscope: attached to process {target.pid} (Python {version}, via {route}), "
            f"recording {until} to {output}",
            file=sys.stderr,
        )
        _record(att, args.duration, args.live)
        return _report_end(att)
    finally:
        if not (workdir / "cancel").exists():
            shutil.rmtree(workdir, ignore_errors=True)


def _report_end(att: Attachment) -> int:
    status = att.status() or {}
    state = status.get("state")
    pid = att.target.pid
    if state == "error":
        raise AttachError(f"process {pid}: {status.get('message')}")
    if state in ("detached", "exited"):
        how = "detached from" if state == "detached" else "the target exited; stopped recording"
        print(
            f"heapscope: {how} process {pid}; capture written to {status.get('output')} "
            f"({status.get('size')} bytes)",
            file=sys.stderr,
        )
        return 0
    if att.output.exists():
        print(
            f"heapscope: process {pid} ended while attached; the capture {att.output} is "
            "readable up to its last flush",
            file=sys.stderr,
        )
        return 0
    raise AttachError(f"process {pid} did not detach, and wrote no capture")
