"""The ``heapscope`` command line: one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``execute(args) -> int``.
Exit codes: 0 ok, 1 a check failed, 2 heapscope itself failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from heapscope.errors import HeapscopeError

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
    parser = argparse.ArgumentParser(prog="heapscope", description="Memory profiler for Python.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"heapscope.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"heapscope.cli.{name}":
                raise
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_execute=module.execute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        return int(args._execute(args))
    except (HeapscopeError, OSError, ValueError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"heapscope: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    if isinstance(exc, PermissionError) and exc.filename:
        return f"permission denied: {exc.filename}"
    return str(exc)
