"""heapscope: a fast memory tracer and profiler for Python.

``import heapscope.tracemalloc as tracemalloc`` is a drop-in replacement for the standard
library's ``tracemalloc``. ``%load_ext heapscope`` adds the ``%%heapscope`` cell magic to
IPython / Jupyter; ``pytest --heapscope`` checks tests' memory (``heapscope.pytest_plugin``).

PYTEST_DONT_REWRITE: pytest rewrites the asserts of the packages that provide plugins, and
warns when such a package was imported before it starts, as ``heapscope run -m pytest`` and
the children ``heapscope run`` follows do (an error under ``filterwarnings = error``).
"""

from __future__ import annotations

from heapscope._native import __version__

# The child processes `heapscope run` follows import this package at start-up: Tracker (and
# what it imports) is loaded on first use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from heapscope._tracker import Tracker

__all__ = ["Tracker", "__version__", "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> object:
    if name == "Tracker":
        from heapscope._tracker import Tracker

        return Tracker
    raise AttributeError(f"module 'heapscope' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%heapscope`` cell magic: ``%load_ext heapscope`` calls this."""
    from heapscope.ipython_magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%%heapscope`` cell magic: ``%unload_ext heapscope`` calls this."""
    from heapscope.ipython_magic import unload_ipython_extension as unload

    unload(ipython)
