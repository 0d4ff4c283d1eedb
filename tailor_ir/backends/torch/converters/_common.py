"""Helpers shared by the converters."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, onnx_mapping_from_node
from torch import nn

__all__ = ["OnnxMapping", "OperationConverterResult", "const_array", "result", "mapping"]


def const_array(name: str, graph: OnnxGraph) -> np.ndarray | None:
    """The value of an initializer or Constant node output, or None when it is computed at run time."""
    if not name:
        return None
    if name in graph.initializers:
        return graph.initializers[name].to_numpy()
    try:
        node, _ = graph.value_as_node_output(name)
    except KeyError:
        return None
    if node.operation_type == "Constant":
        attrs = node.attributes
        if "value" in attrs:
            return attrs["value"].to_numpy()
        for key in ("value_int", "value_float", "value_ints", "value_floats"):
            if key in attrs:
                return np.asarray(attrs[key])
    return None


def result(module: nn.Module, node: OnnxNode, inputs: tuple[str, ...] | None = None) -> OperationConverterResult:
    """A converter result mapping ``inputs`` (default: all the node's inputs) to the node's outputs."""
    mapping = onnx_mapping_from_node(node) if inputs is None else OnnxMapping(inputs=inputs, outputs=node.output_values)
    return OperationConverterResult(torch_module=module, onnx_mapping=mapping)


def mapping(node: OnnxNode, inputs: tuple[str, ...]) -> OnnxMapping:
    return OnnxMapping(inputs=inputs, outputs=node.output_values)


def attr(node: OnnxNode, name: str, default: Any) -> Any:
    return node.attributes.get(name, default)
