"""No import circles inside the Labeler's and the Tuner's packages, counting imports inside functions too (a lazy
import that closes a circle still ties two modules into one); type-checking-only imports do not count."""

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
        tree = ast.parse(path.read_text())
        type_only = {  # imports under `if TYPE_CHECKING:` are annotations, not a runtime tie
            id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {(node.module, alias.name) for alias in node.names}
            elif isinstance(node, ast.Import):
                targets |= {(alias.name, None) for alias in node.names}
        graph[module] = targets
    modules = set(graph)

    def resolve(source: str, module: str, name: str | None) -> str | None:
        """``from pkg import sub`` ties to ``pkg.sub``; a module's own parent packages are always imported first."""
        target = f"{module}.{name}" if name and f"{module}.{name}" in modules else module
        if target == source or target not in modules or source.startswith(target + "."):
            return None
        return target

    return {m: {t for pair in pairs if (t := resolve(m, *pair))} for m, pairs in graph.items()}


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


def test_the_training_loop_and_its_callbacks_import_no_circle():
    """The loop knows the callback protocol; callbacks know the loop only through the tuner it hands them."""
    graph = import_graph("finetuner.tuner")
    assert "finetuner.tuner.base" in graph and "finetuner.tuner.callbacks.evaluation" in graph
    assert cycles(graph) == []
