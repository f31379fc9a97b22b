"""Shared helpers of the report-writing subcommands: ``--at`` and output paths."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from heapscope._units import integer_option

VIEWS = ("peak", "end", "total")


def add_view_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--at peak|end|total`` (default: peak)."""
    parser.add_argument(
        "--at",
        choices=VIEWS,
        default="peak",
        help="memory at the peak (default), still held at the end (leaks), or total allocated",
    )


_MAX_PID = 2**32 - 1  # pids are 32-bit in the capture
_MAX_ROWS = 2**32


def pid(text: str) -> int:
    """An argparse type: a process id (1 to 2**32 - 1)."""
    return integer_option(text, 1, _MAX_PID, f"a process id from 1 to {_MAX_PID}")


def rows(text: str) -> int:
    """An argparse type: a number of rows (0 or more; more than there are means all)."""
    return min(integer_option(text, 0, None, "a number of rows, 0 or more"), _MAX_ROWS)


def add_pid_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--pid PID`` (default: every process of the capture, merged)."""
    parser.add_argument(
        "--pid",
        type=pid,
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


def warn_if_cut_short(truncated: bool) -> None:
    """Say on stderr that the capture was cut short (the output itself may not show it)."""
    if truncated:
        print(
            "heapscope: warning: the capture was cut short; figures are as of its last flush",
            file=sys.stderr,
        )
