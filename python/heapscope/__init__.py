"""heapscope: a fast memory tracer and profiler for Python.

``import heapscope.tracemalloc as tracemalloc`` is a drop-in replacement for the standard
library's ``tracemalloc``.
"""

from heapscope._native import __version__
from heapscope._tracker import Tracker

__all__ = ["Tracker", "__version__"]
