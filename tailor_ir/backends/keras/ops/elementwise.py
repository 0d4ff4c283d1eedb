"""Elementwise ops: they keep their input's layout (lower-rank operands are broadcast into it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value, broadcast

tf = import_tensorflow()


def _unary(op: str, fn: Callable[[Any], Any], since: int = 1) -> None:
    @converter(op, since=since)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        def run(state: RunState, x: Value) -> Value:
            return Value(fn(x.t), x.perm)

        return run


def _binary(op: str, fn: Callable[[Any, Any], Any], since: int = 1) -> None:
    @converter(op, since=since)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        def run(state: RunState, *xs: Value) -> Value:
            ts, perm = broadcast(xs)
            out = ts[0]
            for t in ts[1:]:
                out = fn(out, t)
            return Value(out, perm)

        return run


for _op, _fn in {
    "Relu": tf.nn.relu, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh, "Exp": tf.exp, "Log": tf.math.log,
    "Sqrt": tf.sqrt, "Reciprocal": tf.math.reciprocal, "Neg": tf.negative, "Abs": tf.abs, "Erf": tf.math.erf,
    "Floor": tf.floor, "Ceil": tf.math.ceil, "Not": tf.logical_not, "Sin": tf.sin, "Cos": tf.cos,
    "Softplus": tf.nn.softplus, "Softsign": tf.nn.softsign, "Identity": tf.identity, "Sign": tf.sign,
    "Round": tf.round, "IsNaN": tf.math.is_nan,
}.items():
    _unary(_op, _fn)

for _op, _fn in {
    "Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "Max": tf.maximum, "Min": tf.minimum,
    "Equal": tf.equal, "Less": tf.less, "LessOrEqual": tf.less_equal, "Greater": tf.greater,
    "GreaterOrEqual": tf.greater_equal, "And": tf.logical_and, "Or": tf.logical_or, "Xor": tf.math.logical_xor,
    "Sum": tf.add,
}.items():
    _binary(_op, _fn)


@converter("Div", since=1)
def div(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, a: Value, b: Value) -> Value:
        (x, y), perm = broadcast([a, b])
        if x.dtype.is_integer:  # ONNX integer division truncates toward zero
            return Value(tf.cast(tf.truncatediv(x, y), x.dtype), perm)
        return Value(x / y, perm)

    return run


@converter("Mod", since=10)
def mod(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    fmod = attr(node, "fmod", 0)

    def run(state: RunState, a: Value, b: Value) -> Value:
        (x, y), perm = broadcast([a, b])
        return Value(tf.truncatemod(x, y) if fmod else tf.math.floormod(x, y), perm)  # half: in float32

    return run


@converter("Pow", since=1)
def pow_(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    exponent = ctx.const(node.input[1])
    square = exponent is not None and exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0

    def run(state: RunState, a: Value, b: Value) -> Value:
        if square:
            return Value(tf.square(a.t), a.perm)
        (x, y), perm = broadcast([a, b])
        return Value(tf.pow(x, tf.cast(y, x.dtype)), perm)

    return run


@converter("Mean", since=1)
def mean(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, *xs: Value) -> Value:
        ts, perm = broadcast(xs)
        out = ts[0]
        for t in ts[1:]:
            out = out + t
        return Value(out / len(ts), perm)

    return run


@converter("Where", since=9)
def where(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, cond: Value, a: Value, b: Value) -> Value:
        (c, x, y), perm = broadcast([cond, a, b])
        return Value(tf.where(c, x, y), perm)

    return run


_FLOAT8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0}


def _cast(t: Any, dtype: Any, saturate: bool) -> Any:
    """``tf.cast``; to float8 with ONNX's ``saturate`` (out-of-range values, infinities included, clip to the
    largest finite value; NaN stays NaN) computed through float32."""
    if dtype.name in _FLOAT8_MAX and t.dtype != dtype:
        t = tf.cast(t, tf.float32)
        if saturate:
            limit = _FLOAT8_MAX[dtype.name]
            t = tf.where(tf.math.is_nan(t), t, tf.clip_by_value(t, -limit, limit))
        return tf.cast(t, dtype)
    if t.dtype.name in _FLOAT8_MAX and dtype != t.dtype and dtype != tf.float32:
        t = tf.cast(t, tf.float32)
    return tf.cast(t, dtype)


@converter("Cast", since=1)
def cast(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    dtype = tf.as_dtype(onnx.helper.tensor_dtype_to_np_dtype(attr(node, "to")))
    saturate = bool(attr(node, "saturate", 1))

    def run(state: RunState, x: Value) -> Value:
        return Value(_cast(x.t, dtype, saturate), x.perm)

    return run


@converter("CastLike", since=15)
def cast_like(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    saturate = bool(attr(node, "saturate", 1))

    def run(state: RunState, x: Value, like: Value) -> Value:
        return Value(_cast(x.t, like.dtype, saturate), x.perm)

    return run


@converter("Clip", since=1)
def clip(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    low_attr, high_attr = attr(node, "min"), attr(node, "max")

    low_const = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else low_attr
    high_const = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else high_attr
    fixed = [None if v is None else float(np.asarray(v)) for v in (low_const, high_const)]
    if fixed in ([0.0, 6.0], [0.0, None]):  # ReLU6 / ReLU: fused kernels, and a far cheaper gradient than
        fn = tf.nn.relu6 if fixed[1] is not None else tf.nn.relu  # maximum/minimum's (5x MobileNetV2's step)
        return lambda state, x, *bounds: Value(fn(x.t), x.perm)

    def run(state: RunState, x: Value, low: Value | None = None, high: Value | None = None) -> Value:
        t = x.t
        lo = low.logical() if low is not None else low_attr
        hi = high.logical() if high is not None else high_attr
        if lo is not None:
            t = tf.maximum(t, tf.cast(lo, t.dtype))
        if hi is not None:
            t = tf.minimum(t, tf.cast(hi, t.dtype))
        return Value(t, x.perm)

    return run


@converter("LeakyRelu", since=1)
def leaky_relu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha = attr(node, "alpha", 0.01)
    return lambda state, x: Value(tf.nn.leaky_relu(x.t, alpha), x.perm)


@converter("Elu", since=1)
def elu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha = attr(node, "alpha", 1.0)
    return lambda state, x: Value(tf.where(x.t > 0, x.t, alpha * (tf.exp(x.t) - 1)), x.perm)


@converter("Selu", since=1)
def selu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha, gamma = attr(node, "alpha", 1.67326319217681884765625), attr(node, "gamma", 1.05070102214813232421875)
    return lambda state, x: Value(gamma * tf.where(x.t > 0, x.t, alpha * (tf.exp(x.t) - 1)), x.perm)


@converter("HardSigmoid", since=1)
def hard_sigmoid(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha, beta = attr(node, "alpha", 0.2), attr(node, "beta", 0.5)
    return lambda state, x: Value(tf.clip_by_value(alpha * x.t + beta, 0.0, 1.0), x.perm)


@converter("HardSwish", since=14)
def hard_swish(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return lambda state, x: Value(x.t * tf.clip_by_value(x.t / 6.0 + 0.5, 0.0, 1.0), x.perm)


@converter("Gelu", since=20)
def gelu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    approximate = attr(node, "approximate", "none") == "tanh"
    if approximate:
        return lambda state, x: Value(
            0.5 * x.t * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x.t + 0.044715 * x.t**3))), x.perm
        )
    return lambda state, x: Value(0.5 * x.t * (1.0 + tf.math.erf(x.t / math.sqrt(2.0))), x.perm)


@converter("PRelu", since=1)
def prelu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, x: Value, slope: Value) -> Value:
        (t, s), perm = broadcast([x, slope])
        return Value(tf.where(t >= 0, t, t * s), perm)

    return run


@converter("Constant", since=1)
def constant(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    value = None
    for name in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = attr(node, name)
        if value is not None:
            break
    if value is None:
        raise NotImplementedError("Constant without a value attribute")
    array = np.asarray(value)
    if array.dtype == np.float64 and not isinstance(value, np.ndarray):
        array = array.astype(np.float32)
    return lambda state: Value(tf.constant(array))
