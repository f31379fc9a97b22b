"""heapscope's pytest plugin (the ``pytest11`` entry point ``heapscope``).

Inert unless ``--heapscope`` is given: without it the plugin only adds its options and
declares the ``limit_memory`` / ``limit_leaks`` markers (so ``--strict-markers`` accepts them),
imports nothing else and measures nothing. With it, every test's call phase runs under
``heapscope.tracemalloc`` (see :mod:`heapscope._pytest_tracing` for what is and is not
counted)::

    @pytest.mark.limit_memory("24 MB")   # fail if the test's peak traced memory exceeds 24 MB
    @pytest.mark.limit_leaks("1 MiB")    # fail if it keeps more than 1 MiB after gc.collect()

Options: ``--heapscope-top N`` (tests in the summary and lines per test, default 5),
``--heapscope-traceback-limit N`` (frames stored per allocation, default 1; with more, lines
are grouped by traceback and their callers shown) and ``--heapscope-native`` (what native code
takes with ``malloc`` and ``mmap`` counts too, at the C line that called ``malloc``).
"""

from __future__ import annotations

import pytest

from heapscope._units import positive_int, trace_limit

__all__ = ["MARKERS", "pytest_addoption", "pytest_configure"]

MARKERS = {
    "limit_memory": (
        "limit_memory(size): with --heapscope, fail the test if its peak traced memory exceeds "
        "size, e.g. '24 MB', '1.5 GiB' or an int number of bytes"
    ),
    "limit_leaks": (
        "limit_leaks(size): with --heapscope, fail the test if the memory it allocated and still "
        "holds after it (after gc.collect()) exceeds size, e.g. '1 MB'"
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--heapscope`` and its options."""
    group = parser.getgroup("heapscope", "memory checks with heapscope")
    group.addoption(
        "--heapscope",
        action="store_true",
        default=False,
        help="trace each test's memory, enforce limit_memory / limit_leaks markers, "
        "and summarize the tests with the highest peak",
    )
    group.addoption(
        "--heapscope-top",
        type=positive_int,
        default=5,
        metavar="N",
        help="with --heapscope: tests in the summary and lines shown per test (default 5)",
    )
    group.addoption(
        "--heapscope-traceback-limit",
        type=trace_limit,
        default=1,
        metavar="N",
        help="with --heapscope: frames stored per allocation (default 1, the allocating line)",
    )
    group.addoption(
        "--heapscope-native",
        action="store_true",
        default=False,
        help="with --heapscope: also count what native code (C extensions, ctypes libraries) "
        "takes with malloc and mmap, against the limits too",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers; with ``--heapscope``, register the tracing plugin."""
    for description in MARKERS.values():
        config.addinivalue_line("markers", description)
    if config.getoption("heapscope"):
        from heapscope._pytest_tracing import HeapscopePlugin

        config.pluginmanager.register(HeapscopePlugin(config), "heapscope-tracing")
