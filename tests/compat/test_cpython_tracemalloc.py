"""CPython's own ``Lib/test/test_tracemalloc.py`` run against ``heapscope.tracemalloc``.

The file that ships with this interpreter is loaded with one change, its ``import tracemalloc``
line, and five of its classes become pytest test classes (each test method is a pytest item).
"""

from __future__ import annotations

import sys
import sysconfig
import types
import unittest
from pathlib import Path

import pytest

_SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_tracemalloc.py"
_CLASSES = ("TestTraceback", "TestTracemallocEnabled", "TestSnapshot", "TestFilters", "TestCAPI")
_XFAIL = {
    "test_new_reference": (
        "CPython 3.11 re-attributes an object reused from a free list through an "
        "interpreter-internal hook (_PyTraceMalloc_NewReference) that other tracers cannot use; "
        "3.13's PyRefTracer is the sound route"
    ),
}


def _load() -> types.ModuleType:
    source = _SOURCE.read_text(encoding="utf-8")
    patched = source.replace(
        "\nimport tracemalloc\n", "\nimport heapscope.tracemalloc as tracemalloc\n", 1
    )
    assert patched != source, "the stdlib test file no longer has 'import tracemalloc'"
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
# PyTraceMalloc_Track / Untrack through _testcapi: heapscope's versions are what the extension
# calls while tracing (its GOT slots are patched), _PyTraceMalloc_GetTraceback too.
TestCAPI = _expose("TestCAPI")

__all__ = list(_CLASSES)
