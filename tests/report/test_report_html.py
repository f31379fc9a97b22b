"""The HTML report without a browser: self-contained, data embedded safely, CLI wiring."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from heapscope import _native
from heapscope.cli import main

DATA_RE = re.compile(r'<script type="application/json" id="heapscope-data">(.*?)</script>', re.S)


def embedded(page: str) -> dict[str, Any]:
    """The JSON data block of a report page."""
    m = DATA_RE.search(page)
    assert m, "data block present"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def test_embeds_all_three_views(workload_profile: object) -> None:
    page = _native.render_html(workload_profile, "end")
    data = embedded(page)
    assert data["initial"] == "end"
    assert set(data["views"]) == {"peak", "end", "total"}
    names = {data["strings"][f[0]] for f in data["frames"]}
    assert {"load_records", "build_index", "render_rows", "make_blob", "main"} <= names
    peak = data["views"]["peak"]
    assert peak["tree"]["v"][0] == peak["total_bytes"]
    assert data["timeline"]["t"], "timeline embedded"


def test_self_contained(workload_profile: object) -> None:
    page = _native.render_html(workload_profile)
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    no_ns = page.replace('"http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?:|<link|src=|@import|url\(", no_ns)


def test_hostile_strings_are_escaped(
    hostile_profile: object, hostile_names: tuple[str, str]
) -> None:
    hostile_file, hostile_func = hostile_names
    page = _native.render_html(hostile_profile)
    assert "<img" not in page
    assert "<svg onload" not in page
    assert page.count("</script>") == 2
    assert "\u2028" not in page and "\u2029" not in page
    data = embedded(page)
    assert hostile_file in data["strings"] and hostile_func in data["strings"]
    assert data["meta"]["command"][0] == hostile_file


def test_unknown_view_is_a_value_error(hostile_profile: object) -> None:
    with pytest.raises(ValueError, match="unknown view"):
        _native.render_html(hostile_profile, "peek")


@pytest.fixture
def capture(tmp_path: Path, workload_capture: Path) -> Path:
    """A copy of the workload's real capture, named as ``heapscope run`` names them."""
    path = tmp_path / "heapscope-workload.123.hsc"
    shutil.copy(workload_capture, path)
    return path


def test_cli_flamegraph_default_output(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flamegraph", str(capture)]) == 0
    out = capture.with_name("heapscope-workload.123.html")
    assert "wrote" in capsys.readouterr().err
    assert embedded(out.read_text())["initial"] == "peak"


def test_cli_flamegraph_at_total(capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["flamegraph", str(capture), "-o", str(out), "--at", "total"]) == 0
    assert embedded(out.read_text())["initial"] == "total"


@pytest.mark.parametrize(
    ("fmt", "suffix", "magic"),
    [
        ("pprof", ".pb.gz", b"\x1f\x8b"),
        ("speedscope", ".speedscope.json", b"{"),
        ("collapsed", ".folded", b""),
    ],
)
def test_cli_export(capture: Path, fmt: str, suffix: str, magic: bytes) -> None:
    assert main(["export", str(capture), "--format", fmt, "--at", "end"]) == 0
    data = capture.with_name("heapscope-workload.123" + suffix).read_bytes()
    assert data and data.startswith(magic)


def test_cli_export_to_stdout(capture: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["export", str(capture), "-f", "collapsed", "-o", "-"]) == 0
    assert b"render_rows (" in capfdbinary.readouterr().out


def test_cli_unwritable_output(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = capture.parent / "missing-dir" / "r.html"
    assert main(["flamegraph", str(capture), "-o", str(target)]) == 2
    assert capsys.readouterr().err.startswith("heapscope: error:")
