"""A small helper for passes that append nodes to a copy of a graph (opset-aware)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..graph import Graph
from .base import names_in, unique_name, value_info, writable_model


class HeadBuilder:
    """Appends nodes after ``graph``'s single output; ``finish`` returns the new Graph."""

    def __init__(self, graph: Graph, layer: str) -> None:
        if len(graph.output_names) != 1:
            raise ValueError(
                f"the graph has {len(graph.output_names)} outputs {graph.output_names}; truncate it to one first."
            )
        self.source = graph
        self.model = writable_model(graph)
        self.layer = layer
        self.taken = names_in(self.model.graph)  # kept up to date by name()
        self.opset = graph.opset
        self.layer_map = dict(graph.layer_map)
        self.weights = set(graph.weights or ())
        self.current = graph.output_names[0]
        self.elem_type = graph.elem_type_of(self.current) or onnx.TensorProto.FLOAT

    @property
    def g(self) -> onnx.GraphProto:
        return self.model.graph

    def name(self, base: str) -> str:
        """A new name in the graph, reserved for the caller."""
        name = unique_name(self.g, f"{self.layer}.{base}", self.taken)
        self.taken.add(name)
        return name

    def const(self, base: str, array: np.ndarray, weight: bool = False) -> str:
        """Add an initializer; ``weight=True`` makes it a trainable weight of the new head."""
        name = self.name(base)
        self.g.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        if weight:
            self.weights.add(name)
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        node = onnx.helper.make_node(op, inputs, [out], name=self.name(op), **attrs)
        self.g.node.append(node)
        self.layer_map[node.name] = self.layer
        self.current = out
        return out

    def reduce(self, op: str, x: str, axes: list[int], keepdims: int) -> str:
        """ReduceMean/ReduceSum/ReduceL2 with axes as attribute or input, as the opset requires."""
        axes_as_input = self.opset >= 18 or (op == "ReduceSum" and self.opset >= 13)
        if axes_as_input:
            return self.node(op, [x, self.const("axes", np.array(axes, dtype=np.int64))], keepdims=keepdims)
        return self.node(op, [x], axes=axes, keepdims=keepdims)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self.const("axes", np.array(axes, dtype=np.int64))])
        return self.node("Unsqueeze", [x], axes=axes)

    def float_dtype(self) -> np.dtype:
        return onnx.helper.tensor_dtype_to_np_dtype(self.elem_type)

    def finish(self, output_name: str, shape: list[int | str | None] | None) -> Graph:
        if output_name != self.current:
            if self.current == self.source.output_names[0]:  # nothing appended: rename through an Identity
                self.node("Identity", [self.current])
            self.g.node[-1].output[0] = output_name
            self.current = output_name
        del self.g.output[:]
        self.g.output.append(value_info(self.current, self.elem_type, shape))
        return self.source.replace(model=self.model, layer_map=self.layer_map, weights=frozenset(self.weights))
