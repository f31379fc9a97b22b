"""The type stub of the extension module names what the module exports (what `make lint`'s
stubtest checks, here in the suite that CI runs: a function added to the module without its
stub entry went unnoticed for a stop)."""

from __future__ import annotations

import ast
from pathlib import Path

import heapscope._native as native

STUB = Path(native.__file__).with_name("_native.pyi")


def stub_names() -> tuple[list[str], set[str]]:
    """The stub's `__all__` and the names it defines."""
    tree = ast.parse(STUB.read_text())
    exported: list[str] = []
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    defined.add(target.id)
                    if target.id == "__all__" and node.value is not None:
                        exported = list(ast.literal_eval(node.value))
    return exported, defined


def test_the_stub_exports_every_public_name_of_the_module() -> None:
    exported, defined = stub_names()
    runtime = {name for name in dir(native) if not name.startswith("_")}
    assert runtime - set(exported) == set()
    assert len(exported) == len(set(exported))
    # Every exported name is defined in the stub and exists in the module.
    assert set(exported) - defined == set()
    assert {name for name in exported if not hasattr(native, name)} == set()
