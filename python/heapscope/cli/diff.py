"""``heapscope diff``: what grew or shrank between two captures, by line."""

from __future__ import annotations

import argparse
import sys

from heapscope import _native
from heapscope.cli._output import pid, rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``diff``'s options."""
    parser.add_argument("a", metavar="A.hsc", help="the earlier capture")
    parser.add_argument("b", metavar="B.hsc", help="the later capture")
    parser.add_argument(
        "--at", choices=["peak", "end", "total"], default="peak", help="which figures to compare"
    )
    parser.add_argument("-n", type=rows, default=20, metavar="N", help="rows to show (default 20)")
    parser.add_argument(
        "--pid-a",
        type=pid,
        default=None,
        metavar="PID",
        help="only this process of A (default: all its processes merged)",
    )
    parser.add_argument(
        "--pid-b",
        type=pid,
        default=None,
        metavar="PID",
        help="only this process of B (default: all its processes merged)",
    )


def execute(args: argparse.Namespace) -> int:
    """Print the diff; 0 on success."""
    a = _native.load_capture(args.a, args.pid_a)
    b = _native.load_capture(args.b, args.pid_b)
    sys.stdout.write(_native.render_diff(a, b, args.at, args.n))
    return 0
