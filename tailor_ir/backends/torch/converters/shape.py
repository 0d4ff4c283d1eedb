"""Shape ops: Reshape (static shapes folded at build time, allowzero), Identity, and later-opset aliases."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import alias, converter
from ._common import OperationConverterResult, attr, const_array, result


class StaticReshape(nn.Module):
    """Reshape to a shape known at build time; ``copy`` lists axes whose size comes from the input (ONNX 0)."""

    def __init__(self, shape: tuple[int, ...], copy: tuple[int, ...]) -> None:
        super().__init__()
        self.shape, self.copy = shape, copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.copy:
            return x.reshape(self.shape)
        shape = list(self.shape)
        for axis in self.copy:
            shape[axis] = x.shape[axis]
        return x.reshape(shape)


class DynamicReshape(nn.Module):
    """Reshape to a shape computed at run time."""

    def __init__(self, allowzero: bool) -> None:
        super().__init__()
        self.allowzero = allowzero

    def forward(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        dims = [int(d) for d in shape.tolist()]
        if not self.allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return x.reshape(dims)


@converter("Reshape", since=5)
def convert_reshape(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    allowzero = bool(attr(node, "allowzero", 0))
    shape = const_array(node.input_values[1], graph)
    if shape is None:
        return result(DynamicReshape(allowzero), node)
    dims = tuple(int(d) for d in shape.reshape(-1))
    copy = () if allowzero else tuple(i for i, d in enumerate(dims) if d == 0)
    return result(StaticReshape(dims, copy), node, inputs=(node.input_values[0],))


class Identity(nn.Module):
    """ONNX Identity (no copy: nothing downstream mutates tensors in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@converter("Identity", since=1)
def convert_identity(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(Identity(), node)


alias("Shape", existing=15, since=19)
alias("Constant", existing=13, since=19)
alias("ConstantOfShape", existing=9, since=20)
alias("Unsqueeze", existing=13, since=21)
alias("Transpose", existing=13, since=21)
alias("Flatten", existing=13, since=21)
