"""``heapscope export FILE --format pprof|speedscope|collapsed``: a capture for other tools."""

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

#: Default file suffix per format.
SUFFIXES: dict[str, str] = {
    "pprof": ".pb.gz",
    "speedscope": ".speedscope.json",
    "collapsed": ".folded",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's arguments."""
    parser.add_argument("file", metavar="FILE", help="a capture file written by `heapscope run`")
    parser.add_argument(
        "-f",
        "--format",
        required=True,
        choices=tuple(SUFFIXES),
        help="pprof: gzipped profile.proto (go tool pprof); speedscope: speedscope.app JSON; "
        "collapsed: folded stacks for flamegraph.pl / inferno",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write (default: the capture's name with the format's suffix; - for stdout)",
    )
    add_view_argument(parser)
    add_pid_argument(parser)
    add_hide_native_argument(parser)


def execute(args: argparse.Namespace) -> int:
    """Read the capture, export it, write it; return the exit status."""
    profile = _native.load_capture(args.file, args.pid, args.hide_native)
    data: bytes = _native.export(profile, args.format, args.at)
    warn_if_cut_short(_native.profile_truncated(profile))
    output = args.output or default_output(args.file, SUFFIXES[args.format])
    where = write_output(data, output)
    if where != "<stdout>":
        print(f"heapscope: wrote {where}", file=sys.stderr)
    return 0
