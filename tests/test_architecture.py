"""The architecture docs/architecture.md states, checked against the code.

- Every module sits on one floor of the table under "## Floors"; nothing imports a module on a
  higher floor, and the import graph has no loop. An edge is any import statement (at module
  level or inside a function) and any string naming one of our modules, alone or as a
  registry's ``"module:attr"`` (lazy targets import the module as surely as a statement does).
- No file in src/ is over 600 lines unless "## Files over 600 lines" lists it with a reason.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "slim_leakage"
DOCS = ROOT / "docs" / "architecture.md"
MAX_LINES = 600
_MODULE_STRING = re.compile(r"slim_leakage(\.\w+)*(:[\w.]+)?")


@dataclass(frozen=True)
class Edge:
    """``importer`` needs ``target``, as written at ``where``."""

    importer: str
    target: str
    where: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.target} ({self.where})"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _owner(name: str, modules) -> str | None:
    """The module ``name`` loads: itself, or the package it is an attribute of."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _edges(modules: dict[str, Path]) -> list[Edge]:
    edges = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named: list[str] = []
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import sub` loads pkg.sub; `from pkg import name` loads pkg
                named = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            elif isinstance(node, ast.Constant) and _MODULE_STRING.fullmatch(str(node.value)):
                text = str(node.value).partition(":")[0]
                named = [text] if text in modules else []  # entry-point group names are not
            for name in named:
                target = _owner(name, modules) if name.startswith("slim_leakage") else None
                if target and target != module:
                    edges.append(Edge(module, target, f"{rel}:{node.lineno}"))
    return edges


def _is_ancestor(edge: Edge) -> bool:
    return edge.importer.startswith(edge.target + ".")


def _section(title: str) -> list[str]:
    lines = DOCS.read_text().splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    return lines[start + 1 : end]


def _floors() -> dict[str, int]:
    """``{module or package: floor}`` from the docs' table (names relative to slim_leakage)."""
    floors = {}
    for line in _section("Floors"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for name in re.findall(r"`([\w.]+)`", cells[2]):
                full = name if name == "slim_leakage" else f"slim_leakage.{name}"
                assert full not in floors, f"{name} is on two floors in docs/architecture.md"
                floors[full] = int(cells[0])
    assert floors, "docs/architecture.md has no '## Floors' table"
    return floors


def _floor_of(module: str, floors: dict[str, int]) -> int | None:
    if module == "slim_leakage":
        return floors.get(module)
    name = module
    while name != "slim_leakage":  # the longest name in the table wins
        if name in floors:
            return floors[name]
        name = name.rpartition(".")[0]
    return None


def test_every_module_has_a_floor_and_every_named_module_exists():
    modules, floors = _modules(), _floors()
    missing = [m for m in modules if _floor_of(m, floors) is None]
    assert not missing, f"modules with no floor in docs/architecture.md: {missing}"
    stale = [name for name in floors if name not in modules]
    assert not stale, f"docs/architecture.md places modules that do not exist: {stale}"


def test_no_module_imports_a_higher_floor():
    modules, floors = _modules(), _floors()
    upward = [
        f"{edge}: floor {_floor_of(edge.importer, floors)} -> {_floor_of(edge.target, floors)}"
        for edge in _edges(modules)
        if _floor_of(edge.target, floors) > _floor_of(edge.importer, floors)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _loop(graph: dict[str, set[str]]) -> list[str] | None:
    """One loop of ``graph`` as a path that ends where it starts, or ``None``."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_loop():
    edges = _edges(_modules())
    graph: dict[str, set[str]] = defaultdict(set)
    where = {}
    for edge in edges:
        if _is_ancestor(edge):
            # Python initialises a module's packages before the module, whatever it names, so
            # naming one (``from . import JUDGES``, a resource anchor) closes no loop; it still
            # counts for the floors.
            continue
        graph[edge.importer].add(edge.target)
        where.setdefault((edge.importer, edge.target), edge.where)
    loop = _loop(graph)
    assert loop is None, "import loop:\n" + "\n".join(
        f"{a} -> {b} ({where[a, b]})" for a, b in zip(loop, loop[1:])
    )


def test_the_checks_see_lazy_and_function_level_imports():
    edges = {(e.importer, e.target) for e in _edges(_modules())}
    # a registry's "module:attr" string, an import inside a function, a relative import
    assert ("slim_leakage.toy.plugins", "slim_leakage.toy.backbone") in edges
    assert ("slim_leakage.cli.toy_cmd", "slim_leakage.toy.lab.train") in edges
    assert ("slim_leakage.toy.lab.measure", "slim_leakage.methods.deleaker") in edges
    assert _loop({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _loop({"a": {"b"}, "b": set()}) is None


def test_no_file_is_over_600_lines_unless_the_docs_say_why():
    listed = {}
    for line in _section("Files over 600 lines"):
        match = re.match(r"- `([\w/.]+\.py)`[:,]? (.+)", line.strip())
        if match:
            listed[match.group(1)] = match.group(2)
    long_files = {
        str(p.relative_to(ROOT / "src")): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
        if len(p.read_text().splitlines()) > MAX_LINES
    }
    unexplained = {f: n for f, n in long_files.items() if f not in listed}
    assert not unexplained, f"over {MAX_LINES} lines with no reason in the docs: {unexplained}"
    stale = sorted(set(listed) - set(long_files))
    assert not stale, f"docs/architecture.md lists files that are no longer long: {stale}"
