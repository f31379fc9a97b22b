"""heapscope's exceptions."""

from heapscope._native import HeapscopeError

__all__ = ["HeapscopeError"]
