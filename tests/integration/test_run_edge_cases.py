"""``heapscope run`` where programs and users do unusual things: the process ends as without
heapscope, options are checked before anything is made on disk, an older run's files never
mix into a new capture, and the figures keep their meaning (the time of a short peak)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._helpers import heapscope, python, report_json

pytestmark = pytest.mark.timeout(120)


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def run_bytes(
    args: list[str | bytes], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m heapscope ARGS` where an argument may be bytes (not UTF-8)."""
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"heapscope", *map(os.fsencode, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_uncaught_keyboard_interrupt_kills_by_sigint_as_python_does(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "ki.py", "keep = [0] * 1000\nraise KeyboardInterrupt\n")
    plain = python("ki.py", cwd=tmp_path, env=subprocess_env)
    proc = heapscope("run", "-o", "ki.hsc", "ki.py", cwd=tmp_path, env=subprocess_env)
    assert plain.returncode == -signal.SIGINT
    assert proc.returncode == plain.returncode, proc.stderr
    assert proc.stderr.startswith(plain.stderr)
    process = report_json(tmp_path / "ki.hsc", subprocess_env)["meta"]["processes"][0]
    assert process["exit"] == "signal 2"


@pytest.mark.parametrize("ending", ["sys.stdout.close()", "sys.stdout = None"])
def test_a_program_that_closes_its_standard_output_still_gets_its_capture(
    tmp_path: Path, subprocess_env: dict[str, str], ending: str
) -> None:
    write(tmp_path / "out.py", f"import sys\nprint('hi')\n{ending}\n")
    proc = heapscope("run", "-o", "o.hsc", "out.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"
    assert "capture written to o.hsc" in proc.stderr
    assert not (tmp_path / "o.hsc.d").exists()


KIDS = """\
import subprocess, sys
for _ in range(2):
    subprocess.run([sys.executable, "-c", "x = bytes(10000)"], check=True)
"""


def test_no_follow_over_an_older_capture_leaves_out_its_children(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "kids.py", KIDS)
    write(tmp_path / "alone.py", "x = bytes(1000)\n")
    first = heapscope("run", "-o", "c.hsc", "kids.py", cwd=tmp_path, env=subprocess_env)
    assert first.returncode == 0, first.stderr
    assert len(report_json(tmp_path / "c.hsc", subprocess_env)["meta"]["processes"]) == 3
    again = heapscope(
        "run", "--force", "--no-follow", "-o", "c.hsc", "alone.py", cwd=tmp_path, env=subprocess_env
    )
    assert again.returncode == 0, again.stderr
    meta = report_json(tmp_path / "c.hsc", subprocess_env)["meta"]
    assert [p["command"] for p in meta["processes"]] == [["alone.py"]]
    assert not (tmp_path / "c.hsc.d").exists()


@pytest.mark.parametrize(
    "option", [["--trace-limit", "0"], ["--flush-interval", "0"], ["--sample-rate", str(2**70)]]
)
def test_a_refused_option_makes_nothing_on_disk(
    tmp_path: Path, subprocess_env: dict[str, str], option: list[str]
) -> None:
    write(tmp_path / "p.py", "pass\n")
    proc = heapscope("run", *option, "-o", "p.hsc", "p.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("heapscope: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["p.py"]
    assert heapscope("run", "-o", "p.hsc", "p.py", cwd=tmp_path, env=subprocess_env).returncode == 0


def test_a_capture_on_standard_output_is_refused(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "p.py", "pass\n")
    proc = heapscope("run", "-o", "-", "p.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 2
    assert "standard output" in proc.stderr
    assert not (tmp_path / "-").exists()


def test_out_of_range_numbers_are_one_line_errors(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "p.py", "x = bytes(100)\n")
    assert heapscope("run", "-o", "p.hsc", "p.py", cwd=tmp_path, env=subprocess_env).returncode == 0
    for args in (
        ["report", "p.hsc", "--pid", "-5"],
        ["report", "p.hsc", "--pid", str(2**40)],
        ["export", "-f", "collapsed", "p.hsc", "--pid", "0"],
        ["diff", "p.hsc", "p.hsc", "--pid-a", str(2**32)],
    ):
        proc = heapscope(*args, cwd=tmp_path, env=subprocess_env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "process id" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    many = heapscope("report", "p.hsc", "-n", str(10**20), cwd=tmp_path, env=subprocess_env)
    assert many.returncode == 0, many.stderr
    assert "p.py:1" in many.stdout


def test_arguments_that_are_not_utf8_reach_the_program(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "argv.py", "import sys\nprint(ascii(sys.argv[1]))\n")
    plain = subprocess.run(
        [os.fsencode(sys.executable), b"argv.py", b"\xffarg"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
    )
    proc = run_bytes(["run", "-o", "a.hsc", "argv.py", b"\xffarg"], tmp_path, subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout == "'\\udcffarg'\n"
    command = report_json(tmp_path / "a.hsc", subprocess_env)["meta"]["command"]
    assert command == ["argv.py", "\ufffdarg"]


EXEC_SEARCH = """\
import os, sys
os.environ["PATH"] = os.pathsep.join([{missing!r}, {missing!r} + "2", "/usr/bin", "/bin"])
keep = bytes(5000)
os.execvp("sh", ["sh", "-c", "exit 4"])
"""


def test_exec_searching_the_path_ends_the_stream_once(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "ex.py", EXEC_SEARCH.format(missing=str(tmp_path / "nowhere")))
    proc = heapscope("run", "-o", "ex.hsc", "ex.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 4, proc.stderr
    processes = report_json(tmp_path / "ex.hsc", subprocess_env)["meta"]["processes"]
    assert [p["exit"] for p in processes] == ["exec"], processes


SPIKE = """\
import time
def spike():
    block = bytearray(50 * 2**20)
    del block
spike()
time.sleep(1.2)
keep = bytearray(30 * 2**20)
time.sleep(1.2)
"""


def test_a_peak_shorter_than_the_sampling_interval_is_timed_where_it_happened(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """No timeline sample sees a spike freed within milliseconds; the 30 MiB held from 1.2 s
    is the highest sample. The peak (50 MiB) is still timed near 0, not at 1.2 s."""
    write(tmp_path / "pk.py", SPIKE)
    proc = heapscope("run", "-o", "pk.hsc", "pk.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    meta = report_json(tmp_path / "pk.hsc", subprocess_env)["meta"]
    assert meta["peak_bytes"] >= 50 * 2**20
    assert meta["peak_time_ms"] < 600, meta["peak_time_ms"]


def test_stopping_a_childs_stream_is_not_the_childs_memory(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "kids.py", KIDS)
    proc = heapscope("run", "-o", "k.hsc", "kids.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    package = os.path.dirname(__import__("heapscope").__file__)
    rows = report_json(tmp_path / "k.hsc", subprocess_env, "--at", "total", "-n", "10000")["rows"]
    assert rows
    assert not [r for r in rows if str(r["file"]).startswith(package)]


@pytest.mark.parametrize("target", [["nomain"], ["-m", "no_such_module_here"]])
def test_nothing_to_run_is_one_line_as_python_says_it(
    tmp_path: Path, subprocess_env: dict[str, str], target: list[str]
) -> None:
    (tmp_path / "nomain").mkdir()
    plain = python(*target, cwd=tmp_path, env=subprocess_env)
    proc = heapscope("run", "-o", "n.hsc", *target, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == plain.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.split(": ", 1)[1] == plain.stderr.strip().split(": ", 1)[1], proc.stderr
    assert "Traceback" not in proc.stderr


# An exception the traceback module cannot format (its __notes__ raise): the interpreter's
# own display still prints it. So must the runner (3.15's traceback module fails this way on
# an ImportError from an extension built for another version).
UNPRINTABLE = """\
class E(Exception):
    @property
    def __notes__(self):
        raise RuntimeError("notes")

raise E("boom")
"""


def test_an_exception_the_traceback_module_cannot_print_is_printed_as_python_does(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "notes.py", UNPRINTABLE)
    plain = python("notes.py", cwd=tmp_path, env=subprocess_env)
    proc = heapscope("run", "-o", "n.hsc", "notes.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == plain.returncode == 1

    def shown(text: str) -> list[str]:
        varying = ("object address", "object refcount", "object type ", "heapscope:")
        return [line for line in text.splitlines() if not line.startswith(varying)]

    assert shown(proc.stderr) == shown(plain.stderr)
    assert 'raise E("boom")' in proc.stderr
