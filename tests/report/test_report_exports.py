"""`heapscope export`: pprof decoded against profile.proto, speedscope against its schema,
collapsed stacks parsed line by line."""

from __future__ import annotations

import gzip
import importlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from heapscope import _native

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def profile_pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """tests/data/profile.proto compiled with grpcio-tools' protoc, imported."""
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is in the test extra")
    pytest.importorskip("google.protobuf", reason="protobuf is in the test extra")
    out = tmp_path_factory.mktemp("pb2")
    rc = protoc.main(["protoc", f"-I{DATA}", f"--python_out={out}", str(DATA / "profile.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("profile_pb2")
    finally:
        sys.path.remove(str(out))


def test_pprof_decodes_with_four_sample_types(
    profile_pb2: ModuleType, workload_profile: object, workload_by_function: dict[str, Any]
) -> None:
    data = _native.export(workload_profile, "pprof", "peak")
    assert data[:2] == b"\x1f\x8b", "gzip-compressed"
    msg = profile_pb2.Profile()
    msg.ParseFromString(gzip.decompress(data))
    strings = list(msg.string_table)
    assert strings[0] == ""
    types = [(strings[t.type], strings[t.unit]) for t in msg.sample_type]
    assert types == [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]
    assert strings[msg.default_sample_type] == "inuse_space"
    locations = {loc.id: loc for loc in msg.location}
    functions = {f.id: f for f in msg.function}
    inuse: Counter[str] = Counter()
    for sample in msg.sample:
        assert len(sample.value) == 4
        assert all(lid in locations for lid in sample.location_id)
        leaf = locations[sample.location_id[0]].line[0]
        inuse[strings[functions[leaf.function_id].name]] += sample.value[3]
    expected = Counter(workload_by_function["peak"])
    assert +inuse == +expected
    # Functions are qualified names: the rows come from render_rows' list comprehension, a
    # function of its own before 3.12 (PEP 709 inlines comprehensions into their function).
    rows = "render_rows.<locals>.<listcomp>" if sys.version_info < (3, 12) else "render_rows"
    assert inuse[rows] > 0 and inuse["make_blob"] >= 8 << 20


def test_pprof_inuse_follows_at_end(profile_pb2: ModuleType, hostile_profile: object) -> None:
    msg = profile_pb2.Profile()
    msg.ParseFromString(gzip.decompress(_native.export(hostile_profile, "pprof", "end")))
    assert sum(s.value[3] for s in msg.sample) == 50
    assert sum(s.value[1] for s in msg.sample) == 500


@pytest.mark.skipif(shutil.which("go") is None, reason="go (for `go tool pprof`) is not installed")
def test_go_tool_pprof_reads_it(tmp_path: Path, workload_profile: object) -> None:
    path = tmp_path / "profile.pb.gz"
    path.write_bytes(_native.export(workload_profile, "pprof", "peak"))
    out = subprocess.run(
        ["go", "tool", "pprof", "-top", "-sample_index=inuse_space", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Type: inuse_space" in out.stdout
    assert "make_blob" in out.stdout and "load_records" in out.stdout


def test_speedscope_validates_against_schema(workload_profile: object) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra")
    schema = json.loads((DATA / "speedscope-file-format-schema.json").read_text())
    doc = json.loads(_native.export(workload_profile, "speedscope", "end"))
    jsonschema.validate(doc, schema)
    assert doc["activeProfileIndex"] == 1
    assert [p["unit"] for p in doc["profiles"]] == ["bytes"] * 3
    names = {doc["shared"]["frames"][s[-1]]["name"] for s in doc["profiles"][0]["samples"]}
    leaves = {name.split(".<locals>")[0] for name in names}
    assert {"load_records", "render_rows", "make_blob"} <= leaves
    for prof in doc["profiles"]:
        assert len(prof["samples"]) == len(prof["weights"])
        assert prof["endValue"] == sum(prof["weights"])


def test_collapsed_lines_parse(
    workload_profile: object, workload_by_function: dict[str, Any]
) -> None:
    text = _native.export(workload_profile, "collapsed", "peak").decode("utf-8")
    total = 0
    for line in text.splitlines():
        stack, _, value = line.rpartition(" ")
        assert stack and value.isdigit(), line
        assert all(frame.strip() for frame in stack.split(";"))
        total += int(value)
    assert total == sum(workload_by_function["peak"].values())
    assert "render_rows (" in text


def test_collapsed_keeps_one_line_per_stack(hostile_profile: object) -> None:
    lines = _native.export(hostile_profile, "collapsed", "total").decode().splitlines()
    assert len(lines) == 3
    assert all(line.count(" ") >= 1 and "\n" not in line for line in lines)
    assert any("a,b c.py" in line for line in lines), "';' and newlines replaced"


@pytest.mark.parametrize("bad", [("pprof", "middle"), ("svg", "peak")])
def test_bad_arguments_raise_value_error(hostile_profile: object, bad: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="unknown"):
        _native.export(hostile_profile, *bad)
