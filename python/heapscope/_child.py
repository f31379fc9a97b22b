"""The start-up of a child process of a traced program (called by heapscope's
``sitecustomize``): record this process into the capture's children directory.

It never raises and never prints: a child that cannot be traced runs as it would without
heapscope, and leaves a ``<pid>.untraced`` note in the capture when it can.
"""

from __future__ import annotations

import os

from heapscope import _follow

__all__ = ["bootstrap"]


def bootstrap() -> None:
    """Start recording this process if the environment asks for it."""
    config = _follow.FollowConfig.from_environ(os.environ)
    if config is None or not os.path.isdir(config.capture_dir):
        return  # the traced run is over (or the variables were inherited by something else)
    try:
        _follow.start_child(config, os.getppid())
    except Exception as exc:
        _follow.write_untraced_note(config.capture_dir, f"{type(exc).__name__}: {exc}")
