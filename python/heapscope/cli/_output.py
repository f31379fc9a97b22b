"""Shared helpers of the report-writing subcommands: ``--at`` and output paths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

VIEWS = ("peak", "end", "total")


def add_view_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--at peak|end|total`` (default: peak)."""
    parser.add_argument(
        "--at",
        choices=VIEWS,
        default="peak",
        help="memory at the peak (default), still held at the end (leaks), or total allocated",
    )


def add_pid_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--pid PID`` (default: every process of the capture, merged)."""
    parser.add_argument(
        "--pid",
        type=int,
        default=None,
        metavar="PID",
        help="only this process of a multi-process capture (default: all processes merged)",
    )


def add_hide_native_argument(parser: argparse.ArgumentParser) -> None:
    """``--hide-native``: leave out the native (C) frames a ``--native`` capture recorded."""
    parser.add_argument(
        "--hide-native",
        action="store_true",
        help="leave the native (C) frames of a --native capture out of stacks",
    )


def default_output(capture: str, suffix: str) -> Path:
    """``heapscope-app.123.hsc`` -> ``heapscope-app.123<suffix>``, next to the capture."""
    path = Path(capture)
    stem = path.name[: -len(".hsc")] if path.name.endswith(".hsc") else path.name
    return path.with_name(stem + suffix)


def write_output(data: bytes, output: str | Path) -> str:
    """Write ``data`` to ``output`` (``-`` is standard output); return where it went."""
    if str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "<stdout>"
    Path(output).write_bytes(data)
    return str(output)
