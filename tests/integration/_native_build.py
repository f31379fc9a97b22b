"""Native code for the ``--native`` tests, compiled with the system's C (and C++) compiler:
an extension module, a plain C library for ctypes and a C++ library for ctypes.

Functions that allocate are exported (not ``static``) so that their names are in the dynamic
symbol table that names native frames.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

import heapscope

EXTENSION = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *kept[4096];
static int nkept;

void *nx_grab(size_t n) {
    void *p = malloc(n);
    if (p) memset(p, 1, n);
    return p;
}

static PyObject *take(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    int keep;
    if (!PyArg_ParseTuple(args, "ni", &n, &keep)) return NULL;
    void *p = nx_grab((size_t)n);
    if (keep && nkept < 4096) kept[nkept++] = p; else free(p);
    Py_RETURN_NONE;
}

/* calloc, realloc and the aligned family, each kept. */
void *nx_family(size_t n) {
    void *a = calloc(1, n);
    void *b = realloc(NULL, n / 2);
    b = realloc(b, n);
    void *c = NULL;
    if (posix_memalign(&c, 64, n) != 0) c = NULL;
    void *d = aligned_alloc(4096, n);
    kept[nkept++] = a; kept[nkept++] = b; kept[nkept++] = c; kept[nkept++] = d;
    return a;
}

static PyObject *family(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    nx_family((size_t)n);
    Py_RETURN_NONE;
}

static PyObject *release_all(PyObject *self, PyObject *args) {
    while (nkept > 0) free(kept[--nkept]);
    Py_RETURN_NONE;
}

/* Map `pages` anonymous pages and unmap `hole` of them, `at` pages in. */
void *nx_map(long pages, long at, long hole) {
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    memset(p, 1, pages * page);
    if (hole > 0) munmap(p + at * page, hole * page);
    return p;
}

static PyObject *map(PyObject *self, PyObject *args) {
    long pages, at, hole;
    if (!PyArg_ParseTuple(args, "lll", &pages, &at, &hole)) return NULL;
    return PyLong_FromVoidPtr(nx_map(pages, at, hole));
}

struct job { size_t size; int count; };

void *nx_thread_body(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < j->count; i++) {
        void *p = nx_grab(j->size);
        if (nkept < 4096) kept[nkept++] = p;
    }
    return NULL;
}

/* A thread C starts: it has no Python thread state. */
static PyObject *c_thread(PyObject *self, PyObject *args) {
    struct job j;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "ni", &size, &j.count)) return NULL;
    j.size = (size_t)size;
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    if (pthread_create(&t, NULL, nx_thread_body, &j) == 0) pthread_join(t, NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static volatile int churning;

void *nx_churn_body(void *arg) {
    while (churning) {
        void *p = malloc(64 + (rand() & 4095));
        free(p);
        void *q = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q != MAP_FAILED) munmap(q, 8192);
    }
    return NULL;
}

/* Threads that allocate without end (never joined). */
static PyObject *churn(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    churning = 1;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, nx_churn_body, NULL) == 0) pthread_detach(t);
    }
    Py_RETURN_NONE;
}

/* C that calls back into Python: its frame sits between two Python frames. */
PyObject *nx_call_back(PyObject *self, PyObject *callable) {
    return PyObject_CallNoArgs(callable);
}

static PyMethodDef methods[] = {
    {"take", take, METH_VARARGS, ""},
    {"call_back", nx_call_back, METH_O, ""},
    {"family", family, METH_VARARGS, ""},
    {"release_all", release_all, METH_NOARGS, ""},
    {"map", map, METH_VARARGS, ""},
    {"c_thread", c_thread, METH_VARARGS, ""},
    {"churn", churn, METH_VARARGS, ""},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "nativeext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_nativeext(void) { return PyModule_Create(&mod); }
"""

CTYPES_LIB = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
void *nx_lib_alloc(size_t n) {
    void *p = malloc(n);
    if (p) memset(p, 2, n);
    return p;
}
void nx_lib_free(void *p) { free(p); }
/* dlsym(RTLD_DEFAULT) searches the caller's scope: this object was loaded RTLD_LOCAL, so
   only its own lookups see it. 1 only if dlsym knows who called it (RTLD_NEXT takes the same
   path through the replacement). */
int nx_dlsym_default_ok(void) { return dlsym(RTLD_DEFAULT, "nx_dlsym_default_ok") != NULL; }
"""

CXX_LIB = r"""
#include <cstddef>
#include <cstring>
#include <vector>
static std::vector<char *> kept;
extern "C" void nx_cxx_new(std::size_t n, int keep) {
    char *p = new char[n];
    std::memset(p, 3, n);
    if (keep) kept.push_back(p); else delete[] p;
}
"""


def _compiler(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no compiler among {', '.join(names)}")


def compile_shared(
    directory: Path,
    source_name: str,
    text: str,
    out_name: str,
    *flags: str,
    compiler: tuple[str, ...] = ("cc", "gcc"),
    libs: tuple[str, ...] = (),
) -> Path:
    """Write ``text`` to ``directory/source_name`` and compile it into the shared object
    ``directory/out_name`` with ``flags``."""
    source = directory / source_name
    source.write_text(text)
    out = directory / out_name
    subprocess.run(
        [_compiler(*compiler), "-shared", "-fPIC", *flags, "-o", out, source, *libs],
        check=True,
        capture_output=True,
    )
    return out


def build_extension(directory: Path) -> Path:
    """Compile the ``nativeext`` extension module into ``directory``."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    include = sysconfig.get_paths()["include"]
    flags = ("-g", "-O1", "-pthread", f"-I{include}")
    return compile_shared(directory, "nativeext.c", EXTENSION, f"nativeext{suffix}", *flags)


def build_ctypes_lib(directory: Path) -> Path:
    """Compile ``libnxlib.so`` (plain C, loaded with ctypes)."""
    return compile_shared(directory, "nxlib.c", CTYPES_LIB, "libnxlib.so", "-g", "-O1")


STRIPPED_LIB = r"""
#include <stdlib.h>
#include <string.h>
void nx_strip_first(void) {}
__attribute__((noinline)) static void *hidden_alloc(size_t n) {
    void *p = malloc(n);
    if (p) memset(p, 3, n);
    return p;
}
__attribute__((noinline)) void *nx_strip_alloc(size_t n) {
    char *p = hidden_alloc(n);
    if (p) p[0] = 4; /* not a tail call: this frame stays on the stack */
    return p;
}
"""


def build_stripped_lib(directory: Path) -> Path:
    """Compile ``libnxstrip.so`` without debug information or symbol table (``-s``, as most
    wheels ship): only its exported functions have names."""
    flags = ("-O1", "-fno-reorder-functions", "-s")
    return compile_shared(directory, "nxstrip.c", STRIPPED_LIB, "libnxstrip.so", *flags)


def build_cxx_lib(directory: Path) -> Path:
    """Compile ``libnxcxx.so`` (C++ ``new``/``delete``, loaded with ctypes)."""
    return compile_shared(
        directory, "nxcxx.cpp", CXX_LIB, "libnxcxx.so", "-g", "-O1", compiler=("c++", "g++")
    )


def native_env(directory: Path) -> dict[str, str]:
    """Environment for a child Python that imports the heapscope under test and modules
    built in ``directory``."""
    env = dict(os.environ)
    package_root = str(Path(heapscope.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), package_root])
    return env
