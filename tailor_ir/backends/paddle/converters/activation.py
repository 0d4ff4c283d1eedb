"""Activations and unary math: Relu, Sigmoid, Tanh, Gelu, Erf, Softmax, Clip, HardSwish, Sqrt, Exp, ..."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import F, paddle

UNARY: dict[str, Callable[[Any], Any]] = {
    "Relu": F.relu, "Sigmoid": F.sigmoid, "Tanh": paddle.tanh, "Erf": paddle.erf, "Sqrt": paddle.sqrt,
    "Exp": paddle.exp, "Log": paddle.log, "Abs": paddle.abs, "Neg": paddle.neg, "Reciprocal": paddle.reciprocal,
    "Floor": paddle.floor, "Ceil": paddle.ceil, "Softplus": F.softplus, "Softsign": F.softsign,
    "HardSwish": F.hardswish, "Sin": paddle.sin, "Cos": paddle.cos, "Sign": paddle.sign, "Not": paddle.logical_not,
    "Mish": F.mish, "Round": paddle.round, "Identity": lambda x: x,
}


def _unary(op: str) -> None:
    func = UNARY[op]

    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        return fn_of(func, [node.input[0]])


for _op in UNARY:
    _unary(_op)


@converter("LeakyRelu", since=1)
def convert_leaky_relu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 0.01))
    return fn_of(lambda x: F.leaky_relu(x, alpha), [node.input[0]])


@converter("Elu", since=1)
def convert_elu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha = float(attr(node, "alpha", 1.0))
    return fn_of(lambda x: F.elu(x, alpha), [node.input[0]])


@converter("HardSigmoid", since=1)
def convert_hard_sigmoid(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha, beta = float(attr(node, "alpha", 0.2)), float(attr(node, "beta", 0.5))
    return fn_of(lambda x: F.hardsigmoid(x, slope=alpha, offset=beta), [node.input[0]])


@converter("Gelu", since=20)
def convert_gelu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    approximate = attr(node, "approximate", "none") == "tanh"
    return fn_of(lambda x: F.gelu(x, approximate=approximate), [node.input[0]])


def _softmax(node: onnx.NodeProto, ctx: BuildContext, func: Callable[..., Any], legacy_default: int) -> Converted:
    if ctx.opset >= 13:
        axis = int(attr(node, "axis", -1))
        return fn_of(lambda x: func(x, axis=axis), [node.input[0]])
    axis = int(attr(node, "axis", legacy_default))

    def legacy(x: Any) -> Any:  # opset < 13: over the flattened axes from ``axis`` on
        start = axis if axis >= 0 else x.ndim + axis
        if start == x.ndim - 1:
            return func(x, axis=-1)
        shape = x.shape
        return func(x.reshape([*shape[:start], -1]), axis=-1).reshape(shape)

    return fn_of(legacy, [node.input[0]])


@converter("Softmax", since=1)
def convert_softmax(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return _softmax(node, ctx, F.softmax, 1)


@converter("LogSoftmax", since=1)
def convert_log_softmax(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return _softmax(node, ctx, F.log_softmax, 1)


@converter("Clip", since=1)
def convert_clip(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if ctx.opset < 11:
        low, high = attr(node, "min"), attr(node, "max")
        return fn_of(lambda x: _clip(x, low, high), [node.input[0]])
    names = [node.input[i] if len(node.input) > i else "" for i in (1, 2)]

    def clip(x: Any, low: Any = None, high: Any = None) -> Any:
        return _clip(x, low, high)

    return fn_of(clip, [node.input[0], *names])


def _clip(x: Any, low: Any, high: Any) -> Any:
    """min(max(x, low), high) in x's dtype; bounds may be numbers or (scalar) tensors."""
    if low is not None:
        low = low if isinstance(low, paddle.Tensor) else paddle.to_tensor(low, dtype=x.dtype)
        x = paddle.maximum(x, low.astype(x.dtype).reshape([]))
    if high is not None:
        high = high if isinstance(high, paddle.Tensor) else paddle.to_tensor(high, dtype=x.dtype)
        x = paddle.minimum(x, high.astype(x.dtype).reshape([]))
    return x
