"""BatchNormalization (moving statistics updated in training), LayerNormalization, LpNormalization, Dropout."""

from __future__ import annotations

from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()


def _channel_shape(x: Value) -> list[int]:
    """Broadcast shape of a per-channel vector (logical axis 1) in ``x``'s physical layout."""
    shape = [1] * x.rank
    shape[x.physical_axis(1)] = -1
    return shape


@converter("BatchNormalization", since=1)
def batch_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """Inference: moving statistics. Training: batch statistics (biased variance, as Keras), and the moving
    statistics (when they are variables) become ``m * momentum + batch * (1 - momentum)``."""
    eps = attr(node, "epsilon", 1e-5)
    momentum = attr(node, "momentum", 0.9)
    mean_var, var_var = ctx.variable(node.input[3]), ctx.variable(node.input[4])
    if len([o for o in node.output if o]) > 1:
        raise NotImplementedError("BatchNormalization with training-mode outputs")

    def run(state: RunState, x: Value, scale: Value, bias: Value, mean: Value, var: Value) -> Value:
        shape = _channel_shape(x)
        axes = [j for j in range(x.rank) if j != x.physical_axis(1)]
        if state.training:
            batch_mean, batch_var = tf.nn.moments(x.t, axes=axes)
            if mean_var is not None and var_var is not None:
                mean_var.assign(mean_var.value * momentum + tf.cast(batch_mean, mean_var.dtype) * (1 - momentum))
                var_var.assign(var_var.value * momentum + tf.cast(batch_var, var_var.dtype) * (1 - momentum))
            m, v = batch_mean, batch_var
        else:
            m, v = mean.logical(), var.logical()
        inv = tf.math.rsqrt(tf.reshape(v, shape) + eps) * tf.reshape(scale.logical(), shape)
        return Value((x.t - tf.reshape(m, shape)) * inv + tf.reshape(bias.logical(), shape), x.perm)

    return run


@converter("LayerNormalization", since=17)
def layer_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis, eps = attr(node, "axis", -1), attr(node, "epsilon", 1e-5)
    if len([o for o in node.output if o]) > 1:
        raise NotImplementedError("LayerNormalization mean/inv_std_dev outputs")

    def run(state: RunState, x: Value, scale: Value, bias: Value | None = None) -> Value:
        t = x.logical()
        axes = list(range(axis % x.rank, x.rank))
        mean, var = tf.nn.moments(t, axes=axes, keepdims=True)
        out = (t - mean) * tf.math.rsqrt(var + eps) * scale.logical()
        return Value(out + bias.logical() if bias is not None else out)

    return run


@converter("LpNormalization", since=1)
def lp_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis, p = attr(node, "axis", -1), attr(node, "p", 2)

    def run(state: RunState, x: Value) -> Value:
        a = x.physical_axis(axis)
        if p == 1:
            norm = tf.reduce_sum(tf.abs(x.t), axis=a, keepdims=True)
        else:
            norm = tf.sqrt(tf.reduce_sum(tf.square(x.t), axis=a, keepdims=True))
        return Value(tf.math.divide_no_nan(x.t, norm), x.perm)  # ONNX: a zero norm gives 0

    return run


@converter("Dropout", since=1)
def dropout(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """Identity in inference; random (inverted dropout) whenever Keras calls the model with training=True."""
    if ctx.opset >= 12:
        ratio_name = node.input[1] if len(node.input) > 1 else ""
        ratio = ctx.const(ratio_name)
        if ratio_name and ratio is None:
            raise NotImplementedError("Dropout with a run-time ratio")
        rate = float(ratio) if ratio is not None else 0.5
    else:
        rate = attr(node, "ratio", 0.5)
    with_mask = len(node.output) > 1 and bool(node.output[1])

    def run(state: RunState, x: Value, *_: Value | None) -> Value | tuple[Value, Value]:
        out = tf.nn.dropout(x.t, rate=rate) if state.training and rate > 0 else x.t
        if with_mask:
            return Value(out, x.perm), Value(tf.not_equal(out, 0) | tf.equal(x.t, 0), x.perm)
        return Value(out, x.perm)

    return run
