"""What `get_tracemalloc_memory()` counts: the tracer's and the profiler's structures, per part."""

from __future__ import annotations

import collections
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

# A program that makes many distinct stacks (one function per stack), forces a drain of the
# profiler, then prints the parts, the total, the shape of what the tracer holds and its
# slots (live tracebacks and those the sweep freed, which the vectors keep for reuse).
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
    # The flush thread may drain between the two readings (it checks every 50 ms): read again
    # until both come from one state.
    for _ in range(20):
        parts = _native._tracer_memory_parts()
        total = tm.get_tracemalloc_memory()
        if sum(b for _, b in parts) == total:
            break
    print(json.dumps({"parts": parts, "total": total, "shape": _native._tracer_shape(),
                      "slots": _native._tracer_slots()}))
    """
)


def run_program(tmp_path: Path, name: str, program: str) -> tuple[Path, str]:
    """`heapscope run` a program; its capture and standard output."""
    script = tmp_path / f"{name}.py"
    script.write_text(program)
    capture = tmp_path / f"{name}.hscap"
    run = [sys.executable, "-m", "heapscope", "run", "-o", str(capture), str(script)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300, check=True)
    return capture, out.stdout


def heapscope_json(*args: str) -> dict:
    """The JSON a heapscope command prints."""
    cmd = [sys.executable, "-m", "heapscope", *args, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout)


def test_parts_sum_to_the_total_and_cover_the_profiler(tmp_path: Path) -> None:
    _, stdout = run_program(tmp_path, "stacks", PROGRAM)
    result = json.loads(stdout.strip().splitlines()[-1])
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
        "drain.tb_stack",
        "drain.node_file",
        "drain.frame_ids",
        "resolver.frames",
    ]:
        assert parts[name] > 0, name
    # 32-byte records and 40-byte counters, vectors at most twice their length.
    tb_slots, node_slots = result["slots"]
    assert tracebacks <= tb_slots and nodes <= node_slots
    assert parts["interner.records"] <= 2 * 32 * tb_slots
    assert parts["stats.per_tb"] <= 2 * 40 * tb_slots
    # 4 bytes a traceback and a node for their ids in the capture; no per-stack state.
    assert parts["drain.tb_stack"] <= 2 * 4 * tb_slots
    assert parts["drain.node_file"] <= 2 * 4 * node_slots


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
    capture, _ = run_program(tmp_path, "many", MANY_STACKS)
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


# 30,000 distinct stacks whose blocks are freed at once, three times over, with the flushes a
# run makes in between: what the tracer holds must not grow with the stacks it has seen.
TRANSIENT = textwrap.dedent(
    """
    import json, types
    from heapscope import _native

    # Functions made at one line (their objects share one stack), each allocating from its own.
    fns = []
    for i in range(30000):
        src = f"def gone{i}():\\n    return len(bytearray({i % 50} + 1000))"
        fns.append(types.FunctionType(compile(src, "<gone>", "exec").co_consts[0], {}))
    keep = [bytearray(5000) for _ in range(10)]  # KEPT
    shapes = []
    for _ in range(3):
        for f in fns:
            f()
        # The first drain writes the new stacks, the second forgets those spent since.
        _native.flush_capture([])
        _native.flush_capture([])
        shapes.append(_native._tracer_shape())
    print(json.dumps(shapes))
    """
)


def test_spent_stacks_are_forgotten_after_being_written_and_merge_when_met_again(
    tmp_path: Path,
) -> None:
    capture, stdout = run_program(tmp_path, "transient", TRANSIENT)
    shapes = json.loads(stdout.strip().splitlines()[-1])
    for tracebacks, nodes, _, _ in shapes:
        # The stacks of 30,000 functions came and went; what holds memory stays.
        assert tracebacks < 5000, shapes
        assert nodes < 10000, shapes
    # Met again after being forgotten, each stack is written again in every round (a call may
    # allocate from more than one instruction of its line: several tracebacks, one stack)...
    written = [w for *_, w in shapes]
    assert written[0] >= 30000
    assert all(later - earlier >= 30000 for earlier, later in itertools.pairwise(written)), written
    # ...and readers merge them: one row per function, with every allocation counted.
    total = heapscope_json("report", "--at", "total", "--by", "stack", "-n", "100000", str(capture))
    per_function: dict[str, list[int]] = {}
    for row in total["rows"]:
        function = row["stack"][0]["function"]
        if function.startswith("gone"):
            per_function.setdefault(function, []).append(row["count"])
    assert len(per_function) == 30000
    # One row per function (the three writings merged), each call's blocks counted in all
    # three rounds: at least the bytearray and its buffer, 3 times. (Not an exact count: an
    # object reused from a free list counts as allocated where it is reused, and 3.14+ keeps
    # ints on a free list, so some calls count one or two blocks more.)
    assert all(len(counts) == 1 for counts in per_function.values()), per_function
    counts = collections.Counter(c[0] for c in per_function.values())
    assert min(counts) >= 2 * 3, counts
    end = heapscope_json("report", "--at", "end", "-n", "5", str(capture))
    assert any(r["size"] >= 50000 for r in end["rows"]), end["rows"]
