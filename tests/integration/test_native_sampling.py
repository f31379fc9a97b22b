"""``heapscope run --native --sample-rate N``: native blocks are sampled like Python's.

Unsampled native blocks cost no stack walk; sampled ones count for ``size / p`` bytes, so sums
are unbiased estimates (the same Poisson sampling as ``sampling.rs``); anonymous mappings are
kept whole.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from ._helpers import heapscope, report_json
from ._native_build import build_extension, native_env

pytestmark = pytest.mark.timeout(180)

NATIVE_DOMAIN = 0x6E617476
RATE = 64 * 1024

PROGRAM = """\
import nativeext


def small():
    for _ in range(50_000):
        nativeext.take(1024, 0)  # SMALL


def big():
    for _ in range(3):
        nativeext.take(10_000_000, 0)  # BIG


small()
big()
nativeext.map(16, 4, 4)  # MMAP
"""


def line_of(marker: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if f"# {marker}" in line)


def test_native_blocks_are_sampled_and_scaled(tmp_path: Path) -> None:
    build_extension(tmp_path)
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    env = native_env(tmp_path)
    out = tmp_path / "sampled.hsc"
    proc = heapscope(
        "run", "--native", "--sample-rate", str(RATE), "-o", out, script, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    rows = {
        r["line"]: (r["size"], r["count"])
        for r in report_json(out, env, "--at", "total", "-n", "1000")["rows"]
        if r["domain"] == NATIVE_DOMAIN and r["file"].endswith("prog.py")
    }
    size, count = rows[line_of("SMALL")]
    truth = 50_000 * 1024
    # ~780 samples expected: the relative standard error is ~3.6 %; 15 % is a 4-sigma miss.
    assert abs(size - truth) / truth < 0.15, (size, truth)
    assert 300 < count < 2_000, count  # sampled, not all 50,000 blocks
    # A 10 MB block holds a sample point with probability 1 - exp(-152): each counts once,
    # at its size.
    size, count = rows[line_of("BIG")]
    assert count == 3 and abs(size - 30_000_000) <= 3, (size, count)
    # Mappings are recorded whole, unsampled (partial unmaps carve them by their real size).
    assert rows[line_of("MMAP")] == (16 * mmap.PAGESIZE, 1)
