"""Text and HTML tables of :class:`~heapscope._measure.LineStat` rows."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

from heapscope._measure import LineStat
from heapscope._units import format_size

__all__ = ["format_lines", "html_lines", "short_path"]


def short_path(location: str, base: str | None) -> str:
    """``location`` (``file:line``) relative to ``base`` when the file lies under it."""
    if not base:
        return location
    base = os.path.abspath(base)
    if location.startswith(base + os.sep):
        return location[len(base) + 1 :]
    return location


def _blocks(count: int) -> str:
    return f"{count} block" if count == 1 else f"{count} blocks"


def format_lines(lines: Sequence[LineStat], indent: str = "    ", base: str | None = None) -> str:
    """One row per line: size, number of blocks, ``file:line`` (then its callers, if any)."""
    if not lines:
        return f"{indent}(none)"
    rows = []
    for line in lines:
        head = f"{indent}{format_size(line.size):>10}  {_blocks(line.count):>12}  "
        rows.append(head + short_path(line.where, base))
        rows.extend(
            f"{' ' * len(head)}called from {short_path(caller, base)}" for caller in line.frames[1:]
        )
    return "\n".join(rows)


def html_lines(lines: Sequence[LineStat], caption: str) -> str:
    """An HTML ``<table>`` of the lines (sizes, blocks, escaped locations)."""
    rows = [
        "<tr>"
        f"<td style='text-align:right'>{html.escape(format_size(line.size))}</td>"
        f"<td style='text-align:right'>{line.count}</td>"
        f"<td style='text-align:left'><code>{'<br>'.join(map(html.escape, line.frames))}</code>"
        "</td>"
        "</tr>"
        for line in lines
    ]
    if not rows:
        rows = ["<tr><td colspan='3'>(none)</td></tr>"]
    return (
        f"<table><caption style='text-align:left'>{html.escape(caption)}</caption>"
        "<thead><tr><th>Size</th><th>Blocks</th><th>Where</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
