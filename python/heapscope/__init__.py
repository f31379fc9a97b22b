"""heapscope: a fast memory tracer and profiler for Python.

``import heapscope.tracemalloc as tracemalloc`` is a drop-in replacement for the standard
library's ``tracemalloc``. ``%load_ext heapscope`` adds the ``%%heapscope`` cell magic to
IPython / Jupyter; ``pytest --heapscope`` checks tests' memory (``heapscope.pytest_plugin``).
"""

from typing import Any

from heapscope._native import __version__
from heapscope._tracker import Tracker

__all__ = ["Tracker", "__version__", "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%heapscope`` cell magic: ``%load_ext heapscope`` calls this."""
    from heapscope.ipython_magic import load_ipython_extension as load

    load(ipython)
