"""The package's import structure: no loops (TYPE_CHECKING imports count: a loop for the reader is a loop),
and every import runs down the layers drawn in DESIGN.md §2, never back up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "clawroomd"

# Lower number = lower layer. A module may import only modules of its own layer or below.
LAYERS = {
    "core": 0,
    "owner": 1,
    "private_files": 1,
    "keyfile": 1,
    "link": 1,
    "client": 2,
    "llm": 2,  # the LLM agent driver: an agent command, a client of the agent protocol; never the daemon
    "lan": 2,  # LAN discovery (mDNS); the daemon decides what a sighting means
    "daemon": 3,
    "testing": 4,
    "cli": 5,
    "mcp_server": 5,  # `clawroom mcp`: a client of the daemon like the CLI, started by it
    "demo": 6,
    "onefile": 7,  # the single-file entry point: it picks the CLI or the daemon
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) for name, path in paths.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_loops() -> None:
    edges = graph()
    # A package's __init__ re-exporting its submodules is not a loop of logic; drop those edges.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in edges.items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_imports_run_down_the_layers() -> None:
    upward = []
    for module, deps in graph().items():
        own = layer(module)
        for dep in deps:
            theirs = layer(dep)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} imports {dep}")
    assert not upward, "\n".join(sorted(upward))


def test_every_subpackage_has_a_layer() -> None:
    tops = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__init__", "__pycache__", "__main__"}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("bad", [{"a": {"b"}, "b": {"a"}}, {"a": {"b"}, "b": {"c"}, "c": {"a"}}])
def test_cycle_finder_finds_loops(bad: dict[str, set[str]]) -> None:
    assert find_cycle(bad) is not None
