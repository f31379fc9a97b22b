"""``heapscope.Tracker``: record part of a program."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ._helpers import report_json

pytestmark = pytest.mark.timeout(120)

MB = 1024 * 1024


def test_context_manager_and_decorator(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    (tmp_path / "part.py").write_text(
        textwrap.dedent(
            """\
            import heapscope

            before = bytearray(4 * 1024 * 1024)
            with heapscope.Tracker("ctx.hsc") as t:
                inside = bytearray(6 * 1024 * 1024)

            @heapscope.Tracker("deco.hsc", force=True)
            def work():
                return bytearray(3 * 1024 * 1024)

            work()
            work()
            print(type(t).__name__)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "part.py"],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Tracker\n"
    ctx = report_json(tmp_path / "ctx.hsc", subprocess_env, "--at", "end")
    lines = {r["line"]: r["size"] for r in ctx["rows"] if r["file"].endswith("part.py")}
    assert 3 not in lines
    assert abs(lines[5] - 6 * MB) <= 0.05 * 6 * MB
    deco = report_json(tmp_path / "deco.hsc", subprocess_env, "--at", "peak")
    sizes = {r["line"]: r["size"] for r in deco["rows"] if r["file"].endswith("part.py")}
    assert abs(sizes[9] - 3 * MB) <= 0.05 * 3 * MB


def test_tracker_refuses_existing_file(tmp_path: Path) -> None:
    import heapscope

    target = tmp_path / "exists.hsc"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError), heapscope.Tracker(target):
        pass
    assert target.read_bytes() == b"keep me"
