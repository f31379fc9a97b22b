"""``heapscope report`` and ``heapscope diff`` on real captures, and on broken files."""

from __future__ import annotations

import os
import random
import textwrap
from pathlib import Path

import pytest

from ._helpers import heapscope, report_json

pytestmark = pytest.mark.timeout(180)

MB = 1024 * 1024

PROGRAM = """\
import sys

kept = None


def keep():
    global kept
    kept = bytearray(10 * 1024 * 1024)  # KEEP


def temporary():
    big = bytearray(50 * 1024 * 1024)  # PEAK
    del big


keep()
temporary()
"""


def line_of(marker: str) -> int:
    return next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if marker in line)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture of PROGRAM (recorded once for the module)."""
    tmp = tmp_path_factory.mktemp("capture")
    (tmp / "prog.py").write_text(PROGRAM)
    env = _env()
    proc = heapscope("run", "-o", "prog.hsc", "prog.py", cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stderr
    return tmp / "prog.hsc"


def _env() -> dict[str, str]:
    import heapscope

    env = dict(os.environ)
    root = str(Path(heapscope.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _row(report: dict[str, object], line: int) -> dict[str, object]:
    rows = report["rows"]
    assert isinstance(rows, list)
    return next(r for r in rows if r["file"].endswith("prog.py") and r["line"] == line)


def test_peak_is_attributed_to_the_temporary_line(capture: Path) -> None:
    report = report_json(capture, _env(), "--at", "peak")
    assert abs(_row(report, line_of("PEAK"))["size"] - 50 * MB) <= 0.05 * 50 * MB  # type: ignore[operator]
    assert abs(_row(report, line_of("KEEP"))["size"] - 10 * MB) <= 0.05 * 10 * MB  # type: ignore[operator]
    meta = report["meta"]
    assert isinstance(meta, dict)
    assert abs(meta["peak_bytes"] - 60 * MB) <= 0.05 * 60 * MB


def test_end_is_attributed_to_the_kept_line(capture: Path) -> None:
    report = report_json(capture, _env(), "--at", "end")
    assert abs(_row(report, line_of("KEEP"))["size"] - 10 * MB) <= 0.05 * 10 * MB  # type: ignore[operator]
    peak_line = [r for r in report["rows"] if r["line"] == line_of("PEAK")]  # type: ignore[union-attr, index]
    assert sum(r["size"] for r in peak_line) < MB


def test_total_counts_what_was_freed(capture: Path) -> None:
    report = report_json(capture, _env(), "--at", "total")
    assert _row(report, line_of("PEAK"))["size"] >= 50 * MB  # type: ignore[operator]


def test_json_shape(capture: Path) -> None:
    report = report_json(capture, _env(), "-n", "5")
    assert set(report) == {"meta", "rows"}
    rows = report["rows"]
    assert isinstance(rows, list)
    assert 0 < len(rows) <= 5
    for row in rows:
        assert set(row) == {"file", "line", "function", "size", "count", "domain"}
        assert isinstance(row["size"], int)
    sizes = [r["size"] for r in rows]
    assert sizes == sorted(sizes, reverse=True)
    meta = report["meta"]
    assert isinstance(meta, dict)
    assert meta["command"] == ["prog.py"]
    assert meta["truncated"] is False


def test_text_report(capture: Path) -> None:
    proc = heapscope("report", capture, "--by", "function", cwd=capture.parent, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "heapscope report: prog.py" in proc.stdout
    assert "temporary" in proc.stdout
    for by in ("line", "file", "stack"):
        for at in ("peak", "end", "total"):
            p = heapscope("report", capture, "--by", by, "--at", at, cwd=capture.parent, env=_env())
            assert p.returncode == 0, p.stderr


def test_diff(capture: Path) -> None:
    proc = heapscope("diff", capture, capture, cwd=capture.parent, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "No line changed" in proc.stdout


def test_sigkilled_run_is_readable(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    (tmp_path / "killed.py").write_text(
        textwrap.dedent(
            """\
            import os, signal, time
            held = bytearray(8 * 1024 * 1024)
            time.sleep(2.5)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    proc = heapscope("run", "-o", "k.hsc", "killed.py", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == -9
    text = heapscope("report", "k.hsc", cwd=tmp_path, env=subprocess_env)
    assert text.returncode == 0, text.stderr
    assert "cut short" in text.stdout
    report = report_json(tmp_path / "k.hsc", subprocess_env, "--at", "end")
    assert report["meta"]["truncated"] is True
    assert report["meta"]["duration_ms"] >= 1000
    held = [r for r in report["rows"] if r["file"].endswith("killed.py") and r["line"] == 2]
    assert held, report["rows"]
    assert abs(held[0]["size"] - 8 * MB) <= 0.05 * 8 * MB
    # The other outputs say so on stderr too (the HTML page also in the page).
    for args in (["export", "-f", "collapsed", "-o", "k.txt"], ["flamegraph", "-o", "k.html"]):
        proc = heapscope(*args, "k.hsc", cwd=tmp_path, env=subprocess_env)
        assert proc.returncode == 0, proc.stderr
        assert "cut short" in proc.stderr, (args, proc.stderr)


def _assert_clean_error(proc_args: tuple[str | Path, ...], cwd: Path, env: dict[str, str]) -> None:
    proc = heapscope(*proc_args, cwd=cwd, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("heapscope: error: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_broken_files_give_one_clean_line(
    capture: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    good = capture.read_bytes()
    rng = random.Random(1234)
    cases = {
        "missing.hsc": None,
        "empty.hsc": b"",
        "random.hsc": rng.randbytes(4096),
        "text.hsc": b"hello, not a capture\n",
        "truncated_header.hsc": good[:20],
        "bad_version.hsc": good[:8] + b"\x63\x00" + good[10:],
    }
    for offset in (40, len(good) // 2, len(good) - 30):
        flipped = bytearray(good)
        flipped[offset] ^= 0x10
        cases[f"flipped_{offset}.hsc"] = bytes(flipped)
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        _assert_clean_error(("report", name), tmp_path, subprocess_env)
    _assert_clean_error(("diff", "random.hsc", capture), tmp_path, subprocess_env)


def test_truncated_body_reads_as_cut_short(
    capture: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    good = capture.read_bytes()
    (tmp_path / "cut.hsc").write_bytes(good[: len(good) - 5])
    proc = heapscope("report", "cut.hsc", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr
    assert "cut short" in proc.stdout
