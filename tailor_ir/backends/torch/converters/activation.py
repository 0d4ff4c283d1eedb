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


class Softmax(nn.Module):
    """ONNX Softmax (13+) along ``axis``; float16 / bfloat16 step by step in that dtype, as the reference rounds.

    ONNX defines Softmax by its function body (ReduceMax, Sub, Exp, ReduceSum, Div in the input's type) and the
    reference runs it in numpy: each step is rounded to the type, and a bfloat16 sum adds the terms one by one
    along the axis, rounding each partial sum (numpy reduces ml_dtypes' bfloat16 element by element). torch's
    fused softmax rounds once, 1-2 bfloat16 steps away from that; the sum below follows the reference's order.
    """

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in (torch.float16, torch.bfloat16):
            return torch.softmax(x, self.axis)
        e = torch.exp(x - torch.amax(x, dim=self.axis, keepdim=True))
        if x.dtype == torch.float16:
            return e / e.sum(dim=self.axis, keepdim=True)
        terms = e.unbind(self.axis)
        total = terms[0]
        for term in terms[1:]:  # bfloat16 + bfloat16 rounds each partial sum, as the reference does
            total = total + term
        return e / total.unsqueeze(self.axis)


@converter("Softmax", since=13)
def convert_softmax(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Softmax(int(attr(node, "axis", -1))), node)
