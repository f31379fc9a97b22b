"""Plain-text tables and the statistics used in them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

NA = "n/a"


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def geomean(values: Iterable[float | None]) -> float | None:
    """The geometric mean, or None if any value is missing."""
    vals = list(values)
    if not vals or any(v is None or v <= 0 for v in vals):
        return None
    return math.exp(sum(math.log(v) for v in vals if v is not None) / len(vals))


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec`` and ``suffix``, or "n/a"."""
    return NA if value is None else f"{value:{spec}}{suffix}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """Left-aligned first column, right-aligned others, columns as wide as their content."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = (str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    out = [title] if title else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def added_share(hs_ratio: float | None, std_ratio: float | None) -> float | None:
    """heapscope's added time as a percentage of the stdlib's added time."""
    if hs_ratio is None or std_ratio is None or std_ratio <= 1.0:
        return None
    return 100.0 * (hs_ratio - 1.0) / (std_ratio - 1.0)


def verdict(value: float | None, limit: float, higher_is_better: bool = False) -> str:
    """Return "ok" or "MISS" against a target, or "n/a" for a missing value."""
    if value is None:
        return NA
    good = value >= limit if higher_is_better else value <= limit
    return "ok" if good else "MISS"
