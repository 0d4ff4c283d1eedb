"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (class weights, ignore_index, every reduction,
any number of extra dimensions), as ONNX defines them."""

from __future__ import annotations

from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import F, paddle


def _nll(log_prob: Any, target: Any, weight: Any, reduction: str, ignore_index: int | None) -> Any:
    target = target.astype("int64")
    ignored = target == ignore_index if ignore_index is not None else paddle.zeros(target.shape, "bool")
    safe = paddle.where(ignored, paddle.zeros_like(target), target)
    picked = paddle.take_along_axis(log_prob, safe.unsqueeze(1), 1, broadcast=False).squeeze(1)
    w = paddle.gather(weight, safe.reshape([-1])).reshape(safe.shape) if weight is not None else paddle.ones_like(picked)
    w = paddle.where(ignored, paddle.zeros_like(w), w)
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w.sum()


@converter("NegativeLogLikelihoodLoss", since=12)
def convert_nll(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    reduction, ignore_index = attr(node, "reduction", "mean"), attr(node, "ignore_index")

    def nll(x: Any, target: Any, weight: Any = None) -> Any:
        return _nll(x, target, weight, reduction, ignore_index)

    return fn_of(nll, list(node.input[:3]))


@converter("SoftmaxCrossEntropyLoss", since=12)
def convert_softmax_cross_entropy(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    reduction, ignore_index = attr(node, "reduction", "mean"), attr(node, "ignore_index")
    outputs = len(node.output)

    def softmax_cross_entropy(scores: Any, labels: Any, weight: Any = None) -> Any:
        log_prob = F.log_softmax(scores, axis=1)
        loss = _nll(log_prob, labels, weight, reduction, ignore_index)
        return (loss, log_prob) if outputs > 1 else loss

    return fn_of(softmax_cross_entropy, list(node.input[:3]))
