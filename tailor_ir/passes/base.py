"""The pass protocol: each surgery step is a small pure object ``call(graph) -> PassResult``.

Modelled on onnx-ir's passes: a pass never mutates its input Graph; it returns a new one and says whether it
changed anything. ``Sequential`` composes passes.
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
        for p in self.passes:
            result = p.call(graph)
            graph, modified = result.graph, modified or result.modified
        return PassResult(graph, modified)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def unique_name(graph: onnx.GraphProto, base: str) -> str:
    """A value/node name not used anywhere in ``graph``."""
    taken = {v for n in graph.node for v in (*n.input, *n.output, n.name)}
    taken |= {i.name for i in graph.initializer} | {i.name for i in graph.input}
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
