"""What ``heapscope attach`` checks about a process before touching it.

Every check here only reads ``/proc``: a target that fails one is left exactly as it was.
The order matters: existence, then the right to trace it (``/proc/PID/mem`` is opened with the
same permission check as ``ptrace(PTRACE_ATTACH)``, Yama included), then what it runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from heapscope.errors import AttachError

__all__ = ["Target", "inspect_target"]

#: The oldest CPython heapscope's injection routes know.
MIN_VERSION = (3, 11)

_VERSION_IN_NAME = re.compile(r"python(\d+)\.(\d+)")

_PTRACE_FIX = (
    "run heapscope attach as the target's user or as root, with CAP_SYS_PTRACE in a container "
    "(docker run --cap-add=SYS_PTRACE; Kubernetes: securityContext.capabilities.add: "
    "[SYS_PTRACE])"
)


@dataclass(frozen=True)
class Target:
    """A process that passed the checks."""

    pid: int
    version: tuple[int, int]
    uid: int
    gid: int
    #: True when the target sees the same root directory as we do (not in another container).
    same_root: bool


def _proc(pid: int, name: str) -> Path:
    return Path(f"/proc/{pid}/{name}")


def _status_field(status: str, field: str) -> str | None:
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return value.strip()
    return None


def _yama_scope() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip())
    except (OSError, ValueError):
        return None


def _denied_message(pid: int) -> str:
    scope = _yama_scope()
    if scope is not None and scope >= 1:
        fix = (
            f"Yama's kernel.yama.ptrace_scope is {scope}: run as root, or "
            "sysctl kernel.yama.ptrace_scope=0"
            if scope < 3
            else "Yama's kernel.yama.ptrace_scope is 3 (no ptrace at all until reboot)"
        )
        return f"ptrace of process {pid} is not permitted: {fix}; or {_PTRACE_FIX}"
    return f"ptrace of process {pid} is not permitted: {_PTRACE_FIX}"


def check_ptrace_allowed(pid: int) -> None:
    """Raise ``AttachError`` unless we may ptrace ``pid``."""
    try:
        # The kernel checks PTRACE_MODE_ATTACH on this open, exactly as for PTRACE_ATTACH.
        with open(_proc(pid, "mem"), "rb"):
            pass
    except PermissionError:
        raise AttachError(_denied_message(pid)) from None
    except FileNotFoundError:
        raise AttachError(f"no process {pid}") from None
    except ProcessLookupError:  # a zombie: it has exited, its parent has not reaped it yet
        raise AttachError(
            f"process {pid} has exited (a zombie its parent has not reaped)"
        ) from None


def python_version_of(pid: int) -> tuple[int, int] | None:
    """The CPython minor version a process runs, from its executable or a mapped libpython."""
    try:
        exe = os.readlink(_proc(pid, "exe"))
    except OSError:
        exe = ""
    names = [Path(exe.removesuffix(" (deleted)")).name]
    try:
        maps = _proc(pid, "maps").read_text()
    except OSError:
        maps = ""
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        name = Path(fields[5]).name if len(fields) == 6 else ""
        if name.startswith("libpython"):
            names.append(name)
    for name in names:
        found = _VERSION_IN_NAME.search(name)
        if found:
            return int(found.group(1)), int(found.group(2))
    return None


def inspect_target(pid: int) -> Target:
    """Check that ``pid`` can be attached to; raise ``AttachError`` saying why not."""
    if pid <= 0:
        raise AttachError(f"not a process id: {pid}")
    if pid == os.getpid():
        raise AttachError("heapscope attach cannot attach to itself")
    try:
        status = _proc(pid, "status").read_text()
    except FileNotFoundError:
        raise AttachError(f"no process {pid}") from None
    check_ptrace_allowed(pid)
    tracer = _status_field(status, "TracerPid")
    if tracer not in (None, "0"):
        raise AttachError(
            f"process {pid} is already traced by process {tracer} (a debugger or another "
            "attach): detach it first"
        )
    version = python_version_of(pid)
    if version is None:
        raise AttachError(
            f"process {pid} is not a Python process (no python3.X executable or libpython "
            "in its memory map)"
        )
    if version < MIN_VERSION:
        raise AttachError(
            f"process {pid} runs Python {version[0]}.{version[1]}, which heapscope does not "
            f"support (3.{MIN_VERSION[1]} or later)"
        )
    uid_field = (_status_field(status, "Uid") or "0").split()
    gid_field = (_status_field(status, "Gid") or "0").split()
    try:
        theirs, ours = os.stat(_proc(pid, "root")), os.stat("/")
        same_root = (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
    except OSError:
        same_root = False
    return Target(
        pid=pid,
        version=version,
        uid=int(uid_field[0]),
        gid=int(gid_field[0]),
        same_root=same_root,
    )
