"""heapscope's exceptions.

``HeapscopeError`` is the base of everything heapscope raises itself. ``FileFormatError``: a
snapshot or capture file is truncated, corrupted, of another kind or of an unsupported version.
``AttachError``: ``heapscope attach`` cannot trace a process (the target is left untouched).
Missing or unreadable files raise the built-in ``OSError`` subclasses, as ``open()`` does.
"""

from heapscope._native import FileFormatError, HeapscopeError

__all__ = ["AttachError", "FileFormatError", "HeapscopeError"]


class AttachError(HeapscopeError):
    """A process cannot be attached to: not permitted, not Python, already traced, ..."""
