"""Convolutions and pools, run channels-last (NWC/NHWC/NDHWC) so they train on CPU.

Padding is ``SAME`` where the ONNX pads equal TensorFlow's SAME padding, else ``tf.pad`` + ``VALID``: explicit
padding lists in TF convolutions made a resnet18 training step 4.8x slower (ENVIRONMENT.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value, channels_last

tf = import_tensorflow()


def _pads(node: onnx.NodeProto, spatial: int) -> tuple[list[int], list[int], str]:
    """(begin pads, end pads, auto_pad) per spatial axis."""
    auto = attr(node, "auto_pad", "NOTSET")
    pads = list(attr(node, "pads", [0] * (2 * spatial)))
    return pads[:spatial], pads[spatial:], auto


def _padding(
    x: Value, kernel: list[int], strides: list[int], dilations: list[int], begin: list[int], end: list[int],
    auto: str, fill: float = 0.0,
) -> tuple[Any, str]:
    """The channels-last input, padded if needed, and the TF padding string."""
    t = x.to(channels_last(x.rank))
    if auto in ("SAME_UPPER",):
        return t, "SAME"
    if auto == "VALID" or (not any(begin) and not any(end)):
        return t, "VALID"
    spatial = list(t.shape[1:-1])
    if all(s == 1 for s in strides):  # SAME for stride 1 = total (k-1)*d, more at the end
        same = all(b + e == (k - 1) * d and e - b in (0, 1) for b, e, k, d in zip(begin, end, kernel, dilations))
        if same and auto != "SAME_LOWER":
            return t, "SAME"
    elif all(isinstance(s, int) for s in spatial):
        totals = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            totals.append(max((out - 1) * s + (k - 1) * d + 1 - size, 0))
        if all(b == tot // 2 and e == tot - tot // 2 for b, e, tot in zip(begin, end, totals)):
            return t, "SAME"
    paddings = [[0, 0], *[[b, e] for b, e in zip(begin, end)], [0, 0]]
    return tf.pad(t, paddings, constant_values=fill), "VALID"


@converter("Conv", since=1)
def conv(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    group = attr(node, "group", 1)
    kernel = list(attr(node, "kernel_shape", []))
    weight_shape = ctx.graph.shape_of(node.input[1])
    if not kernel and weight_shape:
        kernel = [int(d) for d in weight_shape[2:]]
    if not kernel:
        raise NotImplementedError("Conv needs kernel_shape or a weight of known shape")
    spatial = len(kernel)
    strides = list(attr(node, "strides", [1] * spatial))
    dilations = list(attr(node, "dilations", [1] * spatial))
    begin, end, auto = _pads(node, spatial)
    w_layout = (*range(2, 2 + spatial), 1, 0)  # logical (O, I, k...) -> physical (k..., I, O)

    def run(state: RunState, x: Value, w: Value, b: Value | None = None) -> Value:
        t, padding = _padding(x, kernel, strides, dilations, begin, end, auto)
        filters = w.to(w_layout)
        in_channels = t.shape[-1]
        if group == 1:
            y = tf.nn.convolution(t, filters, strides=strides, padding=padding, dilations=dilations)
        elif spatial == 2 and group == in_channels:
            multiplier = filters.shape[-1] // group
            depthwise = tf.reshape(filters, [*kernel, group, multiplier])
            y = tf.nn.depthwise_conv2d(t, depthwise, [1, *strides, 1], padding, dilations=dilations)
        else:
            xs = tf.split(t, group, axis=-1)
            ws = tf.split(filters, group, axis=-1)
            y = tf.concat([tf.nn.convolution(a, k, strides=strides, padding=padding, dilations=dilations)
                           for a, k in zip(xs, ws)], axis=-1)
        if b is not None:
            y = y + b.logical()
        return Value(y, channels_last(2 + spatial))

    return run


def _pool(node: onnx.NodeProto, kind: str) -> Any:
    kernel = list(attr(node, "kernel_shape"))
    spatial = len(kernel)
    strides = list(attr(node, "strides", [1] * spatial))
    dilations = list(attr(node, "dilations", [1] * spatial))
    begin, end, auto = _pads(node, spatial)
    if attr(node, "ceil_mode", 0):
        raise NotImplementedError("ceil_mode=1 pools")
    count_pad = attr(node, "count_include_pad", 0)

    def run(state: RunState, x: Value) -> Value | tuple[Value, ...]:
        fill = -np.inf if kind == "MAX" else 0.0
        t, padding = _padding(x, kernel, strides, dilations, begin, end, auto, fill=fill)
        if kind == "AVG" and padding == "SAME" and (any(begin) or any(end)) and count_pad:
            t, padding = tf.pad(t, [[0, 0], *[[b, e] for b, e in zip(begin, end)], [0, 0]]), "VALID"
        if kind == "AVG" and padding == "VALID" and (any(begin) or any(end)) and not count_pad:
            raise NotImplementedError("AveragePool with asymmetric pads excluding padding")
        y = tf.nn.pool(t, kernel, kind, strides=strides, padding=padding, dilations=dilations)
        return Value(y, channels_last(2 + spatial))

    return run


@converter("MaxPool", since=1)
def max_pool(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    if len(node.output) > 1 and node.output[1]:
        raise NotImplementedError("MaxPool indices output")
    return _pool(node, "MAX")


@converter("AveragePool", since=1)
def average_pool(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return _pool(node, "AVG")


def _global(fn: Any) -> Any:
    def run(state: RunState, x: Value) -> Value:
        axes = [x.physical_axis(a) for a in range(2, x.rank)]
        return Value(fn(x.t, axis=axes, keepdims=True), x.perm)

    return run


@converter("GlobalAveragePool", since=1)
def global_average_pool(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return _global(tf.reduce_mean)


@converter("GlobalMaxPool", since=1)
def global_max_pool(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return _global(tf.reduce_max)
