"""The ``limit_memory`` / ``limit_leaks`` markers: reading them and the failure messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from heapscope._measure import Measurement
from heapscope._tables import format_lines
from heapscope._units import format_size, parse_size

__all__ = ["MARKERS", "Limit", "Limits", "MarkerError", "limits_of", "violations"]

MARKERS = ("limit_memory", "limit_leaks")


class MarkerError(Exception):
    """A ``limit_*`` marker with a bad argument (reported as a setup error of its test)."""


@dataclass(frozen=True)
class Limit:
    """One parsed marker: its name, the argument as written, and the bytes it means."""

    marker: str
    text: object
    n_bytes: int

    def describe(self) -> str:
        """``limit_memory('24 MB') = 24,000,000 bytes``."""
        return f"{self.marker}({self.text!r}) = {self.n_bytes:,} bytes"


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one test (``None`` where it has no marker)."""

    memory: Limit | None = None
    leaks: Limit | None = None

    def __bool__(self) -> bool:
        return self.memory is not None or self.leaks is not None


def _parse_marker(marker: pytest.Mark) -> Limit:
    name = marker.name
    if marker.kwargs or len(marker.args) != 1:
        given = ", ".join(
            [repr(arg) for arg in marker.args] + [f"{k}={v!r}" for k, v in marker.kwargs.items()]
        )
        raise MarkerError(
            f"@pytest.mark.{name} takes exactly one size, such as "
            f"@pytest.mark.{name}('24 MB'), not @pytest.mark.{name}({given})"
        )
    (arg,) = marker.args
    try:
        n_bytes = parse_size(arg)
    except (TypeError, ValueError) as exc:
        raise MarkerError(f"@pytest.mark.{name}({arg!r}): {exc}") from None
    return Limit(name, arg, n_bytes)


def limits_of(item: pytest.Item) -> Limits:
    """The limits of ``item`` from its closest markers; raises :class:`MarkerError`."""
    found: dict[str, Limit] = {}
    for name in MARKERS:
        marker = item.get_closest_marker(name)
        if marker is not None:
            found[name] = _parse_marker(marker)
    return Limits(memory=found.get("limit_memory"), leaks=found.get("limit_leaks"))


def violations(limits: Limits, measurement: Measurement, base: str | None = None) -> list[str]:
    """The failure messages for the limits that ``measurement`` exceeds (empty if none)."""
    messages = []
    if limits.memory is not None and measurement.peak > limits.memory.n_bytes:
        messages.append(
            f"heapscope: the test's peak traced memory {format_size(measurement.peak)} "
            f"({measurement.peak:,} bytes) exceeds {limits.memory.describe()}.\n"
            "Top allocating lines at the peak:\n"
            + (
                format_lines(measurement.peak_lines, base=base)
                if measurement.peak_lines
                else "    (none of the test's own: the peak is pytest's and heapscope's "
                "bookkeeping during the call, about 1-2 KiB)"
            )
        )
    if limits.leaks is not None and measurement.kept > limits.leaks.n_bytes:
        messages.append(
            f"heapscope: the test leaked {format_size(measurement.kept)} "
            f"({measurement.kept:,} bytes allocated during the test and still held after it, "
            f"after gc.collect()), more than {limits.leaks.describe()}.\n"
            "Leaking lines:\n"
            f"{format_lines(measurement.kept_lines, base=base)}"
        )
    return messages
