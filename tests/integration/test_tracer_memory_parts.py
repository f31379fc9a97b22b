"""What `get_tracemalloc_memory()` counts: the tracer's and the profiler's structures, per part."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# A program that makes many distinct stacks (one function per stack), forces a drain of the
# profiler, then prints the parts, the total and the shape of what the tracer holds.
PROGRAM = textwrap.dedent(
    """
    import json
    from heapscope import _native
    from heapscope import tracemalloc as tm

    keep = []
    for i in range(3000):
        ns = {}
        exec(f"def f{i}(keep):\\n    keep.append(bytearray({i % 50} + 100))", ns)
        ns[f"f{i}"](keep)
    _native.flush_capture([])
    print(json.dumps({
        "parts": _native._tracer_memory_parts(),
        "total": tm.get_tracemalloc_memory(),
        "shape": _native._tracer_shape(),
    }))
    """
)


def test_parts_sum_to_the_total_and_cover_the_profiler(tmp_path: Path) -> None:
    script = tmp_path / "stacks.py"
    script.write_text(PROGRAM)
    out = subprocess.run(
        [sys.executable, "-m", "heapscope", "run", "-o", str(tmp_path / "c.hscap"), str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    parts = dict(result["parts"])
    assert len(parts) == len(result["parts"]), "each part is named once"
    assert sum(parts.values()) == result["total"]
    tracebacks, nodes, _, stacks = result["shape"]
    assert tracebacks >= 3000 and stacks >= 3000 and nodes >= 3000
    # Every structure that grows with tracebacks, nodes or stacks is counted.
    for name in [
        "interner.nodes",
        "interner.records",
        "interner.index",
        "stats.per_tb",
        "drain.tb_to_stack",
        "drain.stack_ids",
        "drain.last_written",
        "resolver.frames",
    ]:
        assert parts[name] > 0, name
    # 32-byte records and 40-byte counters, vectors at most twice their length.
    assert parts["interner.records"] <= 2 * 32 * tracebacks
    assert parts["stats.per_tb"] <= 2 * 40 * tracebacks
    # 16 bytes a stack for the figures last written (no copy of the figures).
    assert parts["drain.last_written"] <= 2 * 16 * stacks


# 20,000 new stacks drained at once: more than one piece (8,192 new tracebacks a piece).
MANY_STACKS = textwrap.dedent(
    """
    keep = []
    for i in range(20000):
        ns = {}
        exec(f"def leaf{i}(keep):\\n    keep.append(bytearray(1000))", ns)
        ns[f"leaf{i}"](keep)
    """
)


def test_a_burst_of_new_stacks_is_written_in_pieces_and_all_reach_the_report(
    tmp_path: Path,
) -> None:
    script = tmp_path / "many.py"
    script.write_text(MANY_STACKS)
    capture = tmp_path / "many.hscap"
    run = [sys.executable, "-m", "heapscope", "run", "-o", str(capture), str(script)]
    subprocess.run(run, capture_output=True, timeout=300, check=True)
    export = [sys.executable, "-m", "heapscope", "export", "-f", "collapsed", "-o", "-"]
    folded = subprocess.run(
        [*export, "--at", "end", str(capture)], capture_output=True, text=True, timeout=120
    )
    assert folded.returncode == 0, folded.stderr
    leaves: dict[str, int] = {}
    for line in folded.stdout.splitlines():
        stack, _, value = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1].split(" ")[0]
        if leaf.startswith("leaf"):
            leaves[leaf] = leaves.get(leaf, 0) + int(value)
    assert len(leaves) == 20000
    assert all(v >= 1000 for v in leaves.values())
