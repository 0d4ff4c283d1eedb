"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (ONNX's training losses), on logical tensors.

Input (N, C, d1, ...) and integer targets (N, d1, ...); a target equal to ``ignore_index`` contributes nothing
and has no weight; ``mean`` divides by the summed weights of the targets that count.
"""

from __future__ import annotations

from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()


def _nll(log_prob: Any, target: Any, weight: Any, reduction: str, ignore_index: int | None) -> Any:
    t = tf.cast(target, tf.int64)
    keep = tf.ones_like(t, tf.bool) if ignore_index is None else tf.not_equal(t, ignore_index)
    safe = tf.where(keep, t, tf.zeros_like(t))
    rank = len(log_prob.shape)
    moved = tf.transpose(log_prob, [0, *range(2, rank), 1])  # classes last
    picked = tf.squeeze(tf.gather(moved, safe[..., None], batch_dims=rank - 1), -1)
    w = tf.gather(weight, safe) if weight is not None else tf.ones_like(picked)
    w = tf.where(keep, w, tf.zeros_like(w))
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return tf.reduce_sum(loss)
    return tf.reduce_sum(loss) / tf.reduce_sum(w)


@converter("NegativeLogLikelihoodLoss", since=12)
def nll_loss(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    reduction, ignore = attr(node, "reduction", "mean"), attr(node, "ignore_index")

    def run(state: RunState, x: Value, target: Value, weight: Value | None = None) -> Value:
        w = weight.logical() if weight is not None else None
        return Value(_nll(x.logical(), target.logical(), w, reduction, ignore))

    return run


@converter("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    reduction, ignore = attr(node, "reduction", "mean"), attr(node, "ignore_index")

    def run(state: RunState, x: Value, target: Value, weight: Value | None = None) -> tuple[Value, Value]:
        log_prob = tf.nn.log_softmax(x.logical(), axis=1)
        w = weight.logical() if weight is not None else None
        return Value(_nll(log_prob, target.logical(), w, reduction, ignore)), Value(log_prob)

    return run
