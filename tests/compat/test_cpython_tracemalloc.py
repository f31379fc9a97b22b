"""CPython's own ``Lib/test/test_tracemalloc.py`` run against ``heapscope.tracemalloc``.

The file that ships with this interpreter is loaded with only its imports of ``tracemalloc``
changed: the module's own ``import tracemalloc`` line, and the ``import tracemalloc; ...`` code
that TestCommandLine runs in child interpreters (which heapscope honours the ``-X tracemalloc``
and ``PYTHONTRACEMALLOC`` switches of, see heapscope._startup_tracing). Six of its classes
become pytest test classes (each test method is a pytest item).

TestCommandLine, test by test: ``test_env_var_*`` and ``test_sys_xoptions`` check that
heapscope.tracemalloc traces from import exactly when the interpreter was told to trace from
startup, with the limit it was given. ``test_env_var_invalid`` and ``test_sys_xoptions_invalid``
check the interpreter's own refusal of invalid values, before any module (heapscope included)
is imported: they pass unchanged and test the interpreter, not heapscope. ``test_pymem_alloc0``
runs with heapscope's tracer (imported in the child, started by ``-X tracemalloc``) around
``PyMem_Malloc(0)``.
"""

from __future__ import annotations

import sys
import sysconfig
import types
import unittest
from pathlib import Path

import pytest

_SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_tracemalloc.py"
_CLASSES = (
    "TestTraceback",
    "TestTracemallocEnabled",
    "TestSnapshot",
    "TestFilters",
    "TestCommandLine",
    "TestCAPI",
)
# Tests expected to fail, with the reason (none: free-list objects are re-attributed on every
# version, through PyRefTracer on 3.13+ and a redirected _Py_NewReference on 3.11).
_XFAIL: dict[str, str] = {}
_CHILD_IMPORT = "'import tracemalloc; "
_CHILD_ALLOC0 = "'import _testcapi; _testcapi.test_pymem_alloc0(); 1'"


def _load() -> types.ModuleType:
    source = _SOURCE.read_text(encoding="utf-8")
    patched = source.replace(
        "\nimport tracemalloc\n", "\nimport heapscope.tracemalloc as tracemalloc\n", 1
    )
    assert patched != source, "the stdlib test file no longer has 'import tracemalloc'"
    assert _CHILD_IMPORT in patched and _CHILD_ALLOC0 in patched, "TestCommandLine changed"
    patched = patched.replace(_CHILD_IMPORT, "'import heapscope.tracemalloc as tracemalloc; ")
    patched = patched.replace(_CHILD_ALLOC0, "'import heapscope.tracemalloc; " + _CHILD_ALLOC0[1:])
    module = types.ModuleType("heapscope_compat_test_tracemalloc")
    module.__file__ = str(_SOURCE)
    sys.modules[module.__name__] = module
    exec(compile(patched, str(_SOURCE), "exec"), module.__dict__)
    return module


_MODULE = _load()


def _expose(name: str) -> type[unittest.TestCase]:
    cls: type[unittest.TestCase] = getattr(_MODULE, name)
    namespace: dict[str, object] = {"__module__": __name__, "__qualname__": name}
    for test_name, reason in _XFAIL.items():
        if hasattr(cls, test_name):
            method = getattr(cls, test_name)
            namespace[test_name] = pytest.mark.xfail(
                reason=reason, strict=True, raises=AssertionError
            )(method)
    return type(name, (cls,), namespace)


TestTraceback = _expose("TestTraceback")
TestTracemallocEnabled = _expose("TestTracemallocEnabled")
TestSnapshot = _expose("TestSnapshot")
TestFilters = _expose("TestFilters")
TestCommandLine = _expose("TestCommandLine")
# PyTraceMalloc_Track / Untrack through _testcapi: heapscope's versions are what the extension
# calls while tracing (its GOT slots are patched), _PyTraceMalloc_GetTraceback too.
TestCAPI = _expose("TestCAPI")

__all__ = list(_CLASSES)
