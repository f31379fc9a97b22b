"""``heapscope run --native``: known answers for what native code allocates.

An extension module compiled here mallocs known sizes at known Python lines (some kept at
exit, some freed), a C library and a C++ library are loaded with ctypes after tracing started,
the C library's own malloc, calloc and free are called through ctypes (looked up with dlsym),
an anonymous mapping is partly unmapped, and a thread that C starts (no Python thread state)
allocates. Each block must appear once, in the native domain, at the right line, with the C
frames above the Python stack.
"""

from __future__ import annotations

import mmap as mmap_module
import shutil
from pathlib import Path
from typing import Any

import pytest

from ._helpers import heapscope, report_json
from ._native_build import (
    build_ctypes_lib,
    build_cxx_lib,
    build_extension,
    build_stripped_lib,
    compile_shared,
    native_env,
)

pytestmark = pytest.mark.timeout(180)

NATIVE_DOMAIN = 0x6E617476
# C++ new/delete is checked where a C++ compiler is installed (not in the Python root).
HAVE_CXX = bool(shutil.which("c++") or shutil.which("g++"))
PAGE = mmap_module.PAGESIZE

PROGRAM = """\
import ctypes
import sys

import nativeext

held = None


def keep():
    for _ in range(3):
        nativeext.take(1_000_003, 1)  # KEEP
    nativeext.take(7_000_000, 0)  # TEMP


def via_ctypes():
    global held
    lib = ctypes.CDLL(sys.argv[1])
    lib.nx_lib_alloc.restype = ctypes.c_void_p
    lib.nx_lib_alloc.argtypes = [ctypes.c_size_t]
    held = lib.nx_lib_alloc(2_000_000)  # CTYPES
    # The dlsym replacement passes the caller on: lookups relative to it still work.
    assert lib.nx_dlsym_default_ok() == 1, "dlsym(RTLD_DEFAULT) saw another caller"


def via_libc():
    # Allocator functions looked up by name: the pointers come from dlsym, not from a GOT.
    global libc_held, main_held
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc_held = libc.malloc(1_500_007)  # LIBC_KEEP
    libc.free(libc.malloc(900_001))  # LIBC_TEMP
    main = ctypes.CDLL(None)
    main.calloc.restype = ctypes.c_void_p
    main.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    main_held = main.calloc(1_000, 1_001)  # MAIN_CALLOC


def via_cxx():
    if len(sys.argv) < 3:  # no C++ compiler here
        return
    lib = ctypes.CDLL(sys.argv[2])
    lib.nx_cxx_new.argtypes = [ctypes.c_size_t, ctypes.c_int]
    lib.nx_cxx_new(500_000, 1)  # CXX_KEEP
    lib.nx_cxx_new(300_000, 0)  # CXX_TEMP


def inner():
    nativeext.take(3_000_017, 1)  # INNER


def outer():
    nativeext.call_back(inner)  # OUTER


keep()
outer()
via_ctypes()
via_libc()
via_cxx()
nativeext.map(16, 4, 4)  # MMAP
nativeext.c_thread(250_000, 4)
nativeext.family(100_000)  # FAMILY
"""


def line_of(marker: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if f"# {marker}" in line)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("native")
    built = {"ext": build_extension(tmp), "lib": build_ctypes_lib(tmp)}
    if shutil.which("c++") or shutil.which("g++"):
        built["cxx"] = build_cxx_lib(tmp)
    return built


@pytest.fixture(scope="module")
def capture(
    built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    tmp = built["ext"].parent
    script = tmp / "prog.py"
    script.write_text(PROGRAM)
    env = native_env(tmp)
    out = tmp_path_factory.mktemp("cap") / "native.hsc"
    libs = [built["lib"], *([built["cxx"]] if "cxx" in built else [])]
    proc = heapscope("run", "--native", "-o", out, script, *libs, cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stderr
    return out, env


def native_rows(report: dict[str, Any], script: str) -> dict[int, tuple[int, int]]:
    """(size, count) of the native rows of the program's lines."""
    return {
        r["line"]: (r["size"], r["count"])
        for r in report["rows"]
        if r["domain"] == NATIVE_DOMAIN and r["file"] == script
    }


def test_blocks_kept_at_exit_are_at_their_lines(capture: tuple[Path, dict[str, str]]) -> None:
    out, env = capture
    report = report_json(out, env, "--at", "end", "-n", "1000")
    script = next(r["file"] for r in report["rows"] if r["file"].endswith("prog.py"))
    rows = native_rows(report, script)
    assert rows[line_of("KEEP")] == (3 * 1_000_003, 3)
    assert rows[line_of("CTYPES")] == (2_000_000, 1)
    # The C library's own functions, looked up by ctypes with dlsym.
    assert rows[line_of("LIBC_KEEP")] == (1_500_007, 1)
    assert rows[line_of("MAIN_CALLOC")] == (1_001_000, 1)
    assert line_of("LIBC_TEMP") not in rows
    # 16 pages mapped, 4 unmapped from the middle: two pieces of 4 and 8 pages.
    assert rows[line_of("MMAP")] == (12 * PAGE, 2)
    # calloc, realloc (grown: the first block is gone), posix_memalign, aligned_alloc.
    assert rows[line_of("FAMILY")] == (4 * 100_000, 4)
    assert line_of("TEMP") not in rows


@pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler (c++/g++) installed")
def test_cxx_new_and_delete(capture: tuple[Path, dict[str, str]]) -> None:
    out, env = capture
    end = report_json(out, env, "--at", "end", "-n", "1000")
    script = next(r["file"] for r in end["rows"] if r["file"].endswith("prog.py"))
    size, count = native_rows(end, script)[line_of("CXX_KEEP")]
    # new char[500000], plus the std::vector's own array (a pointer) made by push_back.
    assert 500_000 <= size <= 500_000 + 64 and count == 2, (size, count)
    assert line_of("CXX_TEMP") not in native_rows(end, script)
    total = native_rows(report_json(out, env, "--at", "total", "-n", "1000"), script)
    assert total[line_of("CXX_TEMP")] == (300_000, 1)


def test_freed_blocks_count_in_the_total(capture: tuple[Path, dict[str, str]]) -> None:
    out, env = capture
    report = report_json(out, env, "--at", "total", "-n", "1000")
    script = next(r["file"] for r in report["rows"] if r["file"].endswith("prog.py"))
    rows = native_rows(report, script)
    assert rows[line_of("TEMP")] == (7_000_000, 1)
    assert rows[line_of("LIBC_TEMP")] == (900_001, 1)
    # 16 pages mapped once; the partial unmap is no new allocation.
    assert rows[line_of("MMAP")] == (16 * PAGE, 1)


def test_a_thread_c_started_has_only_native_frames(capture: tuple[Path, dict[str, str]]) -> None:
    out, env = capture
    report = report_json(out, env, "--at", "end", "--by", "stack", "-n", "1000")
    rows = [
        r
        for r in report["rows"]
        if r["domain"] == NATIVE_DOMAIN and r["stack"] and r["stack"][0]["function"] == "nx_grab"
    ]
    threaded = [r for r in rows if all(f["native"] for f in r["stack"])]
    assert sum(r["size"] for r in threaded) == 4 * 250_000, threaded
    functions = [f["function"] for f in threaded[0]["stack"]]
    assert functions[:2] == ["nx_grab", "nx_thread_body"], functions


def native_stack_rows(capture: tuple[Path, dict[str, str]], marker: str) -> list[dict[str, Any]]:
    """The `--by stack` rows of native blocks held at exit at the line of ``marker``."""
    out, env = capture
    report = report_json(out, env, "--at", "end", "--by", "stack", "-n", "1000")
    return [
        r for r in report["rows"] if r["domain"] == NATIVE_DOMAIN and r["line"] == line_of(marker)
    ]


def test_stacks_interleave_c_frames_above_the_python_line(
    capture: tuple[Path, dict[str, str]],
) -> None:
    out, env = capture
    rows = native_stack_rows(capture, "KEEP")
    # The interpreter may reach the C function through different C paths on the loop's first
    # and later calls (3.15's specializing interpreter does): several stacks, one line.
    assert sum(r["size"] for r in rows) == 3 * 1_000_003, rows
    for row in rows:
        check_keep_stack(row["stack"])
    # --hide-native leaves the Python frames only.
    hidden = report_json(out, env, "--at", "end", "--by", "stack", "-n", "1000", "--hide-native")
    for r in hidden["rows"]:
        assert not any(f["native"] for f in r["stack"]), r


def check_keep_stack(stack: list[dict[str, Any]]) -> None:
    """The stack of a block of the KEEP line: C frames, innermost first, then Python."""
    assert stack[0]["function"] == "nx_grab" and stack[0]["native"], stack[0]
    # Built with -g: the DWARF names the source file and the line of the malloc call.
    assert stack[0]["file"].endswith("nativeext.c") and stack[0]["line"] > 0, stack[0]
    assert stack[1]["function"] == "take" and stack[1]["file"].endswith("nativeext.c"), stack[1]
    python = [f for f in stack if not f["native"]]
    assert python[0]["line"] == line_of("KEEP") and python[0]["function"] == "keep", python
    first_python = stack.index(python[0])
    assert all(f["native"] for f in stack[:first_python])


def test_c_frames_between_python_frames_are_in_call_order(
    capture: tuple[Path, dict[str, str]],
) -> None:
    out, env = capture
    rows = native_stack_rows(capture, "INNER")
    assert sum(r["size"] for r in rows) == 3_000_017, rows
    stack = rows[0]["stack"]
    names = [(f["function"], f["native"]) for f in stack]

    def at(function: str, native: bool) -> int:
        return names.index((function, native))

    # malloc's caller, the extension function, the Python function that called it, the C
    # function that called that one back, the Python caller of that C function, the module.
    order = [
        at("nx_grab", True),
        at("take", True),
        at("inner", False),
        at("nx_call_back", True),
        at("outer", False),
        at("<module>", False),
    ]
    assert order == sorted(order), names
    assert stack[at("outer", False)]["line"] == line_of("OUTER")
    # The interpreter's own invocations are replaced by the Python frames they run.
    assert not any("_PyEval_EvalFrameDefault" in f for f, _ in names), names
    # The line report still names the innermost Python line.
    lines = report_json(out, env, "--at", "end", "-n", "1000")
    assert any(
        r["line"] == line_of("INNER") and r["size"] == 3_000_017
        for r in lines["rows"]
        if r["domain"] == NATIVE_DOMAIN
    ), lines["rows"]


def test_text_report_names_the_python_line_and_marks_native(
    capture: tuple[Path, dict[str, str]],
) -> None:
    out, env = capture
    proc = heapscope("report", out, "--at", "end", "-n", "50", cwd=out.parent, env=env)
    assert proc.returncode == 0, proc.stderr
    keep = next(line for line in proc.stdout.splitlines() if f"prog.py:{line_of('KEEP')}" in line)
    assert "[native]" in keep and "keep" in keep, keep
    # By stack, each row lists its whole stack under the heading: the C frames above the
    # Python line too, marked, innermost first (the heading names the Python line).
    by_stack = heapscope(
        "report", out, "--at", "end", "--by", "stack", "-n", "50", cwd=out.parent, env=env
    )
    assert by_stack.returncode == 0, by_stack.stderr
    block = by_stack.stdout.split(f"prog.py:{line_of('KEEP')}", 1)[1].splitlines()[1:4]
    assert "nx_grab [native]" in block[0] and "nativeext.c" in block[0], block
    assert "take [native]" in block[1], block
    collapsed = heapscope(
        "export", out, "-f", "collapsed", "-o", out.with_suffix(".txt"), cwd=out.parent, env=env
    )
    assert collapsed.returncode == 0, collapsed.stderr
    text = out.with_suffix(".txt").read_text()
    assert "nx_grab [native] (" in text
    hidden = heapscope(
        "export",
        out,
        "-f",
        "collapsed",
        "--hide-native",
        "-o",
        out.with_suffix(".hidden.txt"),
        cwd=out.parent,
        env=env,
    )
    assert hidden.returncode == 0, hidden.stderr
    assert "[native] (" not in out.with_suffix(".hidden.txt").read_text()


STRIPPED_PROGRAM = """\
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.nx_strip_alloc.restype = ctypes.c_void_p
lib.nx_strip_alloc.argtypes = [ctypes.c_size_t]
held = lib.nx_strip_alloc(1_500_000)
"""


def test_stripped_library_frames_are_not_misnamed(tmp_path: Path) -> None:
    """In an object without debug information or symbol table, a static function is named by
    its object and offset, not after the exported function before it."""
    lib = build_stripped_lib(tmp_path)
    script = tmp_path / "stripped.py"
    script.write_text(STRIPPED_PROGRAM)
    env = native_env(tmp_path)
    out = tmp_path / "stripped.hsc"
    proc = heapscope("run", "--native", "-o", out, script, lib, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    report = report_json(out, env, "--at", "end", "--by", "stack", "-n", "100")
    row = next(r for r in report["rows"] if r["domain"] == NATIVE_DOMAIN and r["size"] == 1_500_000)
    names = [f["function"] for f in row["stack"]]
    assert names[0].startswith("libnxstrip.so+0x"), names
    assert names[1] == "nx_strip_alloc", names
    assert "nx_strip_first" not in names, names


UNNAMED = """\
import time

import nativeext
from heapscope import _native

nativeext.take(1_000_003, 1)  # KEEP
time.sleep(0.6)  # the profiler's flushes write the native frames meanwhile
with open("objects_symbolized.txt", "w") as f:
    f.write(str(_native._objects_symbolized()))
"""


def test_the_traced_process_reads_no_debug_information(
    built: dict[str, Path], tmp_path: Path
) -> None:
    # The capture holds each native frame's object and address; `heapscope report` names
    # them, so the traced program's memory and time never pay for symbol tables and DWARF.
    tmp = built["ext"].parent
    script = tmp_path / "unnamed.py"
    script.write_text(UNNAMED)
    env = native_env(tmp)
    out = tmp_path / "unnamed.hsc"
    proc = heapscope(
        "run", "--native", "--flush-interval", "0.05", "-o", out, script, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "objects_symbolized.txt").read_text() == "0"
    report = report_json(out, env, "--at", "end", "--by", "stack", "-n", "1000")
    keep = line_of_in(UNNAMED, "KEEP")
    rows = [
        r
        for r in report["rows"]
        if r["domain"] == NATIVE_DOMAIN
        and any(not f["native"] and f["line"] == keep for f in r["stack"])
    ]
    assert sum(r["size"] for r in rows) == 1_000_003, rows
    grab = rows[0]["stack"][0]
    assert grab["function"] == "nx_grab" and grab["native"], grab
    assert grab["file"].endswith("nativeext.c") and grab["line"] > 0, grab


def line_of_in(program: str, marker: str) -> int:
    return next(i for i, line in enumerate(program.splitlines(), 1) if f"# {marker}" in line)


# A library that calls the allocator through pointers it keeps in its data, set by absolute
# relocations (libxml2's `xmlMalloc = malloc`, linked into lxml): no GOT slot names malloc.
POINTERS_LIB = r"""
#include <stdlib.h>
void *(*nx_malloc_fn)(size_t) = malloc;
void (*nx_free_fn)(void *) = free;
void *nx_via_pointer(size_t n) {
    char *p = nx_malloc_fn(n);
    if (p) p[0] = 1;
    return p;
}
void nx_free_via_pointer(void *p) { nx_free_fn(p); }
"""

# Address space reserved, not memory: PROT_NONE and MAP_NORESERVE mappings are not counted.
MAPPINGS_LIB = r"""
#include <sys/mman.h>
void *nx_map(size_t n, int prot, int noreserve) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
    void *p = mmap(0, n, prot, flags, -1, 0);
    return p == MAP_FAILED ? 0 : p;
}
"""

MAPPINGS_PROGRAM = """\
import ctypes
import mmap
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.nx_map.restype = ctypes.c_void_p
lib.nx_map.argtypes = [ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
rw = mmap.PROT_READ | mmap.PROT_WRITE
real = lib.nx_map(8 << 20, rw, 0)
reserved = lib.nx_map(1 << 30, rw, 1)
guard = lib.nx_map(64 << 20, 0, 0)  # PROT_NONE
"""


def run_with_lib(tmp_path: Path, name: str, lib_source: str, program: str) -> tuple[Path, Any]:
    """Compile ``lib<name>.so``, run ``program`` (the library's path as argv[1]) under
    ``heapscope run --native``; the capture and the environment to read it with."""
    lib = compile_shared(tmp_path, f"{name}.c", lib_source, f"lib{name}.so", "-g", "-O1")
    script = tmp_path / f"{name}.py"
    script.write_text(program)
    env = native_env(tmp_path)
    out = tmp_path / f"{name}.hsc"
    proc = heapscope("run", "--native", "-o", out, script, lib, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    return out, env


def test_reserved_address_space_is_not_memory(tmp_path: Path) -> None:
    out, env = run_with_lib(tmp_path, "nxmap", MAPPINGS_LIB, MAPPINGS_PROGRAM)
    rows = report_json(out, env, "--at", "end", "-n", "100")["rows"]
    native = {r["line"]: r["size"] for r in rows if r["domain"] == NATIVE_DOMAIN}
    assert native.get(9) == 8 << 20, native
    assert 10 not in native and 11 not in native, native


POINTERS_PROGRAM = """\
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.nx_via_pointer.restype = ctypes.c_void_p
lib.nx_via_pointer.argtypes = [ctypes.c_size_t]
lib.nx_free_via_pointer.argtypes = [ctypes.c_void_p]
held = lib.nx_via_pointer(2_500_000)
gone = lib.nx_via_pointer(1_500_000)
lib.nx_free_via_pointer(gone)
"""


def test_allocator_pointers_in_a_librarys_data_are_followed(tmp_path: Path) -> None:
    out, env = run_with_lib(tmp_path, "nxptr", POINTERS_LIB, POINTERS_PROGRAM)
    at_end = report_json(out, env, "--at", "end", "-n", "100")["rows"]
    native = [(r["line"], r["size"]) for r in at_end if r["domain"] == NATIVE_DOMAIN]
    assert (8, 2_500_000) in native, native
    total = report_json(out, env, "--at", "total", "-n", "100")["rows"]
    assert any(r["line"] == 9 and r["size"] == 1_500_000 for r in total), total
    assert not any(r["line"] == 9 for r in at_end if r["domain"] == NATIVE_DOMAIN), at_end
