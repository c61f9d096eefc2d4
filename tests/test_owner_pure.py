"""clawroomd.owner is sans-IO like the core: it may import the core and a short list of pure standard
modules, so the guard can run anywhere (and be tested) without trio, files, sockets or a clock."""

from __future__ import annotations

import ast
from pathlib import Path

OWNER = Path(__file__).resolve().parent.parent / "clawroomd" / "owner"
PURE_STDLIB = {"__future__", "re", "decimal", "unicodedata", "calendar", "dataclasses", "collections.abc", "typing",
               "operator", "functools", "itertools"}  # fmt: skip


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.add(node.module or "")
    return names


def test_owner_imports_only_the_core_and_pure_stdlib() -> None:
    bad = {
        f"{path.name}: {name}"
        for path in OWNER.glob("*.py")
        for name in imported(path)
        if name not in PURE_STDLIB and not name.startswith(("clawroomd.core", "clawroomd.owner"))
    }
    assert not bad, sorted(bad)
