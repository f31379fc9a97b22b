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
