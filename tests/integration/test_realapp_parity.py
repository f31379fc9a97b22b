"""Real-library programs give the stdlib's numbers under heapscope: current and peak traced
memory within 1 %, the same top-10 lines, and a ``heapscope run`` capture whose peak is within
1 % of the stdlib's (``benchmarks/parity/``, the programs ``make bench`` measures at larger
sizes). Each tracer runs in a fresh interpreter; see ``benchmarks/parity/measure.py``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _parity  # noqa: E402

PROGRAMS = _parity.programs()


def test_there_are_five_programs() -> None:
    # A graph library, a parser, a document renderer, a template engine, code factories.
    assert [p.stem for p in PROGRAMS] == [
        "codegen_factories",
        "document_docutils",
        "graph_networkx",
        "parser_libcst",
        "templates_jinja2",
    ]


# 1 %, or 2 KiB for figures so small that a few free-list objects the tracers' own calls consume
# are more than 1 % (the code-factory program ends holding under 5 KiB on 3.13+; one CI run on
# 3.14 measured 4,687 B against 3,468 B there, and 3 reruns agreed within 1 KiB).
def _close(std: int, ours: int) -> bool:
    return abs(std - ours) <= max(0.01 * std, 2048)


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_same_numbers_as_the_stdlib(program: Path) -> None:
    # The programs are not quite deterministic: on 3.14 jinja2's visitor.py:33 holds 76-87 KB at
    # the end, run to run, under either tracer (15 runs each), and one CI run had it below the
    # 53 KB line ranked after it. A different order of the top lines is measured again, up to
    # three times; the figures of the last attempt are checked.
    for _ in range(3):
        parity = _parity.compare(program, dict(os.environ), scale=1)
        if parity.same_top():
            break
    std, ours = parity.stdlib, parity.heapscope
    assert _close(std["current"], ours["current"]), (std["current"], ours["current"])
    assert _close(std["peak"], ours["peak"]), (std["peak"], ours["peak"])
    assert parity.top_lines("heapscope") == parity.top_lines("stdlib")


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_run_peak_as_the_stdlib(program: Path) -> None:
    parity = _parity.compare(program, dict(os.environ), scale=1)
    # 1 %, or 16 KiB on programs this small: which cyclic garbage a collection has freed when
    # the peak comes depends on how many allocations came before, and the two harnesses differ
    # by a few. codegen_factories on 3.15 peaks at 867 KB under `heapscope run` against 877 KB
    # (1.06 %) once the runner stopped preloading the modules it imports; with the collector
    # off, 0.38 %.
    tolerance = max(0.01 * parity.stdlib["peak"], 16384)
    assert abs(parity.run_peak - parity.stdlib["peak"]) <= tolerance, (
        parity.run_peak,
        parity.stdlib["peak"],
    )
