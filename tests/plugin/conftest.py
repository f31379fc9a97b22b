"""Helpers for running pytest inside the tests with heapscope's plugin loaded explicitly."""

from __future__ import annotations

import pytest

# Imported here so that pytester's restoring of sys.modules after an in-process run does not
# make each run import them (and the tracer facade) afresh.
import heapscope._pytest_tracing
import heapscope.pytest_plugin  # noqa: F401
from heapscope import tracemalloc

PLUGIN = ("-p", "heapscope.pytest_plugin")


def skip_if_traced() -> None:
    """Skip a test that needs the tracer to itself, when run under ``pytest --heapscope``.

    Call it from the test's body: the plugin traces the call phase only.
    """
    if tracemalloc.is_tracing():
        pytest.skip("needs heapscope's tracer, which is already running (pytest --heapscope?)")


@pytest.fixture
def isolated_pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester whose runs load only the plugins they name (with ``-p``).

    heapscope may also be installed with its ``pytest11`` entry point; loading it both ways
    would register the same module twice, so entry-point autoloading is turned off.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester
