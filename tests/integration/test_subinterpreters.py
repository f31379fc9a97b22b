"""Interpreters besides the main one (`_interpreters`, 3.13+), with a GIL of their own or of
the legacy kind sharing the main one: their threads call the same PyMem hooks and reference
tracer as the main interpreter's, at the same time; they pass through untraced and the main
interpreter's books stay exact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

needs_313 = pytest.mark.skipif(
    sys.version_info < (3, 13), reason="interpreters with their own GIL: 3.13+ (_interpreters)"
)

# Threads' teardown (and their interpreters') frees RAW blocks after join() returns, at times
# between the two reads: the books must balance once it is over.
BOOKS = textwrap.dedent(
    """
    def assert_books_balance(tm, _native):
        import time

        seen = []
        for _ in range(10):
            _native._set_thread_ignored(True)
            current = tm.get_traced_memory()[0]
            live = sum(t[1] for t in _native._get_traces())
            _native._set_thread_ignored(False)
            seen.append((current, live))
            if current == live:
                return
            time.sleep(0.2)
        raise AssertionError(seen)
    """
)

SCRIPT = BOOKS + textwrap.dedent(
    """
    import ctypes
    import sys
    import threading

    import _interpreters

    CONFIG = sys.argv[2]  # "isolated" (a GIL of its own) or "legacy" (the main GIL)
    WORK = (
        "y = {str(k): [k] * 10 for k in range(20000)}\\n"
        "import json\\n"
        "z = json.loads(json.dumps(list(range(20000))))\\n"
        "del y, z\\n"
        "import threading\\n"  # a thread started inside the interpreter
        "t = threading.Thread(target=lambda: [bytes(1000) for _ in range(2000)])\\n"
        "t.start()\\n"
        "t.join()\\n"
    )

    def in_interpreters(errors):
        try:
            interp = _interpreters.create(CONFIG)
            for _ in range(4):
                failed = _interpreters.exec(interp, WORK)
                assert failed is None, failed
            _interpreters.destroy(interp)
        except BaseException as e:
            errors.append(repr(e))

    def raw_without_the_gil(errors):
        # ctypes.CDLL releases the GIL: once a second interpreter was created, CPython's
        # PyGILState_Check answers 1 to every thread, so heapscope must tell by itself.
        try:
            libc_view = ctypes.CDLL(None)
            raw_malloc = libc_view.PyMem_RawMalloc
            raw_malloc.restype = ctypes.c_void_p
            raw_malloc.argtypes = [ctypes.c_size_t]
            raw_free = libc_view.PyMem_RawFree
            raw_free.argtypes = [ctypes.c_void_p]
            for i in range(3000):
                p = raw_malloc(1000 + i % 500)
                raw_free(p)
        except BaseException as e:
            errors.append(repr(e))

    def main():
        errors = []
        threads = [threading.Thread(target=in_interpreters, args=(errors,)) for _ in range(3)]
        threads += [threading.Thread(target=raw_without_the_gil, args=(errors,)) for _ in range(2)]
        for t in threads:
            t.start()
        kept = []
        for _ in range(30):
            line = sys._getframe().f_lineno + 1
            kept.append([bytearray(100) for _ in range(2000)])
            del kept[0][::2]
        for t in threads:
            t.join()
        assert not errors, errors
        return kept, line

    if __name__ == "__main__":
        mode = sys.argv[1]
        if mode == "run":  # under `heapscope run`
            main()
            print("ok")
            sys.exit(0)
        import heapscope.tracemalloc as tm
        from heapscope import _native

        if mode == "full":
            tm.start(25)
        else:
            tm.start(25, sample_rate=512)
        kept, line = main()
        assert_books_balance(tm, _native)
        snapshot = tm.take_snapshot()
        files = {f.filename for t in snapshot.traces for f in t.traceback}
        assert "<string>" not in files, "another interpreter's frames were traced"
        if mode == "full":
            top = snapshot.statistics("lineno")[0]
            assert top.traceback[0].lineno == line, (top, line)
            assert top.count >= 30 * 1000, top
        del kept
        tm.stop()
        print("ok")
    """
)


def run(args: list[str], env: dict[str, str]) -> str:
    """Run ``python args...``; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "interpreters.py"
    path.write_text(SCRIPT)
    return path


@needs_313
@pytest.mark.parametrize("config", ["isolated", "legacy"])
@pytest.mark.parametrize("mode", ["full", "sampled", "sampled-freehook"])
def test_other_interpreters_pass_through(
    script: Path, mode: str, config: str, subprocess_env: dict[str, str]
) -> None:
    env = dict(subprocess_env)
    if mode == "sampled-freehook":
        env["HEAPSCOPE_SAMPLING_FREE_HOOK"] = "1"
    for _ in range(2):
        out = run([str(script), mode.split("-")[0], config], env)
        assert out.strip() == "ok"


@needs_313
@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
@pytest.mark.parametrize("config", ["isolated", "legacy"])
def test_heapscope_run_with_other_interpreters(
    script: Path, config: str, native: bool, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    capture = tmp_path / "run.hsc"
    flags = ["--native"] if native else []
    command = ["-m", "heapscope", "run", *flags, "-o", str(capture), str(script), "run", config]
    run(command, subprocess_env)
    report = run(["-m", "heapscope", "report", "--json", str(capture)], subprocess_env)
    assert "interpreters.py" in report
    assert "<string>" not in report


AFTER_AN_INTERPRETER = BOOKS + textwrap.dedent(
    """
    import ctypes
    import sys
    import threading

    if sys.version_info >= (3, 13):
        import _interpreters as interpreters

        interp = interpreters.create("legacy")
        interpreters.exec(interp, "x = 1")
    else:
        import _xxsubinterpreters as interpreters

        interp = interpreters.create()
        interpreters.run_string(interp, "x = 1")
    interpreters.destroy(interp)

    import heapscope.tracemalloc as tm
    from heapscope import _native

    tm.start(10)
    libc_view = ctypes.CDLL(None)  # releases the GIL around each call
    raw_malloc = libc_view.PyMem_RawMalloc
    raw_malloc.restype = ctypes.c_void_p
    raw_malloc.argtypes = [ctypes.c_size_t]
    raw_free = libc_view.PyMem_RawFree
    raw_free.argtypes = [ctypes.c_void_p]

    def raw():
        for k in range(20_000):
            raw_free(raw_malloc(1000 + k % 300))

    threads = [threading.Thread(target=raw) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(20):
        keep = [bytes(100) for _ in range(20_000)]
        del keep
    for t in threads:
        t.join()
    assert_books_balance(tm, _native)  # the defect left them wrong for good
    tm.stop()
    print("ok")
    """
)


def test_c_threads_without_the_gil_after_an_interpreter_existed(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    # CPython's PyGILState_Check answers 1 to every thread once a second interpreter was ever
    # created (3.11 too), so the RAW hooks cannot ask it whether to take the GIL.
    path = tmp_path / "after.py"
    path.write_text(AFTER_AN_INTERPRETER)
    for _ in range(3):
        assert run([str(path)], subprocess_env).strip() == "ok"
