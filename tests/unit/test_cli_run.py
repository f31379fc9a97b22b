"""``heapscope run``'s argument handling and exit statuses, without running a program."""

from __future__ import annotations

import pytest

from heapscope.cli import build_parser
from heapscope.cli.run import _exit_status


@pytest.mark.parametrize(
    ("code", "status"), [(None, 0), (0, 0), (3, 3), (256, 256), ("message", 1), ([1], 1)]
)
def test_exit_status_like_the_interpreter(
    code: object, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_status(code) == status
    if isinstance(code, str):
        assert capsys.readouterr().err == "message\n"


def test_script_arguments_are_left_to_the_script() -> None:
    args = build_parser().parse_args(["run", "-o", "x.hsc", "prog.py", "-o", "y", "--help"])
    assert args.output == "x.hsc"
    assert args.program == ["prog.py", "-o", "y", "--help"]
    assert args.module is None


def test_module_arguments_are_left_to_the_module() -> None:
    args = build_parser().parse_args(["run", "--force", "-m", "pkg.mod", "a", "-m", "--force"])
    assert args.force is True
    assert args.module == ["pkg.mod", "a", "-m", "--force"]
    assert args.program == []


def test_report_defaults() -> None:
    args = build_parser().parse_args(["report", "a.hsc"])
    assert (args.at, args.by, args.n, args.json) == ("peak", "line", 10, False)


PARTIAL_THREADING = """
import importlib.machinery, sys, types
from heapscope import _capture
# What the flush thread meets while the program imports threading: the module in sys.modules,
# its body not run yet (`threading.enumerate` missing).
saved = sys.modules.get("threading")
partial = types.ModuleType("threading")
partial.__spec__ = importlib.machinery.ModuleSpec("threading", None)
partial.__spec__._initializing = True
sys.modules["threading"] = partial
print(_capture._thread_names())
if saved is not None:
    sys.modules["threading"] = saved
else:
    del sys.modules["threading"]
import threading
print(any(name == "MainThread" for _, name in _capture._thread_names()))
"""


def test_thread_names_while_the_program_imports_threading() -> None:
    """The flush thread asks for thread names at any time; a `threading` module still being
    imported by the program gives none (it raised AttributeError, which ended the capture)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", PARTIAL_THREADING], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True"]
