"""The ``heapscope`` command line: one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``execute(args) -> int``.
Exit codes: 0 ok, 1 a check failed, 2 heapscope itself failed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from heapscope.errors import HeapscopeError

TYPE_CHECKING = False  # not `typing`'s: see `_parser`
if TYPE_CHECKING:
    from typing import Any

COMMANDS: dict[str, str] = {
    "run": "run a Python program under the profiler and record a capture file",
    "attach": "record a capture of a running Python process for a while, then detach",
    "report": "print the top allocations of a capture file",
    "diff": "compare two capture files line by line",
    "flamegraph": "write a self-contained interactive HTML report of a capture file",
    "export": "export a capture file as pprof, speedscope or collapsed stacks",
}

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand that is installed."""
    return _parser(list(COMMANDS))


def _parser(with_arguments: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with the options of only the commands named: a command's module is imported
    only to run it, as what ``heapscope run`` imports is already in ``sys.modules`` when the
    program starts, and the program's own imports of those modules would not be traced."""
    parser = argparse.ArgumentParser(
        prog="heapscope", description="Memory profiler for Python.", formatter_class=_Formatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    # `prog` given, not formatted from the usage (3.14 would load its colour themes for that).
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog="heapscope")
    for name, help_text in COMMANDS.items():
        if name not in with_arguments:
            sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
            continue
        try:
            module = importlib.import_module(f"heapscope.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"heapscope.cli.{name}":
                raise
            continue
        cmd = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_Formatter
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_execute=module.execute)
    return parser


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal's width as `shutil.get_terminal_size` would:
    the default imports `shutil` (and with it `bz2`, `lzma`, `fnmatch`) to ask, and every
    module `heapscope run` imports is one the program's own import then does not trace."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
        **kwargs: Any,  # 3.14's `color`
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2  # as HelpFormatter does with shutil's answer
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)

    def _set_color(self, *args: Any, **kwargs: Any) -> None:
        # 3.14 calls this for every formatter, also those that only check an option, and it
        # imports `_colorize` (dataclasses, inspect, tokenize, ...): the colours are set when
        # something first reads them (help and usage messages), by `__getattr__`.
        self.__dict__["_heapscope_color"] = (args, kwargs)

    def __getattr__(self, name: str) -> Any:
        pending = self.__dict__.pop("_heapscope_color", None)
        if pending is None:
            raise AttributeError(name)
        super()._set_color(*pending[0], **pending[1])  # type: ignore[misc]
        return getattr(self, name)


def _terminal_columns() -> int:
    """`shutil.get_terminal_size().columns`: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _command_named(args: Sequence[str]) -> str | None:
    """The subcommand the arguments name: the first that is not a global option."""
    for arg in args:
        if arg in ("-v", "--verbose"):
            continue
        return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = _command_named(args_list)
    parser = _parser(list(COMMANDS) if command is None else [command])
    args = parser.parse_args(args_list)
    try:
        return int(args._execute(args))
    except (HeapscopeError, OSError, ValueError, OverflowError) as exc:
        if args.verbose:
            import traceback  # only then: `heapscope run` keeps its imports few (see _parser)

            traceback.print_exc()
        print(f"heapscope: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    if isinstance(exc, PermissionError) and exc.filename:
        return f"permission denied: {exc.filename}"
    return str(exc)
