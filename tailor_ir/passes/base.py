"""The pass protocol: each surgery step is a small pure object ``call(graph) -> PassResult``.

Modelled on onnx-ir's passes: a pass never mutates its input Graph; it returns a new one and says whether it
changed anything. A pass that changes the model builds it from :func:`writable_model` (or makes a new one); it
never returns another Graph's model. ``Sequential`` composes passes without copying the model between them:
the model one of its passes made is marked ``scratch``, and the next pass edits it in place (a BERT-base graph
would otherwise be copied, weights and all, once per pass).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import onnx

from ..graph import Graph


@dataclasses.dataclass(frozen=True)
class PassResult:
    graph: Graph
    modified: bool


class Pass:
    """One graph transformation. Subclasses implement ``call``."""

    def call(self, graph: Graph) -> PassResult:
        raise NotImplementedError

    def __call__(self, graph: Graph) -> PassResult:
        return self.call(graph)


class Sequential(Pass):
    """Run passes one after another; modified if any of them modified the graph."""

    def __init__(self, *passes: Pass) -> None:
        self.passes = [p for p in passes if p is not None]

    def call(self, graph: Graph) -> PassResult:
        modified = False
        source = graph.model
        for p in self.passes:
            result = p.call(graph)
            graph, modified = result.graph, modified or result.modified
            if graph.model is not source and not graph.scratch:  # made by this run: later passes may edit it
                graph = graph.replace(scratch=True)
        return PassResult(graph.replace(scratch=False) if graph.scratch else graph, modified)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def writable_model(graph: Graph) -> onnx.ModelProto:
    """The model a pass may change: ``graph``'s own if it is a pipeline's scratch copy, else a copy of it."""
    return graph.model if graph.scratch else copy_model(graph.model)


def names_in(graph: onnx.GraphProto) -> set[str]:
    """Every value, node, initializer and input name used in ``graph``."""
    taken = {v for n in graph.node for v in (*n.input, *n.output, n.name)}
    return taken | {i.name for i in graph.initializer} | {i.name for i in graph.input}


def unique_name(graph: onnx.GraphProto, base: str, taken: set[str] | None = None) -> str:
    """A value/node name not used anywhere in ``graph`` (``taken``: its :func:`names_in`, when already known)."""
    taken = names_in(graph) if taken is None else taken
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename the value ``old`` to ``new`` everywhere in ``graph`` (node inputs/outputs, value_info, outputs)."""
    for node in graph.node:
        node.input[:] = [new if v == old else v for v in node.input]
        node.output[:] = [new if v == old else v for v in node.output]
    for info in (*graph.value_info, *graph.output):
        if info.name == old:
            info.name = new


def value_info(name: str, elem_type: int, shape: Iterable[int | str | None] | None) -> onnx.ValueInfoProto:
    dims = None if shape is None else [d if d is not None else "?" for d in shape]
    return onnx.helper.make_tensor_value_info(name, elem_type, dims)
