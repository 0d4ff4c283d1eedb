"""Reductions, Softmax and ArgMax: axes are mapped onto the physical layout, which they keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr, input_or_attr, resolve
from ..registry import converter
from ..values import Value, drop_axes

tf = import_tensorflow()

_REDUCERS: dict[str, Callable[..., Any]] = {
    "ReduceMean": tf.reduce_mean,
    "ReduceSum": tf.reduce_sum,
    "ReduceMax": tf.reduce_max,
    "ReduceMin": tf.reduce_min,
    "ReduceProd": tf.reduce_prod,
    "ReduceL2": lambda t, axis, keepdims: tf.sqrt(tf.reduce_sum(tf.square(t), axis=axis, keepdims=keepdims)),
    "ReduceL1": lambda t, axis, keepdims: tf.reduce_sum(tf.abs(t), axis=axis, keepdims=keepdims),
    "ReduceSumSquare": lambda t, axis, keepdims: tf.reduce_sum(tf.square(t), axis=axis, keepdims=keepdims),
    "ReduceLogSumExp": tf.reduce_logsumexp,
    "ReduceLogSum": lambda t, axis, keepdims: tf.math.log(tf.reduce_sum(t, axis=axis, keepdims=keepdims)),
}
# the opset from which ``axes`` is an input instead of an attribute
_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _reducer(op: str, fn: Callable[..., Any]) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        keepdims = attr(node, "keepdims", 1)
        noop = attr(node, "noop_with_empty_axes", 0)
        if ctx.opset >= _AXES_INPUT_SINCE.get(op, 18):
            axes = input_or_attr(node, ctx, 1, "axes")
        else:
            axes = attr(node, "axes")

        def run(state: RunState, x: Value, axes_in: Value | None = None) -> Value:
            given = resolve(axes, axes_in, f"{op} axes")
            if not given and noop:
                return x
            logical = [a % x.rank for a in given] if given else list(range(x.rank))
            physical = [x.physical_axis(a) for a in logical]
            if x.dtype == tf.bool and op in ("ReduceMax", "ReduceMin"):  # any / all
                fn_bool = tf.reduce_any if op == "ReduceMax" else tf.reduce_all
                out = fn_bool(x.t, axis=physical, keepdims=bool(keepdims))
            else:
                out = fn(x.t, axis=physical, keepdims=bool(keepdims))
            return Value(out, x.perm if keepdims else drop_axes(x.perm, logical))

        return run


for _op, _fn in _REDUCERS.items():
    _reducer(_op, _fn)


def _softmax(fn: Callable[..., Any]) -> Callable[..., Any]:
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        if ctx.opset < 13:
            axis = attr(node, "axis", 1)

            def run_old(state: RunState, x: Value) -> Value:  # softmax over the flattened trailing axes
                t = x.logical()
                a = axis % x.rank
                if a == x.rank - 1:
                    return Value(fn(t, axis=-1))
                shape = tf.shape(t)
                flat = tf.reshape(t, [tf.reduce_prod(shape[:a]), -1])
                return Value(tf.reshape(fn(flat, axis=-1), shape))

            return run_old
        axis = attr(node, "axis", -1)

        def run(state: RunState, x: Value) -> Value:
            a = x.physical_axis(axis)
            if x.dtype in (tf.float16, tf.bfloat16):
                return Value(_half_softmax(x.t, a, log=fn is tf.nn.log_softmax), x.perm)
            return Value(fn(x.t, axis=a), x.perm)

        return run

    return convert


def _half_softmax(t: Any, axis: int, log: bool) -> Any:
    """Softmax of a float16/bfloat16 tensor rounded where ONNX's (numpy) reference rounds: ``exp`` rounded to
    the input type; the sum taken in float32 and rounded (float16), or accumulated in bfloat16 one term at a
    time (numpy has no pairwise float32 sum for bfloat16); then the quotient (or the log difference)."""
    half = t.dtype
    shifted = t - tf.reduce_max(t, axis=axis, keepdims=True)
    e = tf.cast(tf.exp(tf.cast(shifted, tf.float32)), half)
    if half == tf.bfloat16:
        moved = tf.experimental.numpy.moveaxis(e, axis, 0)
        total = tf.expand_dims(tf.foldl(tf.add, moved), axis)
    else:
        total = tf.cast(tf.reduce_sum(tf.cast(e, tf.float32), axis=axis, keepdims=True), half)
    if log:
        return shifted - tf.cast(tf.math.log(tf.cast(total, tf.float32)), half)
    return tf.cast(tf.cast(e, tf.float32) / tf.cast(total, tf.float32), half)


converter("Softmax", since=1)(_softmax(tf.nn.softmax))
converter("LogSoftmax", since=1)(_softmax(tf.nn.log_softmax))


def _arg(fn: Callable[..., Any]) -> Callable[..., Any]:
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        axis, keepdims = attr(node, "axis", 0), attr(node, "keepdims", 1)
        last = bool(attr(node, "select_last_index", 0))

        def run(state: RunState, x: Value) -> Value:
            a = x.physical_axis(axis)
            if last:  # the last of equal extremes: search the reversed axis
                n = tf.cast(tf.shape(x.t)[a], tf.int64)
                out = n - 1 - fn(tf.reverse(x.t, [a]), axis=a, output_type=tf.int64)
            else:
                out = fn(x.t, axis=a, output_type=tf.int64)
            if keepdims:
                return Value(tf.expand_dims(out, a), x.perm)
            return Value(out, drop_axes(x.perm, [axis % x.rank]))

        return run

    return convert


converter("ArgMax", since=1)(_arg(tf.argmax))
converter("ArgMin", since=1)(_arg(tf.argmin))
