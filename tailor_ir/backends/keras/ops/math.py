"""More elementwise math, bitwise ops, scans (CumSum/CumProd), Einsum, Trilu, TopK, Hardmax, OneHot: each on the logical (ONNX-ordered) tensor unless it is elementwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr, input_or_attr, resolve
from ..registry import converter
from ..values import Value, broadcast

tf = import_tensorflow()


def _unary(op: str, fn: Any, since: int = 1) -> None:
    converter(op, since=since)(lambda node, ctx: (lambda state, x: Value(fn(x.t), x.perm)))


for _op, _fn in {
    "Tan": tf.tan, "Asin": tf.asin, "Acos": tf.acos, "Atan": tf.atan, "Sinh": tf.sinh, "Cosh": tf.cosh,
    "Asinh": tf.asinh, "Acosh": tf.acosh, "Atanh": tf.atanh, "BitwiseNot": tf.bitwise.invert,
    "Mish": lambda t: t * tf.tanh(tf.nn.softplus(t)),
}.items():
    _unary(_op, _fn)


def _binary(op: str, fn: Any) -> None:
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        def run(state: RunState, a: Value, b: Value) -> Value:
            (x, y), perm = broadcast([a, b])
            return Value(fn(x, y), perm)

        return run

    converter(op, since=1)(convert)


for _op, _fn in {"BitwiseAnd": tf.bitwise.bitwise_and, "BitwiseOr": tf.bitwise.bitwise_or,
                 "BitwiseXor": tf.bitwise.bitwise_xor}.items():
    _binary(_op, _fn)


@converter("BitShift", since=11)
def bit_shift(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    left = attr(node, "direction") == "LEFT"

    def run(state: RunState, a: Value, b: Value) -> Value:
        """A shift by a negative amount or by the bit width or more gives 0 (-1 for a negative number shifted
        right), as ONNX's reference; TensorFlow leaves that undefined."""
        (x, y), perm = broadcast([a, b])
        width = x.dtype.size * 8
        outside = (y < 0) | (y >= width)
        safe = tf.where(outside, tf.zeros_like(y), y)
        if left:
            out, fill = tf.bitwise.left_shift(x, safe), tf.zeros_like(x)
        else:
            out = tf.bitwise.right_shift(x, safe)
            fill = tf.where(x < 0, -tf.ones_like(x), tf.zeros_like(x)) if not x.dtype.is_unsigned else tf.zeros_like(x)
        return Value(tf.where(outside, fill, out), perm)

    return run


@converter("Celu", since=12)
def celu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha = attr(node, "alpha", 1.0)
    return lambda state, x: Value(
        tf.maximum(x.t, 0) + tf.minimum(tf.zeros_like(x.t), alpha * (tf.exp(x.t / alpha) - 1)), x.perm
    )


@converter("ThresholdedRelu", since=10)
def thresholded_relu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha = attr(node, "alpha", 1.0)
    return lambda state, x: Value(tf.where(x.t > alpha, x.t, tf.zeros_like(x.t)), x.perm)


@converter("Swish", since=24)
def swish(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha = attr(node, "alpha", 1.0)
    return lambda state, x: Value(x.t * tf.sigmoid(alpha * x.t), x.perm)


@converter("Shrink", since=9)
def shrink(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    bias, lambd = attr(node, "bias", 0.0), attr(node, "lambd", 0.5)

    def run(state: RunState, x: Value) -> Value:
        t = x.t
        b, lam = tf.cast(bias, t.dtype), tf.cast(lambd, t.dtype)
        return Value(tf.where(t < -lam, t + b, tf.where(t > lam, t - b, tf.zeros_like(t))), x.perm)

    return run


@converter("IsInf", since=10)
def is_inf(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    negative, positive = attr(node, "detect_negative", 1), attr(node, "detect_positive", 1)

    def run(state: RunState, x: Value) -> Value:
        inf = tf.math.is_inf(x.t)
        if not negative:
            inf = inf & (x.t > 0)
        if not positive:
            inf = inf & (x.t < 0)
        return Value(inf, x.perm)

    return run


def _scan(fn: Any) -> Any:
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        exclusive, reverse = bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))
        axis = input_or_attr(node, ctx, 1, "axis")

        def run(state: RunState, x: Value, axis_in: Value) -> Value:
            a = int(np.asarray(resolve(axis, axis_in, "the scan axis")).reshape(-1)[0])
            return Value(fn(x.t, axis=x.physical_axis(a), exclusive=exclusive, reverse=reverse), x.perm)

        return run

    return convert


converter("CumSum", since=11)(_scan(tf.math.cumsum))
converter("CumProd", since=26)(_scan(tf.math.cumprod))


@converter("Einsum", since=12)
def einsum(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    equation = attr(node, "equation").replace(" ", "")

    def run(state: RunState, *xs: Value) -> Value:
        return Value(tf.einsum(equation, *[x.logical() for x in xs]))

    return run


@converter("Trilu", since=14)
def trilu(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    upper = bool(attr(node, "upper", 1))
    given = input_or_attr(node, ctx, 1, "k", [0])

    def run(state: RunState, x: Value, k_in: Value | None = None) -> Value:
        k = int(np.asarray(resolve(given, k_in, "Trilu k")).reshape(-1)[0])
        t = x.logical()
        shape = tf.shape(t, out_type=tf.int64)
        rows, cols = tf.range(shape[-2])[:, None], tf.range(shape[-1])[None, :]
        keep = (cols - rows >= k) if upper else (cols - rows <= k)
        return Value(tf.where(keep, t, tf.zeros_like(t)))

    return run


@converter("TopK", since=10)
def top_k(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis, largest = attr(node, "axis", -1), bool(attr(node, "largest", 1))
    given = input_or_attr(node, ctx, 1, "k")

    def run(state: RunState, x: Value, k_in: Value | None = None) -> tuple[Value, Value]:
        k = int(np.asarray(resolve(given, k_in, "TopK k")).reshape(-1)[0])
        t = x.logical()
        a = axis % x.rank
        perm = [d for d in range(x.rank) if d != a] + [a]
        moved = tf.transpose(t, perm)
        if t.dtype.is_unsigned or t.dtype == tf.bool:
            raise NotImplementedError(f"TopK of {t.dtype.name}")
        values, indices = tf.math.top_k(moved if largest else -moved, k=k, sorted=True)
        values = values if largest else -values
        back = np.argsort(perm).tolist()
        return Value(tf.transpose(values, back)), Value(tf.transpose(tf.cast(indices, tf.int64), back))

    return run


@converter("Hardmax", since=1)
def hardmax(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    if ctx.opset < 13:
        raise NotImplementedError("Hardmax before opset 13 (flattened axes)")
    axis = attr(node, "axis", -1)

    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        a = axis % x.rank
        depth = tf.shape(t)[a]
        return Value(tf.one_hot(tf.argmax(t, axis=a), depth, axis=a, dtype=t.dtype))

    return run


@converter("OneHot", since=9)
def one_hot(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis", -1)

    def run(state: RunState, indices: Value, depth: Value, values: Value) -> Value:
        d = tf.cast(tf.reshape(depth.logical(), []), tf.int64)
        i = tf.cast(indices.logical(), tf.int64)
        i = tf.where(i < 0, i + d, i)
        v = values.logical()
        a = axis % (indices.rank + 1)
        return Value(tf.one_hot(i, tf.cast(d, tf.int32), on_value=v[1], off_value=v[0], axis=a, dtype=v.dtype))

    return run



def _window(formula: Any) -> Any:
    """Hann/Hamming/Blackman windows of ``size`` points: ``n / (size if periodic else size - 1)`` in the output
    type, the formula in float64 (as the reference), cast to ``output_datatype``."""

    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Any:
        periodic = attr(node, "periodic", 1)
        dtype = tf.as_dtype(onnx.helper.tensor_dtype_to_np_dtype(attr(node, "output_datatype", 1)))

        def run(state: RunState, size: Value) -> Value:
            n = tf.cast(tf.reshape(size.logical(), []), tf.int64)
            denominator = tf.cast(n if periodic else n - 1, tf.float64)
            positions = tf.cast(tf.cast(tf.range(n), dtype), tf.float64)
            return Value(tf.cast(formula(positions, denominator), dtype))

        return run

    return convert


_ALPHA = 25.0 / 46.0
converter("HannWindow", since=17)(_window(lambda n, d: tf.sin(n * np.pi / d) ** 2))
converter("HammingWindow", since=17)(_window(lambda n, d: _ALPHA - tf.cos(n * np.pi * 2 / d) * (1 - _ALPHA)))
converter("BlackmanWindow", since=17)(
    _window(lambda n, d: 0.42 - 0.5 * tf.cos(n * np.pi * 2 / d) + 0.08 * tf.cos(n * np.pi * 4 / d))
)
