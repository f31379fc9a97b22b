"""Making a running CPython run the attach bootstrap: the two routes.

* 3.14+ (PEP 768): ``sys.remote_exec(pid, script)``. No debugger; the interpreter runs the
  script in the main thread at its next eval-loop check. Needs this interpreter to be the
  target's minor version.
* 3.11-3.13: gdb, in batch mode, without Python code in the debugger. It maps one anonymous
  page in the target (``mmap``, a system call: no lock the stopped thread may hold), copies the
  bootstrap's source there (``restore``, through ptrace: no call into the target), and queues
  ``PyRun_SimpleString(page)`` with ``Py_AddPendingCall``, then detaches. The interpreter runs
  pending calls in its main thread between two bytecodes with the GIL held, the same safe point
  as signal handlers and ``sys.remote_exec``, so nothing runs in the middle of an allocation or
  with a libc lock held. The page (4 KiB) stays mapped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from heapscope.errors import AttachError

__all__ = ["GDB_TIMEOUT", "inject"]

#: Seconds gdb may take to attach, queue the call and detach.
GDB_TIMEOUT = 60.0

_PAGE = 4096

_GDB_SCRIPT = """\
set pagination off
set confirm off
set $hs_buf = ((void *(*)(void *, unsigned long, int, int, int, long))mmap)(0, {size}, 3, 34, -1, 0)
if $hs_buf == (void *) -1
  printf "HEAPSCOPE_MMAP_FAILED\\n"
else
  restore {source} binary $hs_buf
  set $hs_rc = ((int (*)(void *, void *))Py_AddPendingCall)((void *)PyRun_SimpleString, $hs_buf)
  printf "HEAPSCOPE_QUEUED %d\\n", $hs_rc
end
detach
quit
"""

GDB_MISSING = (
    "gdb is not installed, and attaching to Python before 3.14 needs it: "
    "apt-get install gdb (Debian/Ubuntu) or dnf install gdb (Fedora)"
)


def uses_remote_exec(version: tuple[int, int]) -> bool:
    """True when the target is reached with ``sys.remote_exec`` rather than gdb."""
    return version >= (3, 14) and sys.version_info[:2] == version and hasattr(sys, "remote_exec")


def inject(pid: int, version: tuple[int, int], source: str, workdir: Path) -> str:
    """Queue ``source`` to run in the target's main thread; return the route's name."""
    if uses_remote_exec(version):
        _remote_exec(pid, source, workdir)
        return "sys.remote_exec"
    _gdb(pid, source)
    return "gdb"


def _remote_exec(pid: int, source: str, workdir: Path) -> None:
    script = workdir / "bootstrap.py"
    script.write_text(source)
    script.chmod(0o644)
    remote_exec = getattr(sys, "remote_exec")  # noqa: B009 (3.14+, absent from typeshed 3.11)
    try:
        remote_exec(pid, str(script))
    except PermissionError as exc:
        raise AttachError(f"sys.remote_exec on process {pid} is not permitted: {exc}") from None
    except (RuntimeError, OSError) as exc:
        raise AttachError(
            f"sys.remote_exec on process {pid} failed: {exc} (remote debugging may be disabled "
            "in the target: PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug)"
        ) from None


def _gdb(pid: int, source: str) -> None:
    gdb = shutil.which("gdb")
    if gdb is None:
        raise AttachError(GDB_MISSING)
    data = source.encode() + b"\0"
    size = (len(data) + _PAGE - 1) // _PAGE * _PAGE
    with tempfile.TemporaryDirectory(prefix="heapscope-gdb-") as tmp:
        source_file = Path(tmp) / "bootstrap.bin"
        source_file.write_bytes(data)
        script = Path(tmp) / "inject.gdb"
        script.write_text(_GDB_SCRIPT.format(size=size, source=source_file))
        # The target stays stopped while gdb reads symbols: separate debug files (libc's,
        # often installed) tripled that stop (~600 -> ~220 ms measured), and the calls below
        # need only the dynamic symbols, so gdb looks for none.
        command = [gdb, "-nx", "-batch", "-iex", "set debuginfod enabled off"]
        command += ["-iex", "set auto-load off", "-iex", f"set debug-file-directory {tmp}"]
        command += ["-p", str(pid), "-x", str(script)]
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=GDB_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise AttachError(
                f"gdb did not detach from process {pid} in {GDB_TIMEOUT:.0f} s"
            ) from None
    out = proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith("HEAPSCOPE_QUEUED "):
            if line.split()[1] != "0":
                raise AttachError(f"the target's interpreter refused the pending call ({line})")
            return
    if "ptrace: Operation not permitted" in out:
        raise AttachError(f"gdb may not ptrace process {pid}: Operation not permitted")
    if "HEAPSCOPE_MMAP_FAILED" in out:
        raise AttachError(f"could not map a page in process {pid} (mmap failed)")
    if "Py_AddPendingCall" in out or "PyRun_SimpleString" in out:
        raise AttachError(
            f"process {pid} has no CPython C API symbols gdb can see (not a CPython process?)"
        )
    tail = " | ".join(line for line in out.strip().splitlines()[-3:])
    raise AttachError(f"gdb could not inject into process {pid}: {tail}")
