"""Followed processes end cleanly: SIGKILL (data up to the last flush), SIGTERM (flushed, then
the default action), a program's own SIGTERM handler, ``os._exit``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._children_helpers import (
    MiB,
    assert_about,
    line_size,
    run_traced,
    traced,
    write,
)
from ._helpers import heapscope, report_json

pytestmark = pytest.mark.timeout(180)


def test_a_sigkilled_worker_keeps_its_flushed_data(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import multiprocessing as mp, os, signal, time

        def victim(ready):
            stream = os.path.join(os.environ["HEAPSCOPE_CAPTURE_DIR"], f"{os.getpid()}.hsc")
            held = bytearray(4 * 1024 * 1024)  # VICTIM
            # Each flush appends at least the timeline samples: wait for two after the block.
            sizes = {os.path.getsize(stream)}
            while len(sizes) < 3:
                time.sleep(0.05)
                sizes.add(os.path.getsize(stream))
            ready.set()
            time.sleep(60)

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            ready = ctx.Event()
            p = ctx.Process(target=victim, args=(ready,))
            p.start()
            ready.wait(60)
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            after = bytearray(2 * 1024 * 1024)  # AFTER
            print(p.exitcode)
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, script)
    assert proc.stdout == "-9\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100")
    assert_about(line_size(report, script, "VICTIM"), 4 * MiB)
    assert_about(line_size(report, script, "AFTER"), 2 * MiB)
    victim = next(p for p in traced(report) if p["truncated"])
    assert victim["exit"] == "killed?" and victim["exit_code"] is None
    assert not report["meta"]["truncated"], "the root ended normally"
    text = heapscope("report", "out.hsc", cwd=tmp_path, env=subprocess_env)
    assert "killed?" in text.stdout and "Processes (" in text.stdout


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_pool_terminate_workers_flush_on_sigterm(
    tmp_path: Path, subprocess_env: dict[str, str], method: str
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import multiprocessing as mp, os, sys, time

        def init(q):
            global queue
            queue = q

        def hold(_):
            kept = bytearray(3 * 1024 * 1024)  # HELD
            queue.put(os.getpid())
            time.sleep(60)
            return len(kept)

        if __name__ == "__main__":
            ctx = mp.get_context(sys.argv[1])
            q = ctx.Queue()
            pool = ctx.Pool(2, initializer=init, initargs=(q,))
            pool.map_async(hold, [0, 1], chunksize=1)
            busy = {q.get(timeout=60), q.get(timeout=60)}
            start = time.monotonic()
            pool.terminate()  # SIGTERM to both busy workers, well within a flush interval
            pool.join()
            # The sleeping workers die at once, as without heapscope: the signal reaches their
            # main thread, not one of heapscope's threads.
            print(len(busy), time.monotonic() - start < 10)
        """,
    )
    proc = heapscope("run", "-o", "out.hsc", script.name, method, cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "2 True\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "-n", "100", "--at", "end")
    workers = [p for p in traced(report) if p["exit"] == "signal 15"]
    assert len(workers) == 2, traced(report)
    # Still held when they were terminated: recorded by the SIGTERM flush.
    assert_about(line_size(report, script, "HELD"), 2 * 3 * MiB)


def test_a_sigterm_the_main_thread_sleeps_through_still_ends_the_program(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # Python runs its handlers in the main thread, when it evaluates or when a blocking call
    # fails with EINTR: a SIGTERM that another thread takes (or that lands just before the
    # main thread blocks) waits for that call. Without heapscope the default action kills at
    # once; heapscope's flush thread sends the signal again to the main thread
    # (`signal_watch.rs`), which takes it and dies by it, the stream ended.
    script = write(
        tmp_path / "prog.py",
        """\
        import signal, threading, time

        def poke():
            time.sleep(0.3)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

        kept = bytearray(8 * 1024 * 1024)  # KEPT
        threading.Thread(target=poke).start()
        time.sleep(60)
        print("slept through")
        """,
    )
    start = time.monotonic()
    proc = heapscope("run", "-o", "out.hsc", script.name, cwd=tmp_path, env=subprocess_env)
    elapsed = time.monotonic() - start
    assert proc.returncode == -signal.SIGTERM, (proc.stdout, proc.stderr)
    assert elapsed < 20, elapsed
    assert "slept through" not in proc.stdout
    report = report_json(tmp_path / "out.hsc", subprocess_env, "--at", "end")
    assert_about(line_size(report, script, "KEPT"), 8 * MiB)
    assert report["meta"]["processes"][0]["exit_code"] == -15


def test_sigterm_of_the_root_flushes_and_dies_by_the_signal(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import time
        big = bytearray(50 * 1024 * 1024)  # BIG
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "heapscope", "run", "-o", "out.hsc", script.name],
        cwd=tmp_path,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    report = report_json(tmp_path / "out.hsc", subprocess_env, "--at", "end")
    assert_about(line_size(report, script, "BIG"), 50 * MiB)
    assert report["meta"]["processes"][0]["exit_code"] == -15


def test_a_program_with_its_own_sigterm_handler_keeps_it(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    child = write(
        tmp_path / "service.py",
        """\
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        held = bytearray(2 * 1024 * 1024)  # SERVICE
        print("up", flush=True)
        time.sleep(60)
        """,
    )
    write(
        tmp_path / "prog.py",
        """\
        import signal, subprocess, sys
        p = subprocess.Popen([sys.executable, "service.py"], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "up\\n"
        p.send_signal(signal.SIGTERM)
        print(p.wait())
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, tmp_path / "prog.py")
    assert proc.stdout == "143\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "--at", "end", "-n", "50")
    service = next(p for p in traced(report) if p["command"][-1] == "service.py")
    assert service["exit_code"] == 143 and not service["truncated"]
    assert_about(line_size(report, child, "SERVICE"), 2 * MiB)


def test_a_sigterm_while_a_child_is_exiting_is_recorded_as_its_end(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # What `Pool.terminate()` races: a worker that is exiting anyway gets SIGTERM. In
    # finalization (after Python's atexit, where the stream waits for exit()'s status, and
    # after the interpreter set its handlers back to the default) it killed the process before
    # the status was written: the stream read as cut short. While the stream is being
    # finished, the handler cut the finish short: the final figures were lost too.
    finalizing = write(
        tmp_path / "finalizing.py",
        """\
        import os, signal, time
        kept = bytearray(2 * 1024 * 1024)  # FINALIZING

        class Late:
            def __del__(self, os=os, signal=signal, time=time):
                os.kill(os.getpid(), signal.SIGTERM)  # during finalization
                time.sleep(10)

        late = Late()
        """,
    )
    finishing = write(
        tmp_path / "finishing.py",
        """\
        import os, signal
        from heapscope import _follow
        from heapscope._capture import CaptureSession
        kept = bytearray(3 * 1024 * 1024)  # FINISHING
        stop_at_exit = CaptureSession.stop_at_exit

        def stop(session, guess):
            os.kill(os.getpid(), signal.SIGTERM)  # taken while the stream is finished
            return stop_at_exit(session, guess)

        CaptureSession.stop_at_exit = stop
        _follow.end_at_exit(0)
        """,
    )
    write(
        tmp_path / "prog.py",
        """\
        import subprocess, sys
        print([subprocess.run([sys.executable, s]).returncode for s in sys.argv[1:]])
        """,
    )
    proc = heapscope(
        "run",
        "-o",
        "out.hsc",
        "prog.py",
        "finalizing.py",
        "finishing.py",
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert proc.returncode == 0, proc.stderr
    # They die by the signal, as without heapscope.
    assert proc.stdout == "[-15, -15]\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env, "--at", "end", "-n", "50")
    children = {p["command"][-1]: p for p in traced(report) if p["ppid"] is not None}
    for name in ("finalizing.py", "finishing.py"):
        child = children[name]
        assert (child["exit"], child["truncated"]) == ("signal 15", False), child
    assert_about(line_size(report, finalizing, "FINALIZING"), 2 * MiB)
    assert_about(line_size(report, finishing, "FINISHING"), 3 * MiB)


def test_os_exit_in_the_root_still_closes_its_capture(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = write(
        tmp_path / "prog.py",
        """\
        import os
        kept = bytearray(3 * 1024 * 1024)  # KEPT
        print("bye", flush=True)
        os._exit(7)
        """,
    )
    proc = heapscope("run", "-o", "out.hsc", script.name, cwd=tmp_path, env=subprocess_env)
    assert (proc.returncode, proc.stdout) == (7, "bye\n")
    report = report_json(tmp_path / "out.hsc", subprocess_env, "--at", "end")
    assert not report["meta"]["truncated"]
    assert report["meta"]["processes"][0]["exit_code"] == 7
    assert_about(line_size(report, script, "KEPT"), 3 * MiB)


def test_exit_statuses_python_cannot_see_are_recorded(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    write(
        tmp_path / "prog.py",
        """\
        import subprocess, sys
        codes = [
            "raise SystemExit(9)",
            "import sys\\ntry:\\n    sys.exit(4)\\nexcept SystemExit:\\n    pass",
            "1 / 0",
            "x = 1",
        ]
        for code in codes:
            r = subprocess.run([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
            print(r.returncode)
        """,
    )
    proc = run_traced(tmp_path, subprocess_env, tmp_path / "prog.py")
    assert proc.stdout == "9\n0\n1\n0\n"
    report = report_json(tmp_path / "out.hsc", subprocess_env)
    children = report["meta"]["processes"][1:]
    # The streams are in pid order, which is the order they were started in.
    assert [p["exit_code"] for p in sorted(children, key=lambda p: p["pid"])] == [9, 0, 1, 0]
    assert not any(p["truncated"] for p in children)
