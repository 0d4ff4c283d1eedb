"""No import circles inside the Labeler's package, counting imports inside functions too (a lazy import that
closes a circle still ties two modules into one)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_graph(package: str) -> dict[str, set[str]]:
    """module -> modules of ``package`` it imports anywhere in its source."""
    folder = ROOT.joinpath(*package.split("."))
    graph: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[module] = {t for t in targets if t.startswith(package + ".") and t != module}
    return {m: {t for t in targets if t in graph} for m, targets in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_the_labeler_modules_import_no_circle():
    graph = import_graph("finetuner.labeler")
    assert "finetuner.labeler.host" in graph and "finetuner.labeler.training" in graph
    assert cycles(graph) == []
