"""Dropout: random in train mode, identity in eval mode (the ONNX training_mode input is ignored)."""

from __future__ import annotations

from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, const_array, result


@converter("Dropout", since=7)
def convert_dropout(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if len(node.output_values) > 1 and node.output_values[1]:
        raise NotImplementedError("Dropout with a mask output is not implemented")
    ratio = attr(node, "ratio", 0.5)
    if len(node.input_values) > 1 and node.input_values[1]:
        value = const_array(node.input_values[1], graph)
        if value is None:
            raise NotImplementedError("Dropout with a computed ratio is not implemented")
        ratio = float(value)
    return result(nn.Dropout(p=float(ratio)), node, inputs=(node.input_values[0],))
