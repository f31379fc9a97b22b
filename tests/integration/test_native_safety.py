"""``--native`` must never hang or crash the program: fork and exit while C threads allocate,
a preloaded jemalloc, and nothing of it installed when it is off (``Tracker`` in-process and
``heapscope.tracemalloc``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._helpers import heapscope, report_json
from ._native_build import build_extension, compile_shared, native_env

pytestmark = pytest.mark.timeout(180)

NATIVE_DOMAIN = 0x6E617476
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")


def line_of(program: str, marker: str) -> int:
    return next(i for i, line in enumerate(program.splitlines(), 1) if f"# {marker}" in line)


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("nsafe")
    build_extension(tmp)
    return tmp


FORK_PROGRAM = """\
import os

import nativeext

nativeext.churn(3)  # C threads that malloc, free, mmap and munmap without end
for i in range(20):
    pid = os.fork()
    if pid == 0:
        nativeext.take(4096, 1)
        os._exit(0) if i % 2 else None
        raise SystemExit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
nativeext.take(111_111, 1)  # KEEP
print("parent done")
# The interpreter exits while the C threads still allocate.
"""


def test_fork_and_exit_while_c_threads_allocate(ext_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "forks.py"
    script.write_text(FORK_PROGRAM)
    env = native_env(ext_dir)
    out = tmp_path / "fork.hsc"
    proc = heapscope("run", "--native", "-o", out, script, cwd=tmp_path, env=env, timeout=150)
    assert proc.returncode == 0, proc.stderr
    assert "parent done" in proc.stdout
    children = list((tmp_path / "fork.hsc.d").glob("*.hsc"))
    assert len(children) == 20, children
    report = report_json(out, env, "--at", "end", "--pid", str(report_pid(out, env)), "-n", "1000")
    line = line_of(FORK_PROGRAM, "KEEP")
    keep = [
        r
        for r in report["rows"]
        if r["file"] == str(script) and r["line"] == line and r["domain"] == NATIVE_DOMAIN
    ]
    assert [(r["size"], r["count"]) for r in keep] == [(111_111, 1)], keep


def report_pid(capture: Path, env: dict[str, str]) -> int:
    pid: int = report_json(capture, env)["meta"]["pid"]
    return pid


PRELOAD_PROGRAM = """\
import nativeext

nativeext.take(123_457, 1)  # KEEP
nativeext.map(8, 2, 2)
"""


@pytest.mark.skipif(not JEMALLOC.exists(), reason=f"{JEMALLOC} not installed (apt libjemalloc2)")
def test_preloaded_jemalloc_still_runs(ext_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "pre.py"
    script.write_text(PRELOAD_PROGRAM)
    env = native_env(ext_dir)
    env["LD_PRELOAD"] = str(JEMALLOC)
    out = tmp_path / "pre.hsc"
    proc = heapscope("run", "--native", "-o", out, script, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    del env["LD_PRELOAD"]
    report = report_json(out, env, "--at", "end", "-n", "1000")
    line = line_of(PRELOAD_PROGRAM, "KEEP")
    keep = [r for r in report["rows"] if r["file"] == str(script) and r["line"] == line]
    assert [(r["size"], r["domain"]) for r in keep] == [(123_457, NATIVE_DOMAIN)], keep


TRACKER_PROGRAM = """\
import sys

import heapscope
import heapscope.tracemalloc as tm
import nativeext
from heapscope import _native

assert _native._native_slots() == 0
with heapscope.Tracker(sys.argv[1], native=True):
    assert _native._native_slots() > 0
    nativeext.take(123_457, 1)  # NATIVE
assert _native._native_slots() == 0
with heapscope.Tracker(sys.argv[2]):
    assert _native._native_slots() == 0
    nativeext.take(222_223, 1)  # OFF
tm.start(5)
nativeext.take(333_331, 1)
assert _native._native_slots() == 0
sizes = [t.size for t in tm.take_snapshot().traces]
assert 333_331 not in sizes
assert all(t.domain != 0x6E617476 for t in tm.take_snapshot().traces)
tm.stop()
print("ok")
"""


def test_tracker_native_and_nothing_installed_when_off(ext_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "tracker.py"
    script.write_text(TRACKER_PROGRAM)
    env = native_env(ext_dir)
    on, off = tmp_path / "on.hsc", tmp_path / "off.hsc"
    proc = subprocess.run(
        [sys.executable, script, on, off],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    rows = report_json(on, env, "--at", "end", "-n", "1000")["rows"]
    native = [r for r in rows if r["file"] == str(script) and r["domain"] == NATIVE_DOMAIN]
    expected = [(line_of(TRACKER_PROGRAM, "NATIVE"), 123_457)]
    assert [(r["line"], r["size"]) for r in native] == expected, native
    rows = report_json(off, env, "--at", "end", "-n", "1000")["rows"]
    assert not [r for r in rows if r["domain"] == NATIVE_DOMAIN]
    assert os.path.getsize(off) > 0


INNER_LIB = r"""
#include <stdlib.h>
void *nx_inner_keep;
__attribute__((constructor)) static void inner_init(void) { nx_inner_keep = malloc(70001); }
"""

OUTER_LIB = r"""
#include <dlfcn.h>
#include <stdlib.h>
void *nx_outer_keep;
/* A constructor that calls dlopen: a load nested in the loader's own. */
__attribute__((constructor)) static void outer_init(void) {
    nx_outer_keep = malloc(90001);
    dlopen(INNER_PATH, RTLD_NOW);
}
void *nx_outer_alloc(size_t n) { return malloc(n); }
"""

LOADING_PROGRAM = """\
import ctypes
import sys
import threading

import nativeext

nativeext.churn(2)  # C threads that malloc and mmap all along


def load(path):
    lib = ctypes.CDLL(path)  # LOAD
    lib.nx_outer_alloc.restype = ctypes.c_void_p
    for _ in range(200):
        lib.nx_outer_alloc(1000)  # ALLOC


threads = [threading.Thread(target=load, args=(p,)) for p in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("loaded", len(threads))
"""


def test_concurrent_and_nested_dlopen_while_threads_allocate(ext_dir: Path, tmp_path: Path) -> None:
    """Four threads load libraries whose constructors malloc and dlopen another library, while
    C threads allocate and stacks are walked: no hang (the object list the fast unwinder uses
    changes under all of them), and what the loaded code mallocs afterwards is seen. (What
    constructors allocate is not: they run inside dlopen, before the new object's imports are
    redirected.)"""
    outers = []
    for i in range(4):
        inner = compile_shared(tmp_path, f"inner{i}.c", INNER_LIB, f"libnxinner{i}.so", "-O1")
        define = f'-DINNER_PATH="{inner}"'
        outer = compile_shared(
            tmp_path, f"outer{i}.c", OUTER_LIB, f"libnxouter{i}.so", "-O1", define, libs=("-ldl",)
        )
        outers.append(outer)
    script = tmp_path / "loading.py"
    script.write_text(LOADING_PROGRAM)
    env = native_env(ext_dir)
    out = tmp_path / "loading.hsc"
    proc = heapscope("run", "--native", "-o", out, script, *outers, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "loaded 4" in proc.stdout
    rows = report_json(out, env, "--at", "end", "-n", "1000")["rows"]
    at_alloc = [
        r
        for r in rows
        if r["domain"] == NATIVE_DOMAIN and r["line"] == line_of(LOADING_PROGRAM, "ALLOC")
    ]
    assert sum(r["size"] for r in at_alloc) == 4 * 200 * 1000, at_alloc
    assert sum(r["count"] for r in at_alloc) == 4 * 200, at_alloc
