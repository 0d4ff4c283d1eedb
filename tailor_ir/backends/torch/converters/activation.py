"""Activations missing from onnx2torch at recent opsets: Gelu-20."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result


class Gelu(nn.Module):
    """ONNX Gelu: exact (erf) or tanh approximation."""

    def __init__(self, approximate: str) -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x, approximate=self.approximate)


@converter("Gelu", since=20)
def convert_gelu(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Gelu(attr(node, "approximate", "none")), node)
