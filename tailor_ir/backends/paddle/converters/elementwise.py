"""Broadcasting binary ops and comparisons: Add, Sub, Mul, Div, Pow, Equal, Less, Where, Max, Min, ..."""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle

INTEGER = (paddle.int8, paddle.int16, paddle.int32, paddle.int64, paddle.uint8)


def _div(a: Any, b: Any) -> Any:
    """ONNX Div: integer division truncates toward zero (-7 / 2 = -3), as C; paddle's floor_divide floors."""
    if a.dtype in INTEGER:
        q = paddle.floor_divide(a, b)
        inexact = (a - q * b) != 0
        return paddle.where(inexact & ((a < 0) != (b < 0)), q + 1, q)
    return a / b


def _fmod(a: Any, b: Any) -> Any:
    """C fmod: the remainder takes the dividend's sign (-5 fmod 3 = -2)."""
    r = paddle.remainder(paddle.abs(a), paddle.abs(b))
    return paddle.where(a < 0, -r, r)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": _div,
    "Equal": paddle.equal, "Less": paddle.less_than, "Greater": paddle.greater_than,
    "LessOrEqual": paddle.less_equal, "GreaterOrEqual": paddle.greater_equal,
    "And": paddle.logical_and, "Or": paddle.logical_or, "Xor": paddle.logical_xor,
}


@converter("Mod", since=10)
def convert_mod(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """fmod=0: the remainder takes the divisor's sign (Python %); fmod=1: the dividend's (C fmod)."""
    return fn_of(_fmod if attr(node, "fmod", 0) else paddle.remainder, node.input[:2])


def _binary(op: str) -> None:
    func = BINARY[op]

    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        return fn_of(func, node.input[:2])


for _op in BINARY:
    _binary(_op)


@converter("Pow", since=1)
def convert_pow(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    exponent = ctx.const(node.input[1])
    if exponent is not None and exponent.size == 1 and exponent.dtype.kind == "f":
        value = float(np.asarray(exponent).reshape(()))
        return fn_of(lambda x: x**value if x.dtype not in INTEGER else _pow(x, paddle.to_tensor(exponent)),
                     [node.input[0]])
    return fn_of(_pow, node.input[:2])


def _pow(x: Any, y: Any) -> Any:
    """ONNX Pow: the result has the base's type, whatever the exponent's (paddle refuses mixed types)."""
    if x.dtype == y.dtype:
        return paddle.pow(x, y)
    if x.dtype in INTEGER:
        return paddle.pow(x.astype("float64"), y.astype("float64")).astype(x.dtype)
    return paddle.pow(x, y.astype(x.dtype))


@converter("Where", since=9)
def convert_where(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(paddle.where, node.input[:3])


def _variadic(op: str, func: Callable[[Any, Any], Any]) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        return fn_of(lambda *xs: reduce(func, xs), [i for i in node.input if i])


for _op, _func in (("Max", paddle.maximum), ("Min", paddle.minimum), ("Sum", operator.add)):
    _variadic(_op, _func)
