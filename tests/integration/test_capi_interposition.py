"""A C library loaded with ctypes after tracing started calls ``PyTraceMalloc_Track`` and
``PyTraceMalloc_Untrack``: heapscope records the block in its domain with the caller's line,
with and without the GIL, and ``stop()`` gives the calls back to the interpreter (-2).

The library is compiled here with the system's C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SOURCE = """
#include <Python.h>
int track(unsigned int domain, void *ptr, size_t size) {
    return PyTraceMalloc_Track(domain, (uintptr_t)ptr, size);
}
int untrack(unsigned int domain, void *ptr) {
    return PyTraceMalloc_Untrack(domain, (uintptr_t)ptr);
}
void *raw_malloc(size_t size) { return PyMem_RawMalloc(size); }
void raw_free(void *ptr) { PyMem_RawFree(ptr); }
void *mem_malloc(size_t size) { return PyMem_Malloc(size); }
void mem_free(void *ptr) { PyMem_Free(ptr); }
"""

PROGRAM = textwrap.dedent(
    """
    import ctypes, sys
    import heapscope.tracemalloc as tm
    from heapscope import _native

    def load(kind):
        lib = kind(sys.argv[1])
        for f in (lib.track, lib.untrack):
            f.restype = ctypes.c_int
        lib.track.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
        lib.untrack.argtypes = [ctypes.c_uint, ctypes.c_void_p]
        return lib

    def in_domain(domain):
        snap = tm.take_snapshot().filter_traces([tm.DomainFilter(True, domain)])
        return [(t.size, t.traceback[0].lineno) for t in snap.traces]

    tm.start(1)
    held = load(ctypes.PyDLL)       # loaded after start: patched by the dlopen replacement
    nogil = load(ctypes.CDLL)       # the same object; calls release the GIL
    address = 0x5000_0000
    assert held.track(7, address, 1000) == 0; line_a = sys._getframe().f_lineno
    assert in_domain(7) == [(1000, line_a)], in_domain(7)
    assert nogil.track(7, address, 3000) == 0; line_b = sys._getframe().f_lineno
    assert in_domain(7) == [(3000, line_b)], in_domain(7)
    before = tm.get_traced_memory()[0]
    assert nogil.untrack(7, address) == 0
    after = tm.get_traced_memory()[0]
    assert before - after > 2000, (before, after)  # the 3000 bytes, less what the call took
    assert nogil.untrack(7, address) == 0   # unknown block: a no-op
    assert in_domain(7) == []
    assert _native._interposed_slots() > 0
    tm.stop()
    assert _native._interposed_slots() == 0
    assert held.track(7, address, 1000) == -2   # the interpreter's: its tracemalloc is off
    assert held.untrack(7, address) == -2
    print("ok")
    """
)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    tmp = tmp_path_factory.mktemp("capi")
    (tmp / "trackme.c").write_text(SOURCE)
    out = tmp / "libtrackme.so"
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", f"-I{include}", "-o", str(out), str(tmp / "trackme.c")],
        check=True,
        capture_output=True,
    )
    return out


def test_a_library_loaded_after_start_reports_to_heapscope(library: Path) -> None:
    import heapscope

    root = str(Path(heapscope.__file__).resolve().parent.parent)
    script = library.parent / "program.py"
    script.write_text(PROGRAM)
    _expect_ok(root, script, library)


def _expect_ok(root: str, script: Path, *args: object) -> None:
    """Run ``script`` with heapscope importable; it must exit 0 having printed ``ok``."""
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


LATE_UNTRACK = """
import codecs
import heapscope.tracemalloc as tracemalloc
import _testcapi

class Tracked:
    def __init__(self, domain, size):
        self.domain = domain
        self.ptr = id(self)
        _testcapi.tracemalloc_track(domain, self.ptr, size)

    def __del__(self, untrack=_testcapi.tracemalloc_untrack):
        untrack(self.domain, self.ptr)

tracemalloc.start()
obj = Tracked(5, 1024 * 1024)
# Destroyed late at exit (test.support.late_deletion of 3.13): held by a codec search function.
cycle = [obj]
cycle.append(cycle)
def search(encoding):
    return None
search.reference = cycle
codecs.register(search)
del obj, cycle
"""


def test_untrack_late_at_exit(tmp_path: Path) -> None:
    """CPython 3.13's test_late_untrack, with heapscope tracing until the end."""
    pytest.importorskip("_testcapi")
    import heapscope

    root = str(Path(heapscope.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", LATE_UNTRACK],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


RACE = """
import threading, time, _testcapi
import heapscope.tracemalloc as tm

done = threading.Event()

def worker(k):
    objs = [object() for _ in range(50)]
    n = 0
    while not done.is_set():
        for o in objs:
            for call in (
                lambda: _testcapi.tracemalloc_track(9, id(o), 100 + k, bool(n & 1)),
                lambda: _testcapi.tracemalloc_untrack(9, id(o)),
            ):
                try:
                    call()
                except RuntimeError:
                    pass  # not tracing at that moment (-2), as with the stdlib
            n += 1

threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
start = time.time()
cycles = 0
while time.time() - start < 1.5:
    tm.start(5, sample_rate=4096 if cycles % 3 == 0 else None)
    time.sleep(0.005)
    tm.take_snapshot()
    tm.clear_traces()
    tm.stop()
    cycles += 1
tm.start(5)
time.sleep(0.05)
done.set()
for t in threads:
    t.join()
left = tm.take_snapshot().filter_traces([tm.DomainFilter(True, 9)])
assert len(left.traces) == 0, len(left.traces)  # every track was followed by its untrack
tm.stop()
print(cycles)
"""


def test_track_and_untrack_race_with_start_and_stop(tmp_path: Path) -> None:
    """Threads track and untrack (with and without the GIL) while tracing starts and stops."""
    pytest.importorskip("_testcapi")
    import heapscope

    root = str(Path(heapscope.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", RACE],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 10


LOADER = """
#include <dlfcn.h>
static int call(const char *name) {
    void *h = dlopen(name, RTLD_NOW);
    if (!h) return -1;
    int (*f)(void) = (int (*)(void))dlsym(h, "b_value");
    return f ? f() : -2;
}
int by_runpath(void) { return call("libhsb.so"); }
int by_origin(void) { return call("$ORIGIN/sub/libhsb.so"); }
"""

LOADER_PROGRAM = """
import ctypes, sys
import heapscope.tracemalloc as tm
from heapscope import _native

tm.start()
before = _native._interposed_slots()
lib = ctypes.CDLL(sys.argv[1])   # its dlopen slot now points at heapscope's
assert _native._interposed_slots() > before
print(lib.by_runpath(), lib.by_origin())
tm.stop()
"""


def test_dlopen_from_a_patched_library_keeps_its_search_path(tmp_path: Path) -> None:
    """A library that dlopens a bare name found through its own DT_RUNPATH ($ORIGIN/sub), or a
    name with $ORIGIN, still finds it when its dlopen goes through heapscope's replacement."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.c").write_text("int b_value(void) { return 42; }\n")
    (tmp_path / "a.c").write_text(LOADER)
    build = [cc, "-shared", "-fPIC", "-O1", "-o"]
    subprocess.run([*build, str(tmp_path / "sub" / "libhsb.so"), str(tmp_path / "b.c")], check=True)
    subprocess.run(
        [
            *build,
            str(tmp_path / "libhsa.so"),
            str(tmp_path / "a.c"),
            "-Wl,-rpath,$ORIGIN/sub",
            "-Wl,--enable-new-dtags",
            "-ldl",
        ],
        check=True,
    )
    import heapscope

    root = str(Path(heapscope.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", LOADER_PROGRAM, str(tmp_path / "libhsa.so")],
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["42", "42"]


# numpy 2.5 allocates a buffer with PyMem_RawMalloc, calls PyTraceMalloc_Untrack(0, ptr) and then
# PyTraceMalloc_Track(its domain, ptr, size): domain 0 is the interpreter's own, so untracking
# there forgets the block the allocator traced, and the buffer counts once. Run with the stdlib
# and with heapscope: the same assertions hold for both.
DOMAIN_ZERO = textwrap.dedent(
    """
    import ctypes, gc, importlib, sys
    tm = importlib.import_module(sys.argv[2])

    def load(kind):
        lib = kind(sys.argv[1])
        lib.raw_malloc.restype = lib.mem_malloc.restype = ctypes.c_void_p
        lib.raw_malloc.argtypes = lib.mem_malloc.argtypes = [ctypes.c_size_t]
        lib.raw_free.argtypes = lib.mem_free.argtypes = [ctypes.c_void_p]
        lib.track.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
        lib.untrack.argtypes = [ctypes.c_uint, ctypes.c_void_p]
        return lib

    def big(domain):
        snap = tm.take_snapshot().filter_traces([tm.DomainFilter(True, domain)])
        return sorted((t.size, t.traceback[0].lineno) for t in snap.traces if t.size >= 100_000)

    tm.start(1)
    held = load(ctypes.PyDLL)
    nogil = load(ctypes.CDLL)
    for lib, malloc, free in (
        (held, held.raw_malloc, held.raw_free),  # RAW, untracked with the GIL
        (nogil, held.raw_malloc, held.raw_free),  # RAW, untracked without it
        (held, held.mem_malloc, held.mem_free),  # MEM, untracked with the GIL
    ):
        p = malloc(700_000); line = sys._getframe().f_lineno
        assert big(0) == [(700_000, line)], big(0)
        before = tm.get_traced_memory()[0]
        assert lib.untrack(0, p) == 0
        assert before - tm.get_traced_memory()[0] >= 690_000
        assert big(0) == [], big(0)
        assert held.track(389047, p, 700_000) == 0; line = sys._getframe().f_lineno
        assert big(389047) == [(700_000, line)] and big(0) == [], (big(389047), big(0))
        assert lib.untrack(389047, p) == 0
        free(p)  # no longer traced anywhere: freeing it changes nothing
        assert big(0) == [] and big(389047) == []
    gc.collect()  # the snapshots of big() (cycles) and nothing else
    assert tm.get_traced_memory()[0] < 100_000, tm.get_traced_memory()
    tm.stop()
    print("ok")
    """
)


@pytest.mark.parametrize("module", ["tracemalloc", "heapscope.tracemalloc"])
def test_untrack_in_domain_zero_forgets_the_allocators_trace(
    library: Path, tmp_path: Path, module: str
) -> None:
    import heapscope

    root = str(Path(heapscope.__file__).resolve().parent.parent)
    script = tmp_path / "domain_zero.py"
    script.write_text(DOMAIN_ZERO)
    _expect_ok(root, script, library, module)


# numpy 2.5's sequence under `heapscope run`: the buffer is allocated once, so it is in the
# total allocated once, under its domain (it was in domain 0 and in 389047 both).
RETAGGED = textwrap.dedent(
    """
    import ctypes, sys
    lib = ctypes.PyDLL(sys.argv[1])
    lib.raw_malloc.restype = ctypes.c_void_p
    lib.raw_malloc.argtypes = [ctypes.c_size_t]
    lib.raw_free.argtypes = [ctypes.c_void_p]
    lib.track.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    lib.untrack.argtypes = [ctypes.c_uint, ctypes.c_void_p]
    for _ in range(3):
        p = lib.raw_malloc(700_000)
        lib.untrack(0, p)
        lib.track(389047, p, 700_000)
        lib.untrack(389047, p)
        lib.raw_free(p)
    """
)


def test_a_buffer_moved_to_its_domain_is_counted_once_in_the_total(
    library: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    from ._helpers import heapscope, report_json

    (tmp_path / "retag.py").write_text(RETAGGED)
    proc = heapscope(
        "run", "-o", "r.hsc", "retag.py", str(library), cwd=tmp_path, env=subprocess_env
    )
    assert proc.returncode == 0, proc.stderr
    report = report_json(tmp_path / "r.hsc", subprocess_env, "--at", "total", "-n", "1000")
    ours = [r for r in report["rows"] if r["file"].endswith("retag.py")]
    big = [(r["domain"], r["size"], r["count"]) for r in ours if r["size"] >= 600_000]
    assert big == [(389047, 3 * 700_000, 3)], big
