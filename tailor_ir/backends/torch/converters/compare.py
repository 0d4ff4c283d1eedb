"""Comparisons and casts missing at recent opsets: GreaterOrEqual-16, LessOrEqual-16, CastLike, Cast-19+."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from onnx2torch.utils.dtype import onnx_dtype_to_torch_dtype
from torch import nn

from ..registry import alias, converter
from ._common import OperationConverterResult, result


class Compare(nn.Module):
    """An elementwise comparison (torch.ge / torch.le ...)."""

    def __init__(self, fn: str) -> None:
        super().__init__()
        self.fn = getattr(torch, fn)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fn(a, b)


@converter("GreaterOrEqual", since=12)
def convert_ge(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Compare("ge"), node)


@converter("LessOrEqual", since=12)
def convert_le(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Compare("le"), node)


class CastLike(nn.Module):
    """Cast the first input to the dtype of the second."""

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.to(like.dtype)


@converter("CastLike", since=15)
def convert_cast_like(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(CastLike(), node)


class Cast(nn.Module):
    """Cast to a fixed dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


@converter("Cast", since=6)
def convert_cast(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Cast(onnx_dtype_to_torch_dtype(node.attributes["to"])), node)


alias("Equal", existing=13, since=19)
alias("IsNaN", existing=13, since=20)
