"""Memory sizes for humans: parse ``"24 MB"`` / ``"1.5GiB"`` / ``512`` and format byte counts.

Units are case-insensitive. Decimal units are powers of 1000 (``KB``, ``MB``, ``GB``), binary
units powers of 1024 (``KiB``, ``MiB``, ``GiB``); a bare number or ``B`` means bytes. Fractional
sizes are rounded to the nearest byte.
"""

from __future__ import annotations

import argparse
import re
from decimal import ROUND_HALF_UP, Decimal

from heapscope._capture import MAX_TRACE_LIMIT

__all__ = ["UNITS", "format_size", "integer_option", "parse_size", "positive_int", "trace_limit"]

UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}

_SIZE = re.compile(r"\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*")
_SPELLING = "B, KB, MB, GB, KiB, MiB, GiB"


def parse_size(size: str | int) -> int:
    """Return the number of bytes that ``size`` denotes.

    ``size`` is a non-negative ``int`` (bytes) or a string such as ``"24 MB"``, ``"1.5GiB"``,
    ``"100 kb"`` or ``"512"``. Raises ``TypeError`` for other types and ``ValueError`` (with a
    message naming the accepted units) for strings that are not sizes or are negative.
    """
    if isinstance(size, bool) or not isinstance(size, int | str):
        raise TypeError(
            f"a size must be a string such as '24 MB' or an int number of bytes, "
            f"not {type(size).__name__} ({size!r})"
        )
    if isinstance(size, int):
        if size < 0:
            raise ValueError(f"a size cannot be negative, got {size}")
        return size
    if size.strip().startswith("-"):
        raise ValueError(f"a size cannot be negative, got {size!r}")
    match = _SIZE.fullmatch(size)
    if match is None:
        raise ValueError(f"{size!r} is not a size: expected a number and a unit ({_SPELLING})")
    unit = match["unit"].lower() or "b"
    factor = UNITS.get(unit)
    if factor is None:
        raise ValueError(f"{size!r} has an unknown unit {match['unit']!r}: use one of {_SPELLING}")
    exact = Decimal(match["number"]) * factor
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_size(n_bytes: int, *, signed: bool = False) -> str:
    """Format a byte count with binary units: ``512 B``, ``1.5 KiB``, ``24.0 MiB``.

    With ``signed=True`` a leading ``+`` is shown for positive counts (for differences).
    """
    sign = "-" if n_bytes < 0 else ("+" if signed and n_bytes > 0 else "")
    value = abs(n_bytes)
    if value < 1024:
        return f"{sign}{value} B"
    scaled = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if round(scaled, 1) < 1024 or unit == "TiB":
            break
    return f"{sign}{scaled:.1f} {unit}"


def integer_option(text: str, low: int, high: int | None, what: str) -> int:
    """An option's integer value, from ``low`` to ``high`` (None: no upper bound); else
    ``argparse.ArgumentTypeError("expected WHAT, got VALUE")``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An ``argparse`` type for option values that must be integers of at least 1."""
    return integer_option(text, 1, None, "a positive integer")


def trace_limit(text: str) -> int:
    """An ``argparse`` type for a traceback limit: an integer from 1 to 65535."""
    value = positive_int(text)  # below 1: the message of every count option
    if value > MAX_TRACE_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a traceback limit from 1 to {MAX_TRACE_LIMIT}, got {value}"
        )
    return value
