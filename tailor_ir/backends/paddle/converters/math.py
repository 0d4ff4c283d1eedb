"""More element-wise math: trigonometry, Celu/Selu/ThresholdedRelu/Shrink/Swish/PRelu, IsInf/IsNaN, Mean,
bitwise ops and BitShift, Hardmax, DepthToSpace/SpaceToDepth."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import F, paddle

UNARY: dict[str, Callable[[Any], Any]] = {
    "Tan": paddle.tan, "Asin": paddle.asin, "Acos": paddle.acos, "Atan": paddle.atan, "Sinh": paddle.sinh,
    "Cosh": paddle.cosh, "Asinh": paddle.asinh, "Acosh": paddle.acosh, "Atanh": paddle.atanh,
    "IsNaN": paddle.isnan, "BitwiseNot": paddle.bitwise_not,
}
BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "BitwiseAnd": paddle.bitwise_and, "BitwiseOr": paddle.bitwise_or, "BitwiseXor": paddle.bitwise_xor,
}


def _register(op: str, func: Callable[..., Any], arity: int) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        return fn_of(func, node.input[:arity])


for _op, _func in UNARY.items():
    _register(_op, _func, 1)
for _op, _func in BINARY.items():
    _register(_op, _func, 2)


@converter("IsInf", since=10)
def convert_is_inf(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    positive, negative = bool(attr(node, "detect_positive", 1)), bool(attr(node, "detect_negative", 1))

    def is_inf(x: Any) -> Any:
        inf = paddle.isinf(x)
        if positive and negative:
            return inf
        return inf & (x > 0) if positive else inf & (x < 0)

    return fn_of(is_inf, [node.input[0]])


@converter("Mean", since=1)
def convert_mean(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def mean(*xs: Any) -> Any:
        return reduce(lambda a, b: a + b, xs) / len(xs)

    return fn_of(mean, [i for i in node.input if i])


@converter("BitShift", since=11)
def convert_bit_shift(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    left = attr(node, "direction") == "LEFT"

    def bit_shift(x: Any, y: Any) -> Any:  # on the (wider, signed) copies of unsigned inputs: logical shifts
        return paddle.bitwise_left_shift(x, y) if left else paddle.bitwise_right_shift(x, y)

    return fn_of(bit_shift, node.input[:2])


@converter("Celu", since=12)
def convert_celu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 1.0))
    return fn_of(lambda x: F.celu(x, alpha), [node.input[0]])


@converter("Selu", since=1)
def convert_selu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 1.67326319217681884765625))
    gamma = float(attr(node, "gamma", 1.05070102214813232421875))
    return fn_of(lambda x: F.selu(x, gamma, alpha), [node.input[0]])


@converter("ThresholdedRelu", since=10)
def convert_thresholded_relu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 1.0))
    return fn_of(lambda x: paddle.where(x > alpha, x, paddle.zeros_like(x)), [node.input[0]])


@converter("Shrink", since=9)
def convert_shrink(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    bias, lambd = float(attr(node, "bias", 0.0)), float(attr(node, "lambd", 0.5))

    def shrink(x: Any) -> Any:
        zero = paddle.zeros_like(x)
        return paddle.where(x < -lambd, x + bias, paddle.where(x > lambd, x - bias, zero)).astype(x.dtype)

    return fn_of(shrink, [node.input[0]])


@converter("Swish", since=24)
def convert_swish(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 1.0))
    return fn_of(lambda x: x * F.sigmoid(x * alpha), [node.input[0]])


@converter("PRelu", since=1)
def convert_prelu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(lambda x, slope: paddle.where(x < 0, x * slope, x), node.input[:2])


@converter("Hardmax", since=1)
def convert_hardmax(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    legacy = ctx.opset < 13
    axis = int(attr(node, "axis", 1 if legacy else -1))

    def hardmax(x: Any) -> Any:
        shape = x.shape
        a = axis % x.ndim
        flat = x.reshape([*shape[:a], -1]) if legacy else x
        along = flat.ndim - 1 if legacy else a
        hot = F.one_hot(paddle.argmax(flat, axis=along), flat.shape[along]).astype(x.dtype)
        if not legacy and along != x.ndim - 1:
            perm = list(range(x.ndim - 1))
            perm.insert(along, x.ndim - 1)
            hot = hot.transpose(perm)
        return hot.reshape(shape)

    return fn_of(hardmax, [node.input[0]])


@converter("DepthToSpace", since=1)
def convert_depth_to_space(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    block, mode = int(attr(node, "blocksize")), attr(node, "mode", "DCR")

    def depth_to_space(x: Any) -> Any:
        n, c, h, w = x.shape
        if mode == "DCR":
            y = x.reshape([n, block, block, c // block**2, h, w]).transpose([0, 3, 4, 1, 5, 2])
        else:
            y = x.reshape([n, c // block**2, block, block, h, w]).transpose([0, 1, 4, 2, 5, 3])
        return y.reshape([n, c // block**2, h * block, w * block])

    return fn_of(depth_to_space, [node.input[0]])


@converter("SpaceToDepth", since=1)
def convert_space_to_depth(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    block, mode = int(attr(node, "blocksize")), attr(node, "mode", "DCR")
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]

    def space_to_depth(x: Any) -> Any:
        n, c, h, w = x.shape
        y = x.reshape([n, c, h // block, block, w // block, block]).transpose(perm)
        return y.reshape([n, c * block * block, h // block, w // block])

    return fn_of(space_to_depth, [node.input[0]])


@converter("SwiGLU", since=1)
def convert_swiglu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """a * sigmoid(alpha * a) * b."""
    alpha = float(attr(node, "alpha", 1.0))
    return fn_of(lambda a, b: a * F.sigmoid(a * alpha) * b, node.input[:2])
