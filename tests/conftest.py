"""Shared fixtures: subprocesses see the same heapscope package as the tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import heapscope


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for child Pythons that import the heapscope under test."""
    env = dict(os.environ)
    package_root = str(Path(heapscope.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env
