"""Normalisation: BatchNormalization (real running statistics), LayerNormalization, LpNormalization."""

from __future__ import annotations

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
    """ONNX LayerNormalization over the axes from ``axis`` on; scale and bias arrive as inputs."""

    def __init__(self, axis: int, eps: float) -> None:
        super().__init__()
        self.axis, self.eps = axis, eps

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return F.layer_norm(x, x.shape[self.axis :], weight, bias, self.eps)


@converter("LayerNormalization", since=17)
def convert_layer_norm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    if len([o for o in node.output_values if o]) > 1:
        raise NotImplementedError("LayerNormalization with mean/inv_std_dev outputs is not implemented")
    return result(LayerNorm(int(attr(node, "axis", -1)), float(attr(node, "epsilon", 1e-5))), node)


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


