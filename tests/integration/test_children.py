"""``heapscope run`` follows every process of the program: known sizes at marked lines for each
way Python starts a process, the processes table and ``--pid``, behaviour as without heapscope.
How processes end (signals, ``os._exit``): test_children_exits.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._children_helpers import (
    MiB,
    assert_about,
    line_of,
    line_size,
    run_traced,
    traced,
    write,
)
from ._helpers import heapscope, report_json

pytestmark = pytest.mark.timeout(180)

WORKER = """\
import multiprocessing as mp
import sys

def work(mib):
    block = bytearray(mib * 1024 * 1024)  # WORK
    return len(block)

if __name__ == "__main__":
    keep = bytearray(2 * 1024 * 1024)  # ROOT
    ctx = mp.get_context(sys.argv[1])
    procs = [ctx.Process(target=work, args=(6,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print([p.exitcode for p in procs])
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_multiprocessing_workers_are_recorded(
    tmp_path: Path, subprocess_env: dict[str, str], method: str
) -> None:
    script = write(tmp_path / "prog.py", WORKER)
    proc = heapscope("run", "-o", "out.hsc", script.name, method, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[0, 0, 0]\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100")
    assert_about(line_size(report, script, "WORK"), 3 * 6 * MiB)
    assert_about(line_size(report, script, "ROOT"), 2 * MiB)
    processes = traced(report)
    root = processes[0]
    assert root["ppid"] is None and root["exit_code"] == 0
    workers = [p for p in processes[1:] if p["peak_bytes"] >= 6 * MiB]
    assert len(workers) == 3, processes
    # Every worker exited 0; spawn and fork workers are children of the root, forkserver
    # workers of the fork server.
    assert all(w["exit_code"] == 0 for w in workers)
    if method != "forkserver":
        assert {w["ppid"] for w in workers} == {root["pid"]}
    else:
        server = {w["ppid"] for w in workers}
        assert len(server) == 1 and server != {root["pid"]}
    assert "each at its own peak" in report["meta"]["merged"]
    one = report_json(tmp_path / "out.hsc", subprocess_env, "--pid", str(workers[0]["pid"]))
    assert_about(line_size(one, script, "WORK"), 6 * MiB)
    assert line_size(one, script, "ROOT") == 0


def test_process_pool_executor_and_bare_fork(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import os
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing as mp

        def work(mib):
            block = bytearray(mib * 1024 * 1024)  # WORK
            return len(block)

        if __name__ == "__main__":
            with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
                print(list(ex.map(work, [3, 3])))
            pid = os.fork()
            if pid == 0:
                forked = bytearray(5 * 1024 * 1024)  # FORKED
                os._exit(4)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, script)
    assert proc.stdout == f"{[3 * MiB, 3 * MiB]}\n4\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100")
    assert line_size(report, script, "WORK") >= 3 * MiB
    assert_about(line_size(report, script, "FORKED"), 5 * MiB)
    forked = [p for p in traced(report) if p["exit_code"] == 4]
    assert len(forked) == 1 and forked[0]["ppid"] == report["meta"]["pid"]
    # diff, export and flamegraph take one process too.
    pid = str(forked[0]["pid"])
    diff = heapscope("diff", "out.hsc", "out.hsc", "--pid-a", pid, cwd=tmp_path, env=subprocess_env)
    assert diff.returncode == 0, diff.stderr
    assert "B: " in diff.stdout and "A: " not in diff.stdout  # B is the merged tree
    assert f"prog.py:{line_of(script, 'WORK')}" in diff.stdout
    assert f"prog.py:{line_of(script, 'FORKED')}" not in diff.stdout  # in both A and B
    folded = heapscope(
        "export",
        "out.hsc",
        "-f",
        "collapsed",
        "--pid",
        pid,
        "-o",
        "-",
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert folded.returncode == 0, folded.stderr
    assert "work (" not in folded.stdout and f"prog.py:{line_of(script, 'FORKED')}" in folded.stdout
    speedscope = heapscope(
        "export", "out.hsc", "-f", "speedscope", "-o", "-", cwd=tmp_path, env=subprocess_env
    )
    doc = json.loads(speedscope.stdout)
    schema_path = Path(__file__).parent.parent / "data" / "speedscope-file-format-schema.json"
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    jsonschema.validate(doc, json.loads(schema_path.read_text()))
    names = [p["name"] for p in doc["profiles"]]
    assert any(n.startswith(f"pid {pid} ") for n in names), names
    html = heapscope("flamegraph", "out.hsc", "-o", "out.html", cwd=tmp_path, env=subprocess_env)
    assert html.returncode == 0, html.stderr
    assert "process-select" in (tmp_path / "out.html").read_text()


def test_subprocess_of_another_script_and_execv(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    other = write(
        tmp_path / "other.py",
        """\
        import sys
        other = bytearray(7 * 1024 * 1024)  # OTHER
        print("other", sys.argv[1:])
        sys.exit(5)
        """,
    )
    final = write(
        tmp_path / "final.py",
        """\
        final = bytearray(3 * 1024 * 1024)  # FINAL
        print("final")
        """,
    )
    script = write(
        tmp_path / "prog.py",
        """\
        import os, subprocess, sys
        r = subprocess.run([sys.executable, "other.py", "x"])
        print("status", r.returncode, flush=True)
        pid = os.fork()
        if pid == 0:
            before = bytearray(1024 * 1024)  # BEFORE_EXEC
            os.execv(sys.executable, [sys.executable, "final.py"])
        print("exec child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, script)
    assert proc.stdout == "other ['x']\nstatus 5\nfinal\nexec child 0\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100")
    assert_about(line_size(report, other, "OTHER"), 7 * MiB)
    assert_about(line_size(report, final, "FINAL"), 3 * MiB)
    assert_about(line_size(report, script, "BEFORE_EXEC"), 1 * MiB)
    processes = traced(report)
    other_proc = next(p for p in processes if p["exit"] == "5")
    assert other_proc["command"][-2:] == ["other.py", "x"]
    # The forked child and the program it exec'd: one pid, two streams.
    before = next(p for p in processes if p["exit"] == "exec")
    same_pid = [p for p in processes if p["pid"] == before["pid"]]
    assert len(same_pid) == 2
    after = next(p for p in same_pid if p is not before)
    assert after["command"][-1] == "final.py" and after["exit_code"] == 0
    assert len(list((tmp_path / "out.hsc.d").glob("*.hsc"))) == 3


def test_three_levels_and_32_short_lived_workers(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import multiprocessing as mp
        import sys

        def leaf(_):
            return len(bytearray(1024 * 1024))  # LEAF

        def middle():
            data = bytearray(2 * 1024 * 1024)  # MIDDLE
            p = mp.get_context("spawn").Process(target=leaf, args=(0,))
            p.start()
            p.join()

        if __name__ == "__main__":
            if sys.argv[1] == "tree":
                p = mp.get_context("spawn").Process(target=middle)
                p.start()
                p.join()
            else:
                ctx = mp.get_context("fork")
                procs = [ctx.Process(target=leaf, args=(i,)) for i in range(32)]
                for p in procs:
                    p.start()
                for p in procs:
                    p.join()
                print(sum(p.exitcode for p in procs))
        """,
    )
    proc = heapscope("run", "-o", "out.hsc", script.name, "tree", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100")
    assert_about(line_size(report, script, "MIDDLE"), 2 * MiB)
    assert_about(line_size(report, script, "LEAF"), 1 * MiB)
    processes = {p["pid"]: p for p in traced(report)}
    root = report["meta"]["pid"]
    leaf = next(p for p in processes.values() if p["ppid"] in processes and p["ppid"] != root)
    middle = processes[leaf["ppid"]]
    assert middle["ppid"] == report["meta"]["pid"]

    proc = heapscope("run", "-o", "many.hsc", script.name, "many", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0\n"
    report = report_json(tmp_path / "many.hsc", subprocess_env, "-n", "100")
    workers = [p for p in traced(report) if p["ppid"] == report["meta"]["pid"]]
    assert len(workers) == 32
    assert all(w["exit_code"] == 0 and not w["truncated"] for w in workers)
    assert_about(line_size(report, script, "LEAF"), 32 * MiB)


CHILD_ECHO = """\
import json, os, signal, sys
how = sys.argv[1]
if how == "echo":
    print(json.dumps({
        "argv": sys.argv, "path": sys.path, "name": __name__,
        "main": sys.modules["__main__"].__file__,
        "site": getattr(sys.modules.get("sitecustomize"), "MARK", None),
    }))
    sys.exit(7)
os.kill(os.getpid(), signal.SIGTERM)
"""

PARENT = """\
import subprocess, sys
for how in ("echo", "signal"):
    r = subprocess.run([sys.executable, "child.py", how], capture_output=True, text=True)
    print(r.returncode, r.stdout.strip())
"""


def test_children_behave_as_without_heapscope(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(tmp_path / "child.py", CHILD_ECHO)
    write(tmp_path / "parent.py", PARENT)
    site = tmp_path / "site"
    site.mkdir()
    write(site / "sitecustomize.py", "MARK = 'users'\n")
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    plain = subprocess.run(
        [sys.executable, "parent.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert plain.returncode == 0, plain.stderr
    proc = heapscope("run", "-o", "out.hsc", "parent.py", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == plain.stdout
    first = json.loads(plain.stdout.splitlines()[0].split(" ", 1)[1])
    assert first["site"] == "users", "the user's sitecustomize still runs"
    assert plain.stdout.splitlines()[1] == "-15 "
    report = report_json(tmp_path / "out.hsc", env)
    exits = sorted(p["exit"] for p in traced(report))
    assert exits == ["0", "7", "signal 15"]


def test_no_follow_records_one_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    write(tmp_path / "child.py", CHILD_ECHO)
    write(tmp_path / "parent.py", PARENT)
    run_traced(tmp_path, subprocess_env, tmp_path / "parent.py", "--no-follow")
    assert not (tmp_path / "out.hsc.d").exists()
    report = report_json(tmp_path / "out.hsc", subprocess_env)
    assert len(report["meta"]["processes"]) == 1


def test_a_python_that_cannot_import_heapscope_leaves_a_note(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([base, "-c", "import heapscope"], capture_output=True, check=False)
    if probe.returncode == 0 or base == sys.executable:
        pytest.skip("no interpreter without heapscope on this machine")
    write(
        tmp_path / "parent.py",
        f"""\
        import subprocess
        r = subprocess.run([{base!r}, "-c", "print(6 * 7)"], capture_output=True, text=True)
        print(r.returncode, r.stdout.strip(), r.stderr.strip())
        """,
    )
    env = dict(subprocess_env)
    env.pop("PYTHONPATH", None)  # the base interpreter must not find the package under test
    proc = heapscope("run", "-o", "out.hsc", "parent.py", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0 42 \n"
    report = report_json(tmp_path / "out.hsc", env)
    notes = [p for p in report["meta"]["processes"] if p["note"]]
    assert len(notes) == 1 and "cannot import heapscope" in notes[0]["note"]


def test_a_capture_is_readable_while_children_run(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import subprocess, sys
        subprocess.run([sys.executable, "child.py"], timeout=60)
        """,
    )
    write(
        tmp_path / "child.py",
        """\
        import os, time
        x = bytearray(1 << 20)
        while not os.path.exists("go"):
            time.sleep(0.05)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "heapscope", "run", "-o", "out.hsc", script.name],
        cwd=tmp_path,
        env=subprocess_env,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "out.hsc.d").glob("*.hsc")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        report = report_json(tmp_path / "out.hsc", subprocess_env)
        assert report["meta"]["truncated"]
        assert len(report["meta"]["processes"]) == 2
    finally:
        (tmp_path / "go").touch()
        proc.wait(timeout=60)


def test_tracker_inside_a_recorded_child_still_works(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    child = write(
        tmp_path / "child.py",
        """\
        import heapscope
        before = bytearray(1024 * 1024)  # BEFORE
        with heapscope.Tracker("inner.hsc"):
            inner = bytearray(2 * 1024 * 1024)  # INNER
        after = bytearray(3 * 1024 * 1024)  # AFTER
        """,
    )
    write(
        tmp_path / "prog.py",
        """\
        import subprocess, sys
        subprocess.run([sys.executable, "child.py"], check=True)
        """,
    )
    run_traced(tmp_path, subprocess_env, tmp_path / "prog.py")
    inner = report_json(tmp_path / "inner.hsc", subprocess_env, "-n", "100")
    assert_about(line_size(inner, child, "INNER"), 2 * MiB)
    assert line_size(inner, child, "BEFORE") == 0
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100", "--at", "end")
    assert_about(line_size(report, child, "BEFORE"), 1 * MiB)
    assert_about(line_size(report, child, "AFTER"), 3 * MiB)
    assert line_size(report, child, "INNER") == 0
    streams = sorted(p.name for p in (tmp_path / "out.hsc.d").glob("*.hsc"))
    assert len(streams) == 2 and any(".1." in s for s in streams)


def test_pytest_plugin_under_xdist_in_a_recorded_run(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    tests = write(
        tmp_path / "test_mem.py",
        """\
        import pytest

        @pytest.mark.limit_memory("1 MB")
        def test_over():
            data = bytearray(4 * 1024 * 1024)  # XDIST
            assert data

        def test_fine():
            assert bytearray(10)
        """,
    )
    proc = heapscope(
        "run",
        "-o",
        "out.hsc",
        "-m",
        "pytest",
        "-p",
        "xdist",
        "-n",
        "2",
        "--heapscope",
        "-p",
        "no:cacheprovider",
        tests.name,
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "exceeds its limit" in proc.stdout or "limit_memory" in proc.stdout, proc.stdout
    assert "cannot check" not in proc.stdout
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "200")
    # The workers hand the tracer to the plugin while tests run: their streams hold their
    # start-up and what follows the session, and they are listed.
    workers = [p for p in traced(report) if "sys.stdin.readline" in " ".join(p["command"])]
    assert len({w["pid"] for w in workers}) == 2, [p["command"] for p in traced(report)]


def test_a_preexec_fn_child_is_one_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    write(
        tmp_path / "prog.py",
        """\
        import subprocess, sys
        code = "x = bytearray(1 << 20)"
        r = subprocess.run([sys.executable, "-c", code], preexec_fn=lambda: None)
        r2 = subprocess.run(["true"], preexec_fn=lambda: None)
        print(r.returncode, r2.returncode)
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, tmp_path / "prog.py")
    assert proc.stdout == "0 0\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env)
    children = report["meta"]["processes"][1:]
    # One stream for the Python child, none for the fork that ran preexec_fn and exec'd.
    assert len(children) == 1, children
    assert children[0]["exit_code"] == 0 and children[0]["command"][-1] == "x = bytearray(1 << 20)"
