"""Conv and ConvTranspose taking the weight as an input, so it can be a shared trainable parameter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _padding(node: OnnxNode, dims: int) -> tuple[tuple[int, ...] | str, tuple[int, ...] | None]:
    """(padding for torch, explicit F.pad list for asymmetric pads or None)."""
    auto_pad = attr(node, "auto_pad", "NOTSET")
    strides = list(attr(node, "strides", [1] * dims))
    if auto_pad == "VALID":
        return (0,) * dims, None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(s != 1 for s in strides) or auto_pad == "SAME_LOWER":
            raise NotImplementedError(f"Conv auto_pad={auto_pad} with strides {strides} is not implemented")
        return "same", None
    pads = list(attr(node, "pads", [0] * (2 * dims)))
    begin, end = pads[:dims], pads[dims:]
    if begin == end:
        return tuple(begin), None
    torch_pad: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        torch_pad += [b, e]
    return (0,) * dims, tuple(torch_pad)


class Conv(nn.Module):
    """Functional N-d convolution; weight and bias arrive as inputs."""

    def __init__(self, dims: int, stride: tuple[int, ...], padding: tuple[int, ...] | str,
                 dilation: tuple[int, ...], groups: int, pre_pad: tuple[int, ...] | None) -> None:
        super().__init__()
        self.fn = _CONV[dims]
        self.stride, self.padding, self.dilation, self.groups, self.pre_pad = stride, padding, dilation, groups, pre_pad

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return self.fn(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def _dims(node: OnnxNode, graph: OnnxGraph) -> int:
    kernel = attr(node, "kernel_shape", None)
    if kernel is not None:
        return len(kernel)
    weight = node.input_values[1]
    if weight in graph.initializers:
        return len(graph.initializers[weight].proto.dims) - 2
    info = graph.value_info.get(weight)
    if info is not None:
        return len(info.type.tensor_type.shape.dim) - 2
    raise NotImplementedError("Conv without kernel_shape and unknown weight rank")


@converter("Conv", since=1)
def convert_conv(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    dims = _dims(node, graph)
    padding, pre_pad = _padding(node, dims)
    module = Conv(
        dims, tuple(attr(node, "strides", [1] * dims)), padding, tuple(attr(node, "dilations", [1] * dims)),
        int(attr(node, "group", 1)), pre_pad,
    )
    return result(module, node)


class ConvTranspose(nn.Module):
    """Functional N-d transposed convolution; weight and bias arrive as inputs."""

    def __init__(self, dims: int, stride: tuple[int, ...], padding: tuple[int, ...], output_padding: tuple[int, ...],
                 dilation: tuple[int, ...], groups: int) -> None:
        super().__init__()
        self.fn = _CONV_T[dims]
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.dilation, self.groups = dilation, groups

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation)


@converter("ConvTranspose", since=1)
def convert_conv_transpose(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    dims = _dims(node, graph)
    padding, pre_pad = _padding(node, dims)
    if pre_pad is not None or isinstance(padding, str) or "output_shape" in node.attributes:
        raise NotImplementedError("ConvTranspose with asymmetric/auto padding or output_shape is not implemented")
    module = ConvTranspose(
        dims, tuple(attr(node, "strides", [1] * dims)), padding, tuple(attr(node, "output_padding", [0] * dims)),
        tuple(attr(node, "dilations", [1] * dims)), int(attr(node, "group", 1)),
    )
    return result(module, node)
