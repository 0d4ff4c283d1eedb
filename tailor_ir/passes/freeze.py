"""Freeze marks: which weights stay fixed during training."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UnknownLayerError
from ..graph import Graph
from .base import Pass, PassResult
from .head import HEAD


def layer_weights(graph: Graph, layer: str) -> set[str]:
    """The weight initializers read by the nodes of ``layer`` (and of its sublayers)."""
    weights = graph.weights or frozenset()
    return {name for node in graph.nodes_of_layer(layer) for name in node.input if name in weights}


class Freeze(Pass):
    """Mark weights frozen: ``True`` = every weight outside the embedding head; a list = those layers' weights."""

    def __init__(self, layers: bool | Sequence[str] = True) -> None:
        if isinstance(layers, str):
            layers = [layers]
        self.layers = layers

    def call(self, graph: Graph) -> PassResult:
        if self.layers is False or self.layers is None:
            return PassResult(graph, False)
        weights = graph.weights or frozenset()
        if self.layers is True:
            head = layer_weights(graph, HEAD)
            frozen = set(weights) - head
        else:
            frozen = set()
            known = set(graph.layer_names)
            for layer in self.layers:
                if layer not in known:
                    raise UnknownLayerError(layer, graph.layer_names)
                frozen |= layer_weights(graph, layer)
        frozen |= graph.frozen
        if frozen == set(graph.frozen):
            return PassResult(graph, False)
        return PassResult(graph.replace(frozen=frozenset(frozen)), True)
