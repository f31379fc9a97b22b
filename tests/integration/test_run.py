"""``heapscope run``: the program behaves as without heapscope, and a capture is written."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._helpers import heapscope, python, report_json

pytestmark = pytest.mark.timeout(120)

ECHO = """\
import sys
print("argv", sys.argv)
print("name", __name__)
print("main", sys.modules["__main__"].__name__)
print("err", file=sys.stderr)
"""


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def test_argv_main_and_output_match_plain_python(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "echo.py", ECHO)
    plain = subprocess.run(
        [sys.executable, "echo.py", "a", "--b"], cwd=tmp_path, capture_output=True, text=True
    )
    proc = heapscope(
        "run", "-o", "out.hsc", "echo.py", "a", "--b", cwd=tmp_path, env=subprocess_env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    assert proc.stderr.startswith("err\n")
    assert "out.hsc" in proc.stderr
    assert (tmp_path / "out.hsc").stat().st_size > 0


@pytest.mark.parametrize(
    ("source", "status"),
    [("import sys; sys.exit(3)", 3), ("raise SystemExit", 0), ("import sys; sys.exit('bye')", 1)],
)
def test_exit_status_passes_through(
    tmp_path: Path, subprocess_env: dict[str, str], source: str, status: int
) -> None:
    write(tmp_path / "prog.py", source)
    proc = heapscope("run", "-o", "out.hsc", "prog.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == status
    assert (tmp_path / "out.hsc").exists()


def test_uncaught_exception_prints_the_users_traceback(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "boom.py", 'def f():\n    raise KeyError("boom")\n\nf()\n')
    plain = subprocess.run(
        [sys.executable, "boom.py"], cwd=tmp_path, capture_output=True, text=True
    )
    proc = heapscope("run", "-o", "out.hsc", "boom.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 1
    expected = plain.stderr
    assert proc.stderr.startswith(expected), proc.stderr
    assert "runpy" not in proc.stderr
    assert "heapscope/cli" not in proc.stderr


def test_module_mode(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    write(tmp_path / "echomod.py", ECHO + "raise SystemExit(5)\n")
    plain = subprocess.run(
        [sys.executable, "-m", "echomod", "x", "-o", "y"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    proc = heapscope(
        "run", "-o", "m.hsc", "-m", "echomod", "x", "-o", "y", cwd=tmp_path, env=subprocess_env
    )
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == plain.stdout
    assert (tmp_path / "m.hsc").exists()


def test_default_output_name_and_force(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    write(tmp_path / "tiny.py", "x = [0] * 1000\n")
    proc = heapscope("run", "tiny.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    [capture] = tmp_path.glob("heapscope-tiny.*.hsc")
    assert capture.name in proc.stderr

    (tmp_path / "taken.hsc").write_bytes(b"precious")
    refused = heapscope("run", "-o", "taken.hsc", "tiny.py", cwd=tmp_path, env=subprocess_env)
    assert refused.returncode == 2
    assert refused.stderr.startswith("heapscope: error: ")
    assert "--force" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert (tmp_path / "taken.hsc").read_bytes() == b"precious"

    forced = heapscope(
        "run", "--force", "-o", "taken.hsc", "tiny.py", cwd=tmp_path, env=subprocess_env
    )
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "taken.hsc").read_bytes() != b"precious"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("tiny.py", "is the script to profile"),
        (".", "is a directory"),
        ("nodir/x.hsc", "no directory"),
    ],
)
def test_an_output_that_cannot_be_a_capture_is_refused_before_the_program_runs(
    tmp_path: Path, subprocess_env: dict[str, str], output: str, message: str
) -> None:
    write(tmp_path / "tiny.py", "open('ran', 'w').close()\n")
    script = (tmp_path / "tiny.py").read_bytes()
    proc = heapscope("run", "--force", "-o", output, "tiny.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("heapscope: error: ")
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1
    # Nothing ran and nothing was written: the script is intact (--force never overwrites it).
    assert not (tmp_path / "ran").exists()
    assert (tmp_path / "tiny.py").read_bytes() == script
    assert not list(tmp_path.glob("*.hsc*"))


@pytest.mark.parametrize("ending", ["sys.exit('bye')", "raise ValueError('bye')", "pass"])
def test_what_heapscope_does_after_the_program_is_not_reported(
    tmp_path: Path, subprocess_env: dict[str, str], ending: str
) -> None:
    """Stopping the capture, the exit status and the traceback print run in the program's
    thread after the program: none of their allocations is the program's."""
    write(
        tmp_path / "small.py",
        f"""\
        import sys
        keep = [bytes(100) for _ in range(10)]
        {ending}
        """,
    )
    proc = heapscope("run", "-o", "s.hsc", "small.py", cwd=tmp_path, env=subprocess_env)
    assert "bye" in proc.stderr or ending == "pass", proc.stderr
    package = str(Path(heapscope_package_dir()))
    for at in ("peak", "end", "total"):
        rows = report_json(tmp_path / "s.hsc", subprocess_env, "--at", at, "-n", "1000")["rows"]
        assert rows, at
        assert not [r for r in rows if str(r["file"]).startswith(package)], (at, rows)


def heapscope_package_dir() -> str:
    """The directory of the heapscope package the subprocesses import."""
    import heapscope

    return str(Path(heapscope.__file__).parent)


# Modules commonly imported by programs that `heapscope run` once loaded for itself (its other
# subcommands, pathlib, zipfile, traceback, shutil through argparse's help formatter, typing):
# loaded before the program starts, the program's own import of them was not traced.
NOT_PRELOADED = [
    "pathlib",
    "zipfile",
    "shutil",
    "typing",
    "traceback",
    "json",
    "tempfile",
    "subprocess",
    "dataclasses",
    "inspect",
    "threading",
    "textwrap",
    "tokenize",
    "linecache",
    "bz2",
    "lzma",
    "urllib.parse",
    "ipaddress",
    "fnmatch",
]


def test_the_runner_leaves_the_programs_imports_to_the_program(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(
        tmp_path / "imports.py",
        """\
        import sys
        with open(sys.argv[1], "w") as f:
            f.write("\\n".join(sorted(sys.modules)))
        import pathlib, json, subprocess
        """,
    )
    plain = python("imports.py", "plain.txt", cwd=tmp_path, env=subprocess_env)
    assert plain.returncode == 0, plain.stderr
    # As the `heapscope` console script starts it (not `-m`, which loads runpy, nor `-c`,
    # which loads linecache on 3.13+).
    write(tmp_path / "entry.py", "import sys\nfrom heapscope.cli import main\nsys.exit(main())\n")
    args = ("entry.py", "run", "-o", "i.hsc", "imports.py", "traced.txt")
    proc = python(*args, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    before_plain = set((tmp_path / "plain.txt").read_text().split())
    before_traced = set((tmp_path / "traced.txt").read_text().split())
    preloaded = [m for m in NOT_PRELOADED if m in before_traced - before_plain]
    assert not preloaded
    # So those imports are the program's, traced: hundreds of KiB, not a few bytes.
    meta = report_json(tmp_path / "i.hsc", subprocess_env, "--at", "total")["meta"]
    assert meta["processes"][0]["total_allocated_bytes"] > 500_000, meta


# More 3-tuples than the free list keeps (2,000 on 3.11), so most of `a` is traced: those the
# free list takes back are reused by `b`.
REUSE = """\
a = [(i, i, i) for i in range(5000)]
del a
b = [(i, -i, i) for i in range(5000)]
"""


def test_a_line_never_holds_more_than_it_allocated(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Objects reused from free lists are re-attributed to the line that makes them (as the
    stdlib does), and count as allocated there: no line holds, at the peak or at the end, more
    than it allocated in total (a pprof sample with inuse above alloc confuses its readers)."""
    (tmp_path / "reuse.py").write_text(REUSE)
    proc = heapscope("run", "-o", "r.hsc", "reuse.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr

    def rows(at: str) -> dict[tuple[str, int, str], tuple[int, int]]:
        report = report_json(tmp_path / "r.hsc", subprocess_env, "--at", at, "-n", "1000")
        return {
            (r["file"], r["line"], r["function"]): (r["size"], r["count"]) for r in report["rows"]
        }

    total = rows("total")
    reused = (
        str(tmp_path / "reuse.py"),
        3,
        "<listcomp>" if sys.version_info < (3, 12) else "<module>",
    )
    assert total[reused][1] >= 5000, total  # 5,000 tuples made there
    for at in ("peak", "end"):
        for key, (size, count) in rows(at).items():
            assert key in total, (at, key)
            assert size <= total[key][0] and count <= total[key][1], (at, key, total[key])


def test_python_dash_m_heapscope_missing_script(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    proc = heapscope("run", "nope.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("heapscope: error: ")
    assert "Traceback" not in proc.stderr


FORK_ALONE = """\
import os
keep = bytearray(1024 * 1024)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""
FORK_WITH_A_THREAD = """\
import os, threading
done = threading.Event()
t = threading.Thread(target=done.wait)
t.start()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
done.set()
t.join()
"""


@pytest.mark.skipif(sys.version_info < (3, 12), reason="os.fork() warns about threads from 3.12")
@pytest.mark.parametrize(("program", "warnings"), [(FORK_ALONE, 0), (FORK_WITH_A_THREAD, 1)])
@pytest.mark.parametrize("follow", [True, False])
def test_forking_warns_about_threads_as_without_heapscope(
    tmp_path: Path, subprocess_env: dict[str, str], program: str, warnings: int, follow: bool
) -> None:
    """CPython warns when a process with more than one thread forks; heapscope's own threads
    (flush, timeline sampler) must not make a single-threaded program's fork warn."""
    (tmp_path / "forks.py").write_text(program)
    plain = subprocess.run(
        [sys.executable, "forks.py"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert plain.stderr.count("DeprecationWarning") == warnings, plain.stderr
    for _ in range(3):
        args = ["run", "--force", "-o", "f.hsc"] + ([] if follow else ["--no-follow"])
        proc = heapscope(*args, "forks.py", cwd=tmp_path, env=subprocess_env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("DeprecationWarning") == warnings, proc.stderr
        if warnings:
            assert "forks.py" in proc.stderr  # the warning names the program's line


def test_forked_child_leaves_the_capture_to_its_parent(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(
        tmp_path / "forks.py",
        """\
        import os
        data = bytearray(2 * 1024 * 1024)
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            print("parent")
        else:
            print("child")
        """,
    )
    proc = heapscope("run", "-o", "f.hsc", "forks.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == ["child", "parent"]
    report = report_json(tmp_path / "f.hsc", subprocess_env, "--at", "end")
    assert report["meta"]["truncated"] is False


def test_timeline_has_ten_samples_a_second(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    write(tmp_path / "sleepy.py", "import time\nx = bytearray(1000)\ntime.sleep(1.2)\n")
    proc = heapscope("run", "-o", "s.hsc", "sleepy.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    meta = report_json(tmp_path / "s.hsc", subprocess_env)["meta"]
    assert meta["duration_ms"] >= 1200
    assert meta["samples"] >= 10 * meta["duration_ms"] // 1000


def test_syntax_error_is_reported_like_python(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "bad.py", "def (:\n")
    plain = subprocess.run(
        [sys.executable, "bad.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    proc = heapscope("run", "-o", "b.hsc", "bad.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == plain.returncode == 1
    assert proc.stderr == plain.stderr


SAMPLED = """\
def build():
    return [bytes(300) for _ in range(150_000)]

data = build()
"""


def test_sample_rate_scales_samples_into_estimates(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "prog.py", SAMPLED)
    args = ("run", "-o", "s.hsc", "--sample-rate", "65536", "prog.py")
    proc = heapscope(*args, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    rows = report_json(tmp_path / "s.hsc", subprocess_env, "--at", "end")["rows"]
    top = rows[0]
    truth = 150_000 * (300 + 33)
    assert top["line"] == 2
    assert abs(top["size"] - truth) / truth < 0.15  # ~720 samples: 3.7% standard error
    assert top["count"] < 5_000  # only the samples are recorded
    bad = heapscope("run", "--sample-rate", "0", "prog.py", cwd=tmp_path, env=subprocess_env)
    assert bad.returncode == 2 and "sample rate" in bad.stderr
