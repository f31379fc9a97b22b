"""The ``--live`` terminal UI: memory of a program while it runs, from its capture file.

The UI follows the capture the recorder writes (``_native.LiveCapture`` reads only the records
appended since its last poll, with the reader and replay of ``heapscope report``), so what it
shows and what the final report shows are the same records. Drawing is ``rich``; keys are read
from the terminal in cbreak mode (Ctrl-C still interrupts the program, as without ``--live``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from heapscope import _native
from heapscope._units import format_size
from heapscope.errors import HeapscopeError

__all__ = ["REFRESH_INTERVAL", "require_terminal", "run_ui"]

#: The domain of what native code took with malloc and mmap (``--native``).
NATIVE_DOMAIN = 0x6E617476

#: Seconds between two reads of the capture and redraws (the UI refreshes 4x a second).
REFRESH_INTERVAL = 0.25

_VIEWS = [("current", "end"), ("at peak", "peak"), ("allocated", "total")]
_SORTS = ["bytes", "blocks"]
_BARS = "▁▂▃▄▅▆▇█"
#: Timeline samples kept for the sparkline (50 ms apart: the last minute).
_SPARK_SAMPLES = 1200

HELP = (
    "q close UI (the program runs on)  v view: current/at peak/allocated  "
    "s sort: bytes/blocks  p pause"
)


def require_terminal() -> None:
    """Raise ``HeapscopeError`` unless stdin and stdout are a terminal."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise HeapscopeError(
            "--live needs a terminal (stdin and stdout are not one): record without --live "
            "and read the capture with heapscope report"
        )


@dataclass
class _UiState:
    view: int = 0
    sort: int = 0
    paused: bool = False
    polls: int = 0
    error: str | None = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[int, int, int]] = field(default_factory=list)


def sparkline(values: list[int], width: int) -> str:
    """``values`` squeezed into ``width`` block characters (the maximum of each bucket)."""
    if not values or width <= 0:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [
            max(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)])
            for i in range(width)
        ]
    top = max(values) or 1
    return "".join(_BARS[min(len(_BARS) - 1, v * len(_BARS) // (top + 1))] for v in values)


def _read(tail: _native.LiveCapture, state: _UiState, rows: int) -> None:
    try:
        state.polls += tail.poll()
    except (HeapscopeError, OSError) as exc:
        state.error = str(exc)
        return
    profile = tail.profile()
    if profile is None:
        return
    at = _VIEWS[state.view][1]
    # Sorting by blocks needs rows beyond the top by bytes.
    n = rows if state.sort == 0 else 500
    for by in ("line", "function"):
        report = json.loads(_native.render_report(profile, at, by, n, True))
        found = report["rows"]
        if state.sort == 1:
            found = sorted(found, key=lambda r: (-r["count"], -r["size"]))[:rows]
        state.rows[by] = found
        state.meta = report["meta"]
    state.samples = tail.recent(_SPARK_SAMPLES)


# Columns before the location: size, blocks, share, and the gaps between the five columns.
_FIXED_WIDTH = 9 + 7 + 6 + 4


def _table(title: str, rows: list[dict[str, Any]], by: str, total: int, width: int) -> Table:
    table = Table(title=title, title_justify="left", expand=True, box=None, pad_edge=False)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("blocks", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    # One line a row: a long path is cut at its start, so that its end (file, line and tag)
    # stays in view; the columns share what is left, 3 to 2.
    table.add_column(
        "function" if by == "function" else "location", overflow="ellipsis", no_wrap=True, ratio=3
    )
    table.add_column(
        "file" if by == "function" else "function", overflow="ellipsis", no_wrap=True, ratio=2
    )
    place_width = max(16, (width - _FIXED_WIDTH) * 3 // 5 - 2)
    for r in rows:
        share = f"{100 * r['size'] / total:.1f}%" if total else ""
        place = r["function"] if by == "function" else f"{r['file']}:{r['line']}"
        other = r["file"] if by == "function" else r["function"]
        domain = int(r.get("domain", 0))
        if domain:
            # As the text report tags locations.
            place += " [native]" if domain == NATIVE_DOMAIN else f" [domain {domain}]"
        if by == "line" and len(place) > place_width:
            place = "…" + place[-(place_width - 1) :]
        # Text, not markup: "[native]" would read as a style tag.
        table.add_row(format_size(r["size"]), str(r["count"]), share, Text(place), Text(other))
    return table


def _render(state: _UiState, title: str, note: str, status: str | None, width: int) -> Group:
    view, sort = _VIEWS[state.view][0], _SORTS[state.sort]
    current = state.samples[-1][1] if state.samples else 0
    elapsed = state.samples[-1][0] / 1000 if state.samples else 0.0
    meta = state.meta
    head = Text(f"heapscope live  {title}", style="bold")
    where = status or ("paused" if state.paused else "recording")
    head.append(f"   {elapsed:.1f} s  [{where}]", style="yellow" if status else "green")
    figures = Text(
        f"current {format_size(current)}   peak {format_size(int(meta.get('peak_bytes', 0)))}"
        f"   allocated {format_size(int(meta.get('total_allocated_bytes', 0)))} in "
        f"{meta.get('total_allocations', 0)} blocks"
    )
    values = [s[1] for s in state.samples]
    spark = Text("memory ", style="bold")
    spark.append(sparkline(values, max(10, width - 30)), style="cyan")
    if values:
        span = (state.samples[-1][0] - state.samples[0][0]) / 1000
        spark.append(f" last {span:.0f} s, max {format_size(max(values))}")
    total = sum(r["size"] for r in state.rows.get("line", [])) or 1
    parts: list[RenderableType] = [head, figures, spark, Text("")]
    for by, label in (("line", "lines"), ("function", "functions")):
        title_text = f"Top {label} by {view} memory (sorted by {sort})"
        parts.append(_table(title_text, state.rows.get(by, []), by, total, width))
        parts.append(Text(""))
    if state.error:
        parts.append(Text(f"error reading the capture: {state.error}", style="red"))
    parts.append(Text(note, style="dim"))
    parts.append(Text(HELP, style="reverse"))
    return Group(*parts)


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _key(fd: int, timeout: float) -> str:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return ""
    return os.read(fd, 32).decode(errors="replace")


def run_ui(
    capture: Path,
    *,
    title: str,
    note: str,
    tick: Callable[[], None],
    status: Callable[[], str | None],
) -> None:
    """Show the UI over ``capture`` until ``q``. ``tick`` runs every turn; ``status`` says
    when the recording is over (then the UI shows the final figures until ``q``)."""
    console = Console()
    tail = _native.LiveCapture(capture)
    state = _UiState()
    fd = sys.stdin.fileno()
    next_read = 0.0
    with _cbreak(fd), Live(console=console, screen=True, auto_refresh=False) as live:
        while True:
            tick()
            now = time.monotonic()
            if now >= next_read and not state.paused:
                rows = max(3, (console.size.height - 14) // 2)
                _read(tail, state, rows)
                live.update(_render(state, title, note, status(), console.size.width))
                live.refresh()
                next_read = now + REFRESH_INTERVAL
            for key in _key(fd, 0.05):
                if key in "qQ":
                    return
                if key == "v":
                    state.view = (state.view + 1) % len(_VIEWS)
                elif key == "s":
                    state.sort = (state.sort + 1) % len(_SORTS)
                elif key == "p":
                    state.paused = not state.paused
                else:
                    continue
                next_read = 0.0
                live.update(_render(state, title, note, status(), console.size.width))
                live.refresh()
