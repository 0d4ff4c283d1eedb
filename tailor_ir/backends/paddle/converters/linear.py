"""Matrix products: Linear (the pre-pass's MatMul/Gemm by a weight: a real paddle Linear), MatMul, Gemm."""

from __future__ import annotations

from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of, layer_of
from ..prepass import DOMAIN
from ..registry import converter
from ._common import paddle, zero_init


@converter("Linear", since=1, domain=DOMAIN)
def convert_linear(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    w = node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    fan_in, fan_out = (int(d) for d in ctx.shape(w))
    layer = paddle.nn.Linear(fan_in, fan_out, weight_attr=zero_init(), bias_attr=zero_init() if b else False)
    layer.weight = ctx.param(w)
    if b:
        layer.bias = ctx.param(b)
    return layer_of(layer, [node.input[0]])


@converter("MatMul", since=1)
def convert_matmul(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(paddle.matmul, node.input[:2])


@converter("Gemm", since=1)
def convert_gemm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    trans_a, trans_b = bool(attr(node, "transA", 0)), bool(attr(node, "transB", 0))

    def gemm(a: Any, b: Any, c: Any = None) -> Any:
        y = paddle.matmul(a, b, transpose_x=trans_a, transpose_y=trans_b)
        if alpha != 1.0:
            y = y * alpha
        if c is not None:
            y = y + (c * beta if beta != 1.0 else c)
        return y

    return fn_of(gemm, [i for i in node.input[:3] if i])


@converter("Einsum", since=12)
def convert_einsum(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    equation = attr(node, "equation").replace(" ", "")
    terms = equation.split("->")[0].split(",")
    if equation in ("->", ""):  # a scalar's identity
        return fn_of(lambda x: x, [node.input[0]])
    if any(not t for t in terms):
        raise NotImplementedError(f"Einsum {equation!r} with a scalar operand is not implemented")
    return fn_of(lambda *xs: paddle.einsum(equation, *xs), list(node.input))
