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


def _same_pads(
    spatial: list[Any], kernel: list[int], strides: list[int], dilations: list[int], lower: bool
) -> tuple[list[int], list[int]]:
    """ONNX SAME_UPPER / SAME_LOWER pads for a static spatial shape (the odd pixel at the end / the start)."""
    if any(not isinstance(size, int) for size in spatial):
        raise NotImplementedError("auto_pad SAME_LOWER/SAME_UPPER on an input of unknown spatial size")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(big if lower else small)
        end.append(small if lower else big)
    return begin, end


def _explicit_pads(
    x: Value, kernel: list[int], strides: list[int], dilations: list[int], begin: list[int], end: list[int],
    auto: str,
) -> tuple[list[int], list[int]]:
    """The begin/end pads of every spatial axis, ``auto_pad`` resolved against the input's static shape."""
    if auto == "VALID":
        return [0] * len(kernel), [0] * len(kernel)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        spatial = x.static_logical_shape()[2:]
        return _same_pads(spatial, kernel, strides, dilations, lower=auto == "SAME_LOWER")
    return begin, end


def _padding(
    x: Value, kernel: list[int], strides: list[int], dilations: list[int], begin: list[int], end: list[int],
    auto: str, fill: float = 0.0,
) -> tuple[Any, str]:
    """The channels-last input, padded if needed, and the TF padding string."""
    t = x.to(channels_last(x.rank))
    if auto == "SAME_UPPER":  # TensorFlow's SAME
        return t, "SAME"
    begin, end = _explicit_pads(x, kernel, strides, dilations, begin, end, auto)
    if not any(begin) and not any(end):
        return t, "VALID"
    spatial = list(t.shape[1:-1])
    if all(s == 1 for s in strides):  # SAME for stride 1 = total (k-1)*d, more at the end
        if all(b + e == (k - 1) * d and e - b in (0, 1) for b, e, k, d in zip(begin, end, kernel, dilations)):
            return t, "SAME"
    elif all(isinstance(s, int) for s in spatial):
        if (begin, end) == _same_pads(spatial, kernel, strides, dilations, lower=False):
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
    ceil_mode = bool(attr(node, "ceil_mode", 0))
    count_pad = attr(node, "count_include_pad", 0)
    # TF pools refuse a stride above the window and a stride with a dilation: pool at stride 1, then subsample
    subsample = any(s > k for s, k in zip(strides, kernel)) or (any(d > 1 for d in dilations) and any(
        s > 1 for s in strides))

    def run(state: RunState, x: Value) -> Value:
        layout = channels_last(2 + spatial)
        fast = not ceil_mode and not subsample
        if fast and (kind == "MAX" or not count_pad):
            fill = -np.inf if kind == "MAX" else 0.0
            t, padding = _padding(x, kernel, strides, dilations, begin, end, auto, fill=fill)
            padded = padding == "VALID" and t.shape[1:-1] != x.to(layout).shape[1:-1]
            if not (kind == "AVG" and padded):  # TF's SAME average excludes the padding, as count_include_pad=0
                y = tf.nn.pool(t, kernel, kind, strides=strides, padding=padding, dilations=dilations)
                return Value(y, layout)
        return Value(_general_pool(x.to(layout), x, kind), layout)

    def _general_pool(t: Any, x: Value, kind: str) -> Any:
        """Explicit padding (ceil_mode overhang included), a VALID pool at stride 1 when TF cannot stride it,
        and for averages the count of the cells each window covers (padding counted or not)."""
        b, e = _explicit_pads(x, kernel, strides, dilations, begin, end, auto)
        sizes = list(t.shape[1:-1])
        if any(s is None for s in sizes):
            raise NotImplementedError("this pool on an input of unknown spatial size")
        extra = []
        for size, k, s, d, pb, pe in zip(sizes, kernel, strides, dilations, b, e):
            window = (k - 1) * d + 1
            span = size + pb + pe - window
            out = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (out - 1) * s >= size + pb:  # the last window would start in the end padding
                out -= 1
            extra.append(max((out - 1) * s + window - (size + pb + pe), 0))
        paddings = [[0, 0], *[[pb, pe + x_] for pb, pe, x_ in zip(b, e, extra)], [0, 0]]
        fill = -np.inf if kind == "MAX" else 0.0
        padded = tf.pad(t, paddings, constant_values=tf.cast(fill, t.dtype))
        pool_strides = [1] * spatial if subsample else strides

        def pool(v: Any) -> Any:
            y = tf.nn.pool(v, kernel, kind, strides=pool_strides, padding="VALID", dilations=dilations)
            if subsample:
                y = y[(slice(None), *[slice(None, None, s) for s in strides], slice(None))]
            return y

        y = pool(padded)
        if kind == "MAX":
            return y
        ones = tf.ones([1, *sizes, 1], t.dtype)
        inner = [[0, 0], *[[pb, pe] for pb, pe in zip(b, e)], [0, 0]]
        mask = tf.pad(ones, inner, constant_values=tf.cast(1.0 if count_pad else 0.0, t.dtype))
        mask = tf.pad(mask, [[0, 0], *[[0, x_] for x_ in extra], [0, 0]])
        return y / pool(mask)

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


def _insert_zeros(t: Any, strides: list[int]) -> Any:
    """Channels-last ``t`` with ``s - 1`` zeros between neighbours along each spatial axis."""
    for axis, s in enumerate(strides, start=1):
        if s == 1:
            continue
        shape = tf.shape(t)
        n = shape[axis]
        expanded = tf.expand_dims(t, axis + 1)
        pad = [[0, 0]] * (len(t.shape) + 1)
        pad[axis + 1] = [0, s - 1]
        spread = tf.pad(expanded, pad)
        new_shape = tf.concat([shape[:axis], [n * s], shape[axis + 1 :]], 0)
        t = tf.reshape(spread, new_shape)
        t = tf.gather(t, tf.range((n - 1) * s + 1), axis=axis)
    return t


@converter("ConvTranspose", since=1)
def conv_transpose(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """A convolution of the zero-interleaved input with the spatially flipped kernel, then ONNX's pads cropped
    (or ``output_padding`` / ``output_shape`` zeros added) at each end."""
    group = attr(node, "group", 1)
    weight_shape = ctx.graph.shape_of(node.input[1])
    kernel = list(attr(node, "kernel_shape", []) or (weight_shape[2:] if weight_shape else []))
    if not kernel or any(not isinstance(k, int) for k in kernel):
        raise NotImplementedError("ConvTranspose needs kernel_shape or a weight of known shape")
    spatial = len(kernel)
    strides = list(attr(node, "strides", [1] * spatial))
    dilations = list(attr(node, "dilations", [1] * spatial))
    out_pad = list(attr(node, "output_padding", [0] * spatial))
    out_shape = attr(node, "output_shape")
    begin, end, auto = _pads(node, spatial)

    def run(state: RunState, x: Value, w: Value, b: Value | None = None) -> Value:
        t = x.to(channels_last(x.rank))
        sizes = list(t.shape[1:-1])
        if any(s is None for s in sizes):
            raise NotImplementedError("ConvTranspose on an input of unknown spatial size")
        pads_b, pads_e = list(begin), list(end)
        full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(sizes, strides, kernel, dilations)]
        if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            target = list(out_shape)[-spatial:] if out_shape is not None else [n * s for n, s in zip(sizes, strides)]
            totals = [f + op - o for f, op, o in zip(full, out_pad, target)]
            lower = auto != "SAME_UPPER"  # ONNX: the larger half at the start unless SAME_UPPER
            pads_b = [tot - tot // 2 if lower else tot // 2 for tot in totals]
            pads_e = [tot - pb for tot, pb in zip(totals, pads_b)]
        up = _insert_zeros(t, strides)
        edge = [(k - 1) * d for k, d in zip(kernel, dilations)]
        up = tf.pad(up, [[0, 0], *[[e, e] for e in edge], [0, 0]])
        filters = tf.reverse(w.logical(), list(range(2, 2 + spatial)))  # (C_in, C_out/g, k...)
        filters = tf.transpose(filters, [*range(2, 2 + spatial), 0, 1])  # (k..., C_in, C_out/g)
        xs, ws = tf.split(up, group, axis=-1), tf.split(filters, group, axis=-2)
        y = tf.concat(
            [tf.nn.convolution(a, k, padding="VALID", dilations=dilations) for a, k in zip(xs, ws)], axis=-1
        )
        # ONNX's output: full + output_padding - pads; negative pads mean zeros
        grow = [[max(-pb, 0), max(op - pe, 0)] for pb, pe, op in zip(pads_b, pads_e, out_pad)]
        if any(g for pair in grow for g in pair):
            y = tf.pad(y, [[0, 0], *grow, [0, 0]])
        crop = [slice(max(pb, 0), max(pb, 0) + f + op - pb - pe) for pb, pe, op, f in zip(pads_b, pads_e, out_pad, full)]
        y = y[(slice(None), *crop, slice(None))]
        if b is not None:
            y = y + b.logical()
        return Value(y, channels_last(2 + spatial))

    return run


@converter("LpPool", since=1)
def lp_pool(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """``(sum |x|^p)^(1/p)`` over each window: an average pool of ``|x|^p`` over the zero-padded input times the
    window size (the padding adds nothing)."""
    kernel = list(attr(node, "kernel_shape"))
    spatial = len(kernel)
    strides = list(attr(node, "strides", [1] * spatial))
    dilations = list(attr(node, "dilations", [1] * spatial))
    begin, end, auto = _pads(node, spatial)
    p = float(attr(node, "p", 2))
    if attr(node, "ceil_mode", 0):
        raise NotImplementedError("LpPool ceil_mode=1")
    subsample = any(s > 1 for s in strides) and (any(d > 1 for d in dilations) or any(
        s > k for s, k in zip(strides, kernel)))

    def run(state: RunState, x: Value) -> Value:
        t = x.to(channels_last(x.rank))
        b, e = _explicit_pads(x, kernel, strides, dilations, begin, end, auto)
        powered = tf.pow(tf.abs(t), p)
        powered = tf.pad(powered, [[0, 0], *[[pb, pe] for pb, pe in zip(b, e)], [0, 0]])
        step = [1] * spatial if subsample else strides
        y = tf.nn.pool(powered, kernel, "AVG", strides=step, padding="VALID", dilations=dilations)
        if subsample:
            y = y[(slice(None), *[slice(None, None, s) for s in strides], slice(None))]
        return Value(tf.pow(y * float(np.prod(kernel)), 1.0 / p), channels_last(2 + spatial))

    return run
