"""``heapscope flamegraph FILE``: a self-contained interactive HTML report of a capture."""

from __future__ import annotations

import argparse
import sys

from heapscope import _native
from heapscope.cli._output import (
    add_hide_native_argument,
    add_pid_argument,
    add_view_argument,
    default_output,
    warn_if_cut_short,
    write_output,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's arguments."""
    parser.add_argument("file", metavar="FILE", help="a capture file written by `heapscope run`")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write the HTML (default: the capture's name with .html; - for stdout)",
    )
    add_view_argument(parser)
    add_pid_argument(parser)
    add_hide_native_argument(parser)


def execute(args: argparse.Namespace) -> int:
    """Read the capture, render the report, write it; return the exit status."""
    profile = _native.load_capture(args.file, args.pid, args.hide_native)
    page: str = _native.render_html(profile, args.at)
    warn_if_cut_short(_native.profile_truncated(profile))
    output = args.output or default_output(args.file, ".html")
    where = write_output(page.encode("utf-8"), output)
    if where != "<stdout>":
        print(f"heapscope: wrote {where}", file=sys.stderr)
    return 0
