"""heapscope's start-up hook for the child processes of a program run by ``heapscope run``.

``heapscope run`` puts this directory first on ``PYTHONPATH``, so every Python interpreter
the program starts imports this module at start-up. It takes its directory off ``sys.path``
again, runs the ``sitecustomize`` the interpreter would have run without heapscope (if any),
then starts recording the process (``heapscope._child``). A Python that cannot import
heapscope runs untraced and leaves a note in the capture. Plain syntax on purpose: any
Python 3 may import this file.
"""
# ruff: noqa: UP031, RUF005  (%-formatting and list concatenation: any Python 3 parses them)

import os
import sys


def _heapscope_start():
    # type: () -> None
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # The import system expects a module under this name when this file is done: ours,
    # unless the user's replaces it.
    ours = sys.modules.pop("sitecustomize", None)
    try:
        # The user's, found further down sys.path.
        import sitecustomize  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as exc:
        if exc.name != "sitecustomize":
            _report_error(exc)
    except Exception as exc:
        _report_error(exc)
    if "sitecustomize" not in sys.modules and ours is not None:
        sys.modules["sitecustomize"] = ours
    directory = os.environ.get("HEAPSCOPE_CAPTURE_DIR")
    if not directory:
        return
    try:
        from heapscope import _child
    except Exception as exc:
        _note(directory, "cannot import heapscope (%s: %s)" % (type(exc).__name__, exc))
        return
    _child.bootstrap()


def _report_error(exc):
    # type: (BaseException) -> None
    # As site.py reports a failing sitecustomize.
    if sys.flags.verbose:
        sys.excepthook(*sys.exc_info())
    else:
        sys.stderr.write(
            "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
            "%s: %s\n" % (type(exc).__name__, exc)
        )


def _note(directory, reason):
    # type: (str, str) -> None
    try:
        command = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)
        v = sys.version_info
        fields = [str(os.getpid()), str(os.getppid()), "%d.%d.%d" % v[:3], reason] + command
        path = os.path.join(directory, "%d.untraced" % os.getpid())
        if os.path.isdir(directory):
            with open(path, "w", encoding="utf-8") as f:
                f.write("\0".join(fields))
    except Exception:
        pass


_heapscope_start()
