"""``heapscope attach``: real targets started with plain ``python``, real gdb."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._helpers import heapscope, report_json
from ._native_build import build_extension, native_env

pytestmark = pytest.mark.skipif(
    shutil.which("gdb") is None
    and sys.version_info < (3, 14)
    and not os.environ.get("CI"),  # CI installs gdb (scripts/install-tools.sh): fail there
    reason="gdb is not installed (make install-tools)",
)

NATIVE_DOMAIN = 0x6E617476

LEAKER = textwrap.dedent(
    """
    import ctypes, os, sys, threading, time
    kept = []
    def leak_here():
        kept.append(bytearray(4096))
    class Allocator(ctypes.Structure):
        _fields_ = [(n, ctypes.c_void_p) for n in ("ctx", "malloc", "calloc", "realloc", "free")]
    def allocators():
        found = []
        for domain in range(3):  # RAW, MEM, OBJ
            a = Allocator()
            ctypes.pythonapi.PyMem_GetAllocator(ctypes.c_int(domain), ctypes.byref(a))
            found.append(f"{a.malloc:x}.{a.free:x}")
        return "/".join(found)
    def status():
        # The agent may be importing heapscope._native in another thread right now: the
        # module is then in sys.modules but partly initialized (no is_tracing yet).
        is_tracing = getattr(sys.modules.get("heapscope._native"), "is_tracing", None)
        tracing = is_tracing() if is_tracing is not None else False
        names = sorted(t.name for t in threading.enumerate())
        return f"{tracing} {allocators()} {','.join(names)}"
    out = sys.argv[1]
    end = time.monotonic() + float(sys.argv[2])
    with open(out + ".tmp", "w") as f:
        f.write("ready")
    os.replace(out + ".tmp", out)
    while time.monotonic() < end:
        leak_here()
        with open(out + ".tmp", "w") as f:
            f.write(status())
        os.replace(out + ".tmp", out)
        time.sleep(0.005)
    """
)


def _threads_of(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names.append((task / "comm").read_text().strip())
    return names


class Target:
    """A plain ``python`` process that leaks 4 KiB every few ms and reports its state."""

    def __init__(self, tmp_path: Path, env: dict[str, str], seconds: float, *flags: str):
        script = tmp_path / "leaker.py"
        script.write_text(LEAKER)
        self.state_file = tmp_path / "state"
        self.proc = subprocess.Popen(
            [sys.executable, *flags, str(script), str(self.state_file), str(seconds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not self.state_file.exists():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def state(self) -> str:
        time.sleep(0.1)  # a few loop turns
        return self.state_file.read_text()

    def close(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.kill()
        _out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


@pytest.fixture
def target(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Target]:
    t = Target(tmp_path, subprocess_env, 120)
    yield t
    t.close()


def _wait_tracing(target: Target, proc: subprocess.Popen[Any], seconds: float = 60) -> None:
    """Wait until the target reports that it traces. Fails with what the attach command said
    if it exits first or the time runs out (one CI run on 3.14 saw 20 s pass with no reason
    given), and with the target's exit status and stderr if it died (an attach command that
    outlives its target exits 0: one CI run on 3.15 ended that way)."""
    deadline = time.monotonic() + seconds
    last = ""
    while not (last := target.state()).startswith("True"):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
            died = target.proc.poll()
            target_err = target.proc.communicate(timeout=30)[1] if died is not None else ""
            pytest.fail(
                f"the target never started tracing (attach exit status {proc.returncode}): "
                f"{err}; target exit status {died}, last state {last[:200]!r}, "
                f"target stderr: {target_err[-2000:]}"
            )


def _leak_rows(capture: Path, env: dict[str, str], at: str) -> list[dict[str, object]]:
    rows = report_json(capture, env, "--at", at, "-n", "5")["rows"]
    return [r for r in rows if r["function"] == "leak_here"]


def test_attach_records_the_leak_then_detaches_twice(
    tmp_path: Path, subprocess_env: dict[str, str], target: Target
) -> None:
    state = target.state()
    assert state.startswith("False")
    untraced_allocators = state.split()[1]
    for n in range(2):  # attaching twice in a row works
        out = tmp_path / f"attach{n}.hsc"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "heapscope",
                "attach",
                str(target.pid),
                "--duration",
                "2",
                "-o",
                str(out),
            ],
            env=subprocess_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_tracing(target, proc)
        # While attached: the tracer's hooks and threads are in the target.
        assert "heapscope-sampl" in _threads_of(target.pid)
        state = target.state()
        assert "heapscope-attach" in state
        assert state.split()[1] != untraced_allocators
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        # The route each version takes: PEP 768 from 3.14 on, gdb before.
        route = "via sys.remote_exec" if sys.version_info >= (3, 14) else "via gdb"
        assert route in err, err
        assert f"detached from process {target.pid}" in err
        # After: alive, hooks out, no heapscope thread left.
        assert target.proc.poll() is None
        state = target.state()
        assert state.startswith("False"), state
        # The allocators are the interpreter's own again (PyMem_GetAllocator, all domains).
        assert state.split()[1] == untraced_allocators
        assert "heapscope" not in state
        assert not [t for t in _threads_of(target.pid) if t.startswith("heapscope")]
        rows = _leak_rows(out, subprocess_env, "end")
        assert rows, report_json(out, subprocess_env)
        # ~2 s of 4 KiB blocks every ~5 ms: hundreds of blocks, all still held.
        assert rows[0]["line"] == 5
        assert int(str(rows[0]["count"])) > 50
        # The agent's own work (its watcher thread, its status file) is not the target's.
        package = str(Path(heapscope_dir()).parent)
        everything = report_json(out, subprocess_env, "--at", "total", "-n", "10000")["rows"]
        ours = [r for r in everything if str(r["file"]).startswith(package)]
        assert not ours, ours


def test_target_that_exits_while_attached(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    t = Target(tmp_path, subprocess_env, 2.5)
    out = tmp_path / "exit.hsc"
    proc = heapscope("attach", str(t.pid), "-o", out, cwd=tmp_path, env=subprocess_env)
    status, err = t.close()
    assert status == 0, err
    assert proc.returncode == 0, proc.stderr
    assert "the target exited" in proc.stderr
    assert _leak_rows(out, subprocess_env, "end")
    assert report_json(out, subprocess_env)["meta"]["truncated"] is False


def test_target_killed_while_attached(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    t = Target(tmp_path, subprocess_env, 120)
    out = tmp_path / "killed.hsc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heapscope", "attach", str(t.pid), "-o", str(out)],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_tracing(t, proc)
    finally:
        if proc.poll() is not None:
            t.close()
    time.sleep(2)  # at least one flush
    os.kill(t.pid, signal.SIGKILL)
    t.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "readable up to its last flush" in err
    assert _leak_rows(out, subprocess_env, "end")
    assert report_json(out, subprocess_env)["meta"]["truncated"] is True


def _attach_fails(tmp_path: Path, env: dict[str, str], pid: int, *prefix: str) -> str:
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "heapscope", "attach", str(pid), "--duration", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("heapscope: error: ")
    assert not list(tmp_path.glob("*.hsc"))
    return lines[0]


def test_not_a_python_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        message = _attach_fails(tmp_path, subprocess_env, sleeper.pid)
        assert f"process {sleeper.pid} is not a Python process" in message
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_no_such_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert f"no process {gone.pid}" in _attach_fails(tmp_path, subprocess_env, gone.pid)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a target as another user and drop CAP_SYS_PTRACE",
)
def test_ptrace_denied(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    # A process of another user, and us without CAP_SYS_PTRACE: the kernel refuses ptrace
    # (as in a container without the capability).
    other = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"]
    )
    try:
        time.sleep(0.2)
        no_cap = ("setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace")
        message = _attach_fails(tmp_path, subprocess_env, other.pid, *no_cap)
        assert f"ptrace of process {other.pid} is not permitted" in message
        assert "CAP_SYS_PTRACE" in message
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_heapscope_not_importable_in_target(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env)
    env.pop("PYTHONPATH", None)
    t = Target(tmp_path, env, 120, "-S", "-E")  # no site-packages: no heapscope
    try:
        message = _attach_fails(tmp_path, subprocess_env, t.pid)
        assert "heapscope is not importable in process" in message
        assert "ModuleNotFoundError" in message
        assert t.proc.poll() is None
        assert t.state().startswith("False")
        assert not list(Path(tempfile_dir()).glob(f"heapscope-attach-{t.pid}-*"))
    finally:
        t.close()


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_already_recorded(tmp_path: Path, subprocess_env: dict[str, str], target: Target) -> None:
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heapscope",
            "attach",
            str(target.pid),
            "--duration",
            "4",
            "-o",
            str(tmp_path / "first.hsc.keep"),
        ],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_tracing(target, first)
        message = _attach_fails(tmp_path, subprocess_env, target.pid)
        assert "already being recorded by heapscope" in message
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err


def test_already_traced_by_a_debugger(
    tmp_path: Path, subprocess_env: dict[str, str], target: Target
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (a second tracer to attach)")
    tracer = subprocess.Popen(
        [strace, "-qq", "-e", "trace=none", "-p", str(target.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while "TracerPid:\t0" in Path(f"/proc/{target.pid}/status").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        message = _attach_fails(tmp_path, subprocess_env, target.pid)
        assert f"is already traced by process {tracer.pid}" in message
    finally:
        tracer.terminate()
        tracer.wait()


def test_gdb_missing(tmp_path: Path, subprocess_env: dict[str, str], target: Target) -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("3.14+ attaches with sys.remote_exec, without gdb")
    env = dict(subprocess_env, PATH=str(tmp_path / "empty-bin"))
    message = _attach_fails(tmp_path, env, target.pid)
    assert "gdb is not installed" in message
    assert "apt-get install gdb" in message
    assert target.state().startswith("False")


def test_main_thread_blocked_gives_up_and_the_late_request_does_nothing(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = tmp_path / "sleeper.py"
    ready = tmp_path / "ready"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            open({str(ready)!r}, "w").close()
            time.sleep(4)  # blocked in C: no pending call runs meanwhile
            is_tracing = getattr(sys.modules.get("heapscope._native"), "is_tracing", None)
            print("tracing" if is_tracing is not None and is_tracing() else "untraced")
            print("agent" if "heapscope._attach_agent" in sys.modules else "no agent")
            """
        )
    )
    sleeper = subprocess.Popen(
        [sys.executable, str(script)], env=subprocess_env, stdout=subprocess.PIPE, text=True
    )
    while not ready.exists():
        time.sleep(0.01)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "heapscope",
            "attach",
            str(sleeper.pid),
            "--start-timeout",
            "1",
            "--duration",
            "1",
        ],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "ran no Python code in its main thread for 1 s" in proc.stderr
    out, _ = sleeper.communicate(timeout=30)
    assert sleeper.returncode == 0
    assert out.splitlines() == ["untraced", "no agent"]
    assert not list(Path(tempfile_dir()).glob(f"heapscope-attach-{sleeper.pid}-*"))


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state(pid: int) -> str:
    """Each thread's pending, blocked and caught signal masks, from procfs."""
    keys = ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    rows = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        fields = dict(
            line.split(":\t", 1)
            for line in (task / "status").read_text().splitlines()
            if ":\t" in line
        )
        masks = " ".join(f"{k}={fields.get(k, '?').strip()}" for k in keys)
        rows.append(f"thread {task.name} {fields.get('Name', '?').strip()}: {masks}")
    return "; ".join(rows)


def test_ctrl_c_detaches(tmp_path: Path, subprocess_env: dict[str, str], target: Target) -> None:
    out = tmp_path / "interrupted.hsc"
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-X", "faulthandler"),  # SIGABRT below prints where a hung command is
            *("-m", "heapscope", "attach", str(target.pid), "-o", str(out)),
        ],
        env=subprocess_env,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal. A test run started as a background job of a non-interactive
        # shell (`pytest &`) has SIGINT ignored, and an ignored SIGINT is inherited through
        # exec: the command would never see the Ctrl-C (it hung 60 s here that way).
        preexec_fn=_default_sigint,
    )
    _wait_tracing(target, proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        signals = _signal_state(proc.pid)
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        pytest.fail(
            f"the attach command did not end after Ctrl-C ({signals}): {err[-6000:]}; "
            f"target state {target.state()[:300]!r}"
        )
    assert proc.returncode == 0, err
    assert f"detached from process {target.pid}" in err
    assert target.state().startswith("False")
    assert _leak_rows(out, subprocess_env, "end")


def test_killed_attach_command_lets_the_target_detach_itself(
    tmp_path: Path, subprocess_env: dict[str, str], target: Target
) -> None:
    out = tmp_path / "orphan.hsc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heapscope", "attach", str(target.pid), "-o", str(out)],
        env=subprocess_env,
        stderr=subprocess.PIPE,  # a line or two: read if the target never traces
        text=True,
    )
    _wait_tracing(target, proc)
    proc.kill()  # no stop file, no more heartbeats
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30  # the heartbeat times out after 10 s
    while not target.state().startswith("False"):
        assert time.monotonic() < deadline, "the agent did not detach on its own"
    assert target.proc.poll() is None
    assert report_json(out, subprocess_env)["meta"]["truncated"] is False
    time.sleep(0.5)
    assert not list(Path(tempfile_dir()).glob(f"heapscope-attach-{target.pid}-*"))


NATIVE_LEAKER = textwrap.dedent(
    """
    import os, sys, time
    import nativeext
    def leak_here():
        nativeext.take(4096, 1)
    out, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
    with open(out + ".tmp", "w") as f:
        f.write("ready")
    os.replace(out + ".tmp", out)
    while time.monotonic() < end:
        leak_here()
        time.sleep(0.005)
    """
)


def test_attach_native_records_what_c_code_mallocs(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """``attach --native`` patches a running program's malloc imports, records the blocks a C
    extension takes from then on at the Python line that called it, and puts them back."""
    build_extension(tmp_path)
    env = {**subprocess_env, "PYTHONPATH": native_env(tmp_path)["PYTHONPATH"]}
    script = tmp_path / "native_leaker.py"
    script.write_text(NATIVE_LEAKER)
    state = tmp_path / "state"
    target = subprocess.Popen(
        [sys.executable, str(script), str(state), "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not state.exists():
            assert target.poll() is None, target.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out = tmp_path / "native.hsc"
        proc = heapscope(
            "attach",
            str(target.pid),
            "--native",
            "--duration",
            "2",
            "-o",
            out,
            cwd=tmp_path,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert target.poll() is None  # detached, still running
        rows = [
            r
            for r in report_json(out, env, "--at", "end", "-n", "20")["rows"]
            if r["domain"] == NATIVE_DOMAIN and r["function"] == "leak_here"
        ]
        assert rows and rows[0]["line"] == 5, rows
        count = int(str(rows[0]["count"]))
        assert count > 50 and rows[0]["size"] == 4096 * count, rows
        stacks = report_json(out, env, "--at", "end", "--by", "stack", "-n", "20")["rows"]
        top = next(r["stack"][0] for r in stacks if r["domain"] == NATIVE_DOMAIN)
        assert top["function"] == "nx_grab" and top["native"], top
    finally:
        target.kill()
        target.communicate(timeout=30)


def heapscope_dir() -> str:
    """The directory of the heapscope package the target imports."""
    import heapscope

    return str(Path(heapscope.__file__).parent)
