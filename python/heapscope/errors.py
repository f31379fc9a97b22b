"""heapscope's exceptions.

``HeapscopeError`` is the base of everything heapscope raises itself. ``FileFormatError``: a
snapshot or capture file is truncated, corrupted, of another kind or of an unsupported version.
Missing or unreadable files raise the built-in ``OSError`` subclasses, as ``open()`` does.
"""

from heapscope._native import FileFormatError, HeapscopeError

__all__ = ["FileFormatError", "HeapscopeError"]
