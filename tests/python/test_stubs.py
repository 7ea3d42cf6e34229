"""python/tsrunner/_core.pyi declares exactly what the built extension exposes (issue 11.4)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import tsrunner
from tsrunner import _core

STUB = Path(tsrunner.__file__).with_name("_core.pyi")


def _declared() -> dict[str, set[str] | None]:
    """Module-level names in the stub; for classes, the names of their members."""
    names: dict[str, set[str] | None] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            names[node.name] = members
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def _public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def test_the_stub_ships_beside_py_typed():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_the_stub_declares_every_public_name_of_the_module():
    declared = _declared()
    exposed = {name for name in vars(_core) if not name.startswith("__")}
    exposed |= {"__version__"}
    assert set(declared) == exposed
    for name, members in declared.items():
        value = getattr(_core, name)
        if inspect.isclass(value):
            assert _public(members) == _public(vars(value)), name
