"""heapscope: a fast memory tracer and profiler for Python.

``import heapscope.tracemalloc as tracemalloc`` is a drop-in replacement for the standard
library's ``tracemalloc``.
"""

from heapscope._native import __version__

__all__ = ["__version__"]
