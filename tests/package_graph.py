"""The import graph of `pinsage`, drawn from its code.

``python -m tests.package_graph`` prints the package graph as a Mermaid block;
docs/architecture.md holds its output
and `tests/test_package_graph.py` checks that it is current and acyclic. Imports
under ``if TYPE_CHECKING:`` are left out: they name types, they run nothing.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "pinsage"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """The pinsage modules a module imports at run time (any depth, not typing)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "pinsage"
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pinsage")}
        stack.extend(ast.iter_child_nodes(node))
    return found


def module_graph() -> dict[str, set[str]]:
    """Module -> the pinsage modules it imports."""
    return {
        _module_name(path): _imports(ast.parse(path.read_text()))
        for path in sorted(ROOT.rglob("*.py"))
    }


def package_of(module: str) -> str:
    """``pinsage.train.loop`` -> ``train``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pinsage"


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages its modules import (``pinsage`` left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in module_graph().items():
        source = package_of(module)
        graph[source]
        for target in map(package_of, imported):
            if target not in (source, "pinsage"):
                graph[source].add(target)
    graph.pop("pinsage", None)
    return dict(graph)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# Imported from nearly everywhere and importing (almost) nothing: drawn as a note, not
# as arrows, so that the picture shows how the stages depend on one another.
UTILITIES = (
    "atomic",
    "config",
    "errors",
    "manifests",
    "progress",
    "seeding",
    "threads",
)


def mermaid() -> str:
    """The package graph without `UTILITIES`, as a Mermaid flowchart (sorted edges)."""
    graph = package_graph()
    lines = ["```mermaid", "flowchart TD"]
    for source in sorted(set(graph) - set(UTILITIES)):
        targets = sorted(graph[source] - set(UTILITIES))
        lines += [f"  {source} --> {target}" for target in targets]
    return "\n".join([*lines, "```"])


if __name__ == "__main__":
    print(mermaid())
