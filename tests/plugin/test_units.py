"""heapscope._units: parsing and formatting sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heapscope._units import UNITS, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 MB", 24_000_000),
        ("1.5GiB", 1_610_612_736),
        ("100 kb", 100_000),
        ("512", 512),
        ("512 B", 512),
        ("  7 b ", 7),
        ("1 KiB", 1024),
        ("2 mib", 2 * 1024**2),
        ("3 GB", 3_000_000_000),
        (".5 KB", 500),
        ("1. KiB", 1024),
        ("0", 0),
        ("0.4 B", 0),
        ("0.5 B", 1),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("12 parsecs", ValueError, "unknown unit 'parsecs'"),
        ("", ValueError, "is not a size"),
        ("MB", ValueError, "is not a size"),
        ("1e6", ValueError, "is not a size"),
        ("1,000 KB", ValueError, "is not a size"),
        ("-1 MB", ValueError, "cannot be negative"),
        (-5, ValueError, "cannot be negative"),
        (1.5, TypeError, "not float"),
        (None, TypeError, "not NoneType"),
        (True, TypeError, "not bool"),
        (b"1 MB", TypeError, "not bytes"),
    ],
)
def test_parse_size_rejects(bad: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (24 * 1024**2, "24.0 MiB"),
        (1024**2 - 1, "1.0 MiB"),
        (5 * 1024**4, "5.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_format_size(n_bytes: int, text: str) -> None:
    assert format_size(n_bytes) == text


def test_format_size_signed() -> None:
    assert format_size(2048, signed=True) == "+2.0 KiB"
    assert format_size(0, signed=True) == "0 B"


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(sorted(UNITS)))
def test_integer_sizes_in_any_unit_and_case(number: int, unit: str) -> None:
    expected = number * UNITS[unit]
    assert parse_size(f"{number} {unit}") == expected
    assert parse_size(f"{number}{unit.upper()}") == expected
    assert parse_size(f"{number}{unit.title()}") == expected


@given(st.integers(min_value=0, max_value=2**60))
def test_format_then_parse_is_close(n_bytes: int) -> None:
    text = format_size(n_bytes)
    if text.endswith("TiB"):
        text = f"{float(text.split()[0]) * 1024} GiB"
    assert abs(parse_size(text) - n_bytes) <= max(n_bytes * 0.05, 0)
