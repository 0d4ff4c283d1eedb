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


def _stash(t: Any, stash_type: int) -> Any:
    """The tensor in the statistics' type (``stash_type``: 1 float32, 11 float64)."""
    return tf.cast(t, tf.float64 if stash_type == onnx.TensorProto.DOUBLE else tf.float32)


@converter("LayerNormalization", since=17)
def layer_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """Statistics in ``stash_type`` (float32 by default) over the axes from ``axis``; the optional Mean and
    InvStdDev outputs keep those axes with size 1."""
    axis, eps = attr(node, "axis", -1), attr(node, "epsilon", 1e-5)
    stash_type = attr(node, "stash_type", 1)

    def run(state: RunState, x: Value, scale: Value, bias: Value | None = None) -> tuple[Value, ...]:
        t = x.logical()
        axes = list(range(axis % x.rank, x.rank))
        s = _stash(t, stash_type)
        mean, var = tf.nn.moments(s, axes=axes, keepdims=True)
        inv = tf.math.rsqrt(var + eps)
        out = tf.cast((s - mean) * inv, t.dtype) * scale.logical()
        y = out + bias.logical() if bias is not None else out
        return Value(y), Value(mean), Value(inv)

    return run


@converter("RMSNormalization", since=23)
def rms_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis, eps = attr(node, "axis", -1), attr(node, "epsilon", 1e-5)
    stash_type = attr(node, "stash_type", 1)

    def run(state: RunState, x: Value, scale: Value) -> Value:
        t = x.logical()
        s = _stash(t, stash_type)
        axes = list(range(axis % x.rank, x.rank))
        inv = tf.math.rsqrt(tf.reduce_mean(tf.square(s), axis=axes, keepdims=True) + eps)
        return Value(tf.cast(s * inv, t.dtype) * scale.logical())

    return run


@converter("GroupNormalization", since=18)
def group_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """(N, C, ...) in ``num_groups`` groups of channels; scale and bias per channel (opset 21) or per group
    (opset 18)."""
    groups, eps = attr(node, "num_groups"), attr(node, "epsilon", 1e-5)
    stash_type = attr(node, "stash_type", 1)
    per_group = ctx.opset < 21

    def run(state: RunState, x: Value, scale: Value, bias: Value) -> Value:
        t = x.logical()
        shape = tf.shape(t)
        s = _stash(t, stash_type)
        grouped = tf.reshape(s, tf.stack([shape[0], groups, -1]))
        mean, var = tf.nn.moments(grouped, axes=[2], keepdims=True)
        y = tf.cast(tf.reshape((grouped - mean) * tf.math.rsqrt(var + eps), shape), t.dtype)
        sc, bi = scale.logical(), bias.logical()
        if per_group:
            channels = t.shape[1] // groups
            sc, bi = tf.repeat(sc, channels), tf.repeat(bi, channels)
        bshape = [1, -1] + [1] * (x.rank - 2)
        return Value(y * tf.reshape(sc, bshape) + tf.reshape(bi, bshape))

    return run


@converter("InstanceNormalization", since=1)
def instance_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    eps = attr(node, "epsilon", 1e-5)

    def run(state: RunState, x: Value, scale: Value, bias: Value) -> Value:
        axes = [x.physical_axis(a) for a in range(2, x.rank)]
        mean, var = tf.nn.moments(x.t, axes=axes, keepdims=True)
        shape = _channel_shape(x)
        y = (x.t - mean) * tf.math.rsqrt(var + eps)
        return Value(y * tf.reshape(scale.logical(), shape) + tf.reshape(bias.logical(), shape), x.perm)

    return run


@converter("MeanVarianceNormalization", since=9)
def mean_variance_norm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axes = attr(node, "axes", [0, 2, 3])

    def run(state: RunState, x: Value) -> Value:
        physical = [x.physical_axis(a) for a in axes]
        mean = tf.reduce_mean(x.t, axis=physical, keepdims=True)
        var = tf.reduce_mean(tf.square(x.t), axis=physical, keepdims=True) - tf.square(mean)
        return Value((x.t - mean) / (tf.sqrt(var) + 1e-9), x.perm)

    return run


@converter("LRN", since=1)
def lrn(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    size = attr(node, "size")
    alpha, beta, bias = attr(node, "alpha", 1e-4), attr(node, "beta", 0.75), attr(node, "bias", 1.0)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2

    def run(state: RunState, x: Value) -> Value:
        c = x.physical_axis(1)
        square = tf.square(x.t)
        pads = [[0, 0]] * x.rank
        pads[c] = [before, after]
        padded = tf.pad(square, pads)
        n = tf.shape(x.t)[c]
        total = tf.add_n([tf.gather(padded, tf.range(i, i + n), axis=c) for i in range(size)])
        return Value(x.t / tf.pow(bias + alpha / size * total, beta), x.perm)

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
        rate: Any = float(ratio) if ratio is not None else (None if ratio_name else 0.5)
    else:
        rate = attr(node, "ratio", 0.5)
    with_mask = len(node.output) > 1 and bool(node.output[1])

    def run(state: RunState, x: Value, ratio_in: Value | None = None, mode: Value | None = None) -> Any:
        p = tf.reshape(ratio_in.logical(), []) if rate is None and ratio_in is not None else rate
        if mode is not None:  # the graph itself asks for training-mode dropout
            on = tf.get_static_value(mode.logical())
            p_known = tf.get_static_value(p) if rate is None else p
            if on is None or (bool(on) and (p_known is None or float(p_known) > 0)):
                raise NotImplementedError("Dropout with training_mode set in the graph (random output)")
        out = tf.nn.dropout(x.t, rate=p) if state.training and (rate is None or rate > 0) else x.t
        if with_mask:
            return Value(out, x.perm), Value(tf.not_equal(out, 0) | tf.equal(x.t, 0), x.perm)
        return Value(out, x.perm)

    return run
