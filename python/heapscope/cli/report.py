"""``heapscope report``: the top allocations of a capture file."""

from __future__ import annotations

import argparse
import sys

from heapscope import _native
from heapscope.cli._output import (
    add_hide_native_argument,
    add_pid_argument,
    rows,
    warn_if_cut_short,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``report``'s options."""
    parser.add_argument("file", help="capture file (.hsc)")
    parser.add_argument(
        "--at",
        choices=["peak", "end", "total"],
        default="peak",
        help="memory held at the peak, still held at exit, or allocated in total (default peak)",
    )
    parser.add_argument(
        "--by",
        choices=["line", "file", "function", "stack"],
        default="line",
        help="how rows are grouped (default line)",
    )
    parser.add_argument("-n", type=rows, default=10, metavar="N", help="rows to show (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_pid_argument(parser)
    add_hide_native_argument(parser)


def execute(args: argparse.Namespace) -> int:
    """Print the report; 0 on success."""
    profile = _native.load_capture(args.file, args.pid, args.hide_native)
    text = _native.render_report(profile, args.at, args.by, args.n, args.json)
    sys.stdout.write(text)
    if args.json:  # the text report says it in its heading
        warn_if_cut_short(_native.profile_truncated(profile))
    return 0
