"""Truncate a graph at a layer's output or at a named tensor."""

from __future__ import annotations

import onnx

from ..errors import NoCutError, UnknownLayerError
from ..graph import Graph, _node_reads
from ..protos import model_shell
from .base import Pass, PassResult, value_info


def layer_outputs(graph: Graph, layer: str) -> list[str]:
    """A layer's outputs: float values produced inside the layer and read outside it (constants ignored).

    Returned in the order they are produced; raises UnknownLayerError for an unknown name.
    """
    outputs = graph.layer_outputs.get(layer)
    if outputs is None:
        raise UnknownLayerError(layer, graph.layer_names)
    return list(outputs)


def layer_output(graph: Graph, layer: str) -> str:
    """The tensor to cut at for ``layer``: its only output, or the last one it produces."""
    outputs = layer_outputs(graph, layer)
    if not outputs:
        raise NoCutError(
            f"Layer {layer!r} produces no float tensor that the rest of the model reads; it cannot be a cut. "
            "Pick another layer from finetuner.tailor.display(model)."
        )
    return outputs[-1]


def extract(graph: Graph, output: str) -> Graph:
    """The subgraph computing ``output`` from the original inputs (inputs are all kept)."""
    if output not in graph.producers and output not in graph.input_names:
        known = [v for n in graph.model.graph.node for v in n.output if v]
        raise UnknownLayerError(output, known, what="tensor")
    needed_values = {output}
    keep_ids: set[int] = set()
    for node in reversed(graph.model.graph.node):
        if any(o in needed_values for o in node.output):
            keep_ids.add(id(node))
            needed_values.update(_node_reads(node))
    model = model_shell(graph.model, skip_graph=("node", "initializer", "value_info", "output"))
    source, g = graph.model.graph, model.graph
    kept_nodes = [n for n in source.node if id(n) in keep_ids]
    g.node.extend(kept_nodes)
    kept_inits = [i for i in source.initializer if i.name in needed_values]
    g.initializer.extend(kept_inits)
    elem = graph.elem_type_of(output) or onnx.TensorProto.FLOAT
    g.output.append(value_info(output, elem, graph.shape_of(output)))
    known_values = needed_values | {output}
    g.value_info.extend(v for v in source.value_info if v.name in known_values)
    init_names = {i.name for i in kept_inits}
    node_names = {n.name for n in kept_nodes}
    return graph.replace(
        model=model,
        layer_map={k: v for k, v in graph.layer_map.items() if k in node_names},
        weights=frozenset(w for w in (graph.weights or ()) if w in init_names),
        frozen=frozenset(w for w in graph.frozen if w in init_names),
    )


class Truncate(Pass):
    """Cut the graph so that its only output is a layer's output (``layer``) or a named tensor (``tensor``)."""

    def __init__(self, layer: str | None = None, tensor: str | None = None) -> None:
        if (layer is None) == (tensor is None):
            raise ValueError("Truncate takes exactly one of layer= or tensor=.")
        self.layer = layer
        self.tensor = tensor

    def call(self, graph: Graph) -> PassResult:
        target = self.tensor if self.tensor is not None else layer_output(graph, self.layer)
        if graph.output_names == [target]:
            return PassResult(graph, False)
        return PassResult(extract(graph, target), True)
