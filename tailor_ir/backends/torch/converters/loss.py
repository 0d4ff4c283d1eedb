"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (weights, ignore_index, every reduction)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result


def _nll(log_prob: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, reduction: str,
         ignore_index: int | None) -> torch.Tensor:
    """ONNX NLL: -w[t] * x[n, t, ...]; 'mean' divides by the summed weights of the counted targets."""
    target = target.long()
    if ignore_index is None:
        return F.nll_loss(log_prob, target, weight, reduction=reduction)
    return F.nll_loss(log_prob, target, weight, reduction=reduction, ignore_index=ignore_index)


class NLLLoss(nn.Module):
    """ONNX NegativeLogLikelihoodLoss."""

    def __init__(self, reduction: str, ignore_index: int | None) -> None:
        super().__init__()
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return _nll(x, target, weight, self.reduction, self.ignore_index).to(x.dtype)


class SoftmaxCrossEntropy(nn.Module):
    """ONNX SoftmaxCrossEntropyLoss: the loss and, optionally, the log-probabilities."""

    def __init__(self, reduction: str, ignore_index: int | None, with_log_prob: bool) -> None:
        super().__init__()
        self.reduction, self.ignore_index, self.with_log_prob = reduction, ignore_index, with_log_prob

    def forward(self, scores: torch.Tensor, labels: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        log_prob = F.log_softmax(scores, dim=1)
        loss = _nll(log_prob, labels, weight, self.reduction, self.ignore_index).to(scores.dtype)
        return (loss, log_prob) if self.with_log_prob else loss


def _ignore(node: OnnxNode) -> int | None:
    value = node.attributes.get("ignore_index")
    return None if value is None else int(value)


@converter("NegativeLogLikelihoodLoss", since=12)
def convert_nll(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(NLLLoss(attr(node, "reduction", "mean"), _ignore(node)), node)


@converter("SoftmaxCrossEntropyLoss", since=12)
def convert_sce(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    with_log_prob = len(node.output_values) > 1 and bool(node.output_values[1])
    return result(SoftmaxCrossEntropy(attr(node, "reduction", "mean"), _ignore(node), with_log_prob), node)
