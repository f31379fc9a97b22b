"""The ``--live`` UI in a real terminal: tmux (send-keys, capture-pane) on a private server."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._helpers import heapscope, report_json
from ._native_build import build_extension, native_env

needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CI"),
    reason="tmux is not installed (make install-tools)",
)

PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    kept = []
    def leak_here():
        kept.append(bytearray(8192))
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    end = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < end:
        leak_here()
        n += 1
        if n % 100 == 0:
            print("program line", n, flush=True)
        time.sleep(0.004)
    print("program done", flush=True)
    """
)


class Tmux:
    """A private tmux server (its own socket) with one 160x50 window."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.socket = f"heapscope-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self._tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "50", command)

    def _tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return proc.stdout

    def screen(self) -> str:
        """The pane's text now."""
        return self._tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        """Type keys into the pane."""
        self._tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, found: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        """Wait until the screen satisfies ``found``."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux_factory(subprocess_env: dict[str, str]) -> Iterator[Callable[[str], Tmux]]:
    made: list[Tmux] = []

    def make(command: str) -> Tmux:
        t = Tmux(command, subprocess_env)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def _shell(tmp_path: Path, env: dict[str, str], args: list[str]) -> str:
    """A shell line for tmux: run heapscope with our PYTHONPATH, keep the exit status."""
    line = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "heapscope", *args])
    pythonpath = shlex.quote(env.get("PYTHONPATH", ""))
    done = shlex.quote(str(tmp_path / "exit-status"))
    log = shlex.quote(str(tmp_path / "stderr"))
    cd = shlex.quote(str(tmp_path))
    return f"cd {cd} && PYTHONPATH={pythonpath} {line} 2>{log}; echo $? > {done}; sleep 60"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@needs_tmux
def test_run_live_ui_keys_and_q_leaves_the_program_running(
    tmp_path: Path, subprocess_env: dict[str, str], tmux_factory: Callable[[str], Tmux]
) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    pid_file = tmp_path / "pid"
    capture = tmp_path / "live.hsc"
    args = ["run", "--live", "-o", str(capture), "prog.py", str(pid_file), "8"]
    t = tmux_factory(_shell(tmp_path, subprocess_env, args))
    screen = t.wait_for(lambda s: "prog.py:5" in s, "the leaking line")
    assert "heapscope live" in screen
    assert "Top lines by current memory" in screen
    assert "Top functions by current memory" in screen
    assert "leak_here" in screen
    assert "q close UI" in screen  # the help line
    assert f"program output: {capture}.out" in screen
    assert "program line" not in screen  # the program's output does not tear the UI
    # Redrawn at least twice a second: the elapsed time shown moves.
    seen = set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        found = re.search(r"(\d+\.\d) s  \[recording\]", t.screen())
        if found:
            seen.add(found.group(1))
        time.sleep(0.1)
    assert len(seen) >= 4, seen
    t.keys("v")
    t.wait_for(lambda s: "Top lines by at peak memory" in s, "the peak view")
    t.keys("v")
    t.wait_for(lambda s: "Top lines by allocated memory" in s, "the allocated view")
    t.keys("s")
    t.wait_for(lambda s: "sorted by blocks" in s, "sorting by blocks")
    t.keys("q")
    t.wait_for(lambda s: "heapscope live" not in s, "the UI to close")
    pid = int(pid_file.read_text())
    assert _alive(pid), "q must not stop the program"
    assert not (tmp_path / "exit-status").exists()
    deadline = time.monotonic() + 60
    while not (tmp_path / "exit-status").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (tmp_path / "exit-status").read_text().strip() == "0"
    output = Path(f"{capture}.out").read_text()
    assert "program done" in output
    assert "program line 100" in output
    rows = report_json(capture, subprocess_env, "--at", "end")["rows"]
    assert rows[0]["function"] == "leak_here", rows
    assert report_json(capture, subprocess_env)["meta"]["truncated"] is False


@needs_tmux
def test_attach_live(
    tmp_path: Path, subprocess_env: dict[str, str], tmux_factory: Callable[[str], Tmux]
) -> None:
    if shutil.which("gdb") is None and sys.version_info < (3, 14):
        pytest.skip("gdb is not installed (make install-tools)")
    (tmp_path / "prog.py").write_text(PROGRAM)
    pid_file = tmp_path / "pid"
    target = subprocess.Popen(
        [sys.executable, "prog.py", str(pid_file), "60"],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.DEVNULL,
    )
    try:
        while not pid_file.exists():
            time.sleep(0.02)
        capture = tmp_path / "attached.hsc"
        args = ["attach", str(target.pid), "--live", "--duration", "5", "-o", str(capture)]
        t = tmux_factory(_shell(tmp_path, subprocess_env, args))
        screen = t.wait_for(lambda s: "prog.py:5" in s, "the leaking line")
        assert f"process {target.pid}" in screen
        t.keys("q")
        deadline = time.monotonic() + 60
        while not (tmp_path / "exit-status").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (tmp_path / "exit-status").read_text().strip() == "0"
        assert "UI closed; still recording" in (tmp_path / "stderr").read_text()
        assert target.poll() is None
        rows = report_json(capture, subprocess_env, "--at", "end")["rows"]
        assert rows[0]["function"] == "leak_here", rows
    finally:
        target.kill()
        target.wait()


@pytest.mark.parametrize("command", [["run", "--live", "prog.py"], ["attach", "1", "--live"]])
def test_live_off_a_terminal_is_an_error(
    tmp_path: Path, subprocess_env: dict[str, str], command: list[str]
) -> None:
    (tmp_path / "prog.py").write_text("print('ran')\n")
    proc = heapscope(*command, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("heapscope: error: --live needs a terminal")
    assert "ran" not in proc.stdout
    assert not list(tmp_path.glob("*.hsc"))


NATIVE_PROGRAM = textwrap.dedent(
    """
    import os, sys, time
    import nativeext
    def leak_here():
        nativeext.take(65536, 1)
    with open(sys.argv[1], "w") as f:
        f.write(str(os.getpid()))
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        leak_here()
        time.sleep(0.01)
    """
)


@needs_tmux
def test_run_live_native_shows_what_c_code_takes(
    tmp_path: Path, subprocess_env: dict[str, str], tmux_factory: Callable[[str], Tmux]
) -> None:
    """``run --live --native``: a C extension's mallocs show in the UI at the Python line that
    called it, marked native."""
    build_extension(tmp_path)
    env = {**subprocess_env, "PYTHONPATH": native_env(tmp_path)["PYTHONPATH"]}
    (tmp_path / "prog.py").write_text(NATIVE_PROGRAM)
    capture = tmp_path / "live.hsc"
    args = ["run", "--live", "--native", "-o", str(capture), "prog.py", str(tmp_path / "pid"), "4"]
    t = tmux_factory(_shell(tmp_path, env, args))
    screen = t.wait_for(lambda s: "prog.py:5 [native]" in s, "the native leaking line")
    assert "leak_here [native]" in screen, screen
    t.keys("q")
    deadline = time.monotonic() + 60
    while not (tmp_path / "exit-status").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rows = report_json(capture, env, "--at", "end")["rows"]
    assert rows[0]["function"] == "leak_here" and rows[0]["domain"] == 0x6E617476, rows
