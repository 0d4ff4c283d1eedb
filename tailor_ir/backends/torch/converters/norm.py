"""Normalisation: BatchNormalization (real running statistics), LayerNormalization, LpNormalization."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, const_array, result


class BatchNorm(nn.Module):
    """Batch normalisation whose running statistics are this module's buffers and update in train mode.

    Scale and bias arrive as inputs (trainable parameters owned by the rehydrated model).
    """

    def __init__(self, running_mean: torch.Tensor, running_var: torch.Tensor, momentum: float, eps: float) -> None:
        super().__init__()
        self.register_buffer("running_mean", running_mean)
        self.register_buffer("running_var", running_var)
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.momentum, self.eps = momentum, eps
        self.statistic_names: tuple[str, str] | None = None  # the graph's mean / variance initializers

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, weight, bias, self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.running_mean.shape[0]}, eps={self.eps}, momentum={self.momentum}"


@converter("BatchNormalization", since=1)
def convert_batch_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if len([o for o in node.output_values if o]) > 1:
        raise NotImplementedError("BatchNormalization with running mean/var outputs (training mode) is not implemented")
    mean = const_array(node.input_values[3], graph)
    var = const_array(node.input_values[4], graph)
    if mean is None or var is None:
        raise NotImplementedError("BatchNormalization whose running statistics are computed is not implemented")
    module = BatchNorm(
        torch.from_numpy(mean.copy()), torch.from_numpy(var.copy()),
        momentum=1.0 - float(attr(node, "momentum", 0.9)), eps=float(attr(node, "epsilon", 1e-5)),
    )
    module.statistic_names = (node.input_values[3], node.input_values[4])  # for current_initializers()
    return result(module, node, inputs=tuple(node.input_values[:3]))


class LayerNorm(nn.Module):
    """ONNX LayerNormalization over the axes from ``axis`` on; scale and bias arrive as inputs.

    With ``stats`` it also returns the mean and 1/std (reduced axes kept as 1), computed in float32 like the
    reference (``stash_type=1``).
    """

    def __init__(self, axis: int, eps: float, stats: bool = False) -> None:
        super().__init__()
        self.axis, self.eps, self.stats = axis, eps, stats

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Any:
        axis = self.axis % x.dim()
        if not self.stats:
            return F.layer_norm(x, x.shape[axis:], weight, bias, self.eps)
        dims = tuple(range(axis, x.dim()))
        xf = x.float()
        mean = xf.mean(dim=dims, keepdim=True)
        inv_std = torch.rsqrt((xf - mean).square().mean(dim=dims, keepdim=True) + self.eps)
        y = (xf - mean) * inv_std * weight.float()
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype), mean, inv_std


@converter("LayerNormalization", since=17)
def convert_layer_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    stats = len([o for o in node.output_values if o]) > 1
    if stats and int(attr(node, "stash_type", 1)) != 1:
        raise NotImplementedError("LayerNormalization statistics with stash_type != 1")
    return result(LayerNorm(int(attr(node, "axis", -1)), float(attr(node, "epsilon", 1e-5)), stats), node)


class RMSNorm(nn.Module):
    """ONNX RMSNormalization: x / sqrt(mean(x^2 over axes from ``axis``) + eps) * scale, in float32 then cast."""

    def __init__(self, axis: int, eps: float) -> None:
        super().__init__()
        self.axis, self.eps = axis, eps

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(self.axis % x.dim(), x.dim()))
        xf = x.float()
        y = xf * torch.rsqrt(xf.square().mean(dim=dims, keepdim=True) + self.eps)
        return (y * scale.float()).to(x.dtype)


@converter("RMSNormalization", since=23)
def convert_rms_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(attr(node, "stash_type", 1)) != 1:
        raise NotImplementedError("RMSNormalization with stash_type != 1")
    return result(RMSNorm(int(attr(node, "axis", -1)), float(attr(node, "epsilon", 1e-5))), node)


class GroupNorm(nn.Module):
    """ONNX GroupNormalization-21: per-channel scale and bias."""

    def __init__(self, groups: int, eps: float) -> None:
        super().__init__()
        self.groups, self.eps = groups, eps

    def forward(self, x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        y = F.group_norm(x.float(), self.groups, None, None, self.eps)
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (y * scale.float().reshape(shape) + bias.float().reshape(shape)).to(x.dtype)


@converter("GroupNormalization", since=21)
def convert_group_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if int(attr(node, "stash_type", 1)) != 1:
        raise NotImplementedError("GroupNormalization with stash_type != 1")
    return result(GroupNorm(int(node.attributes["num_groups"]), float(attr(node, "epsilon", 1e-5))), node)


class MeanVarianceNorm(nn.Module):
    """ONNX MeanVarianceNormalization: (x - mean) / sqrt(var) over ``axes`` (population variance)."""

    def __init__(self, axes: tuple[int, ...]) -> None:
        super().__init__()
        self.axes = axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=self.axes, keepdim=True)
        var = (x * x).mean(dim=self.axes, keepdim=True) - mean * mean
        return (x - mean) / (torch.sqrt(var) + 1e-9)


@converter("MeanVarianceNormalization", since=13)
def convert_mvn(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(MeanVarianceNorm(tuple(attr(node, "axes", [0, 2, 3]))), node)


class LpNorm(nn.Module):
    """ONNX LpNormalization: x / ||x||_p along ``axis`` (0/0 -> 0 like onnxruntime)."""

    def __init__(self, axis: int, p: int) -> None:
        super().__init__()
        self.axis, self.p = axis, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, ord=self.p, dim=self.axis, keepdim=True)
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)


@converter("LpNormalization", since=1)
def convert_lp_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(LpNorm(int(attr(node, "axis", -1)), int(attr(node, "p", 2))), node)


