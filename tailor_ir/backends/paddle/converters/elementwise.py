"""Broadcasting binary ops and comparisons: Add, Sub, Mul, Div, Pow, Equal, Less, Where, Max, Min, ..."""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, fn_of
from ..registry import converter
from ._common import paddle


def _div(a: Any, b: Any) -> Any:
    if a.dtype in (paddle.int32, paddle.int64):  # ONNX integer division (shape arithmetic: non-negative)
        return paddle.floor_divide(a, b)
    return a / b


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": _div,
    "Equal": paddle.equal, "Less": paddle.less_than, "Greater": paddle.greater_than,
    "LessOrEqual": paddle.less_equal, "GreaterOrEqual": paddle.greater_equal,
    "And": paddle.logical_and, "Or": paddle.logical_or, "Xor": paddle.logical_xor, "Mod": paddle.remainder,
}


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
    if exponent is not None and exponent.size == 1:
        value = float(np.asarray(exponent).reshape(()))
        return fn_of(lambda x: x**value, [node.input[0]])
    return fn_of(paddle.pow, node.input[:2])


@converter("Where", since=9)
def convert_where(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(paddle.where, node.input[:3])


def _variadic(op: str, func: Callable[[Any, Any], Any]) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        return fn_of(lambda *xs: reduce(func, xs), [i for i in node.input if i])


for _op, _func in (("Max", paddle.maximum), ("Min", paddle.minimum), ("Sum", operator.add)):
    _variadic(_op, _func)
