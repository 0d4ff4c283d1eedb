"""Reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL2 (axes as attribute or input)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle


def _l2(x: Any, axis: Any, keepdim: bool) -> Any:
    return paddle.sqrt(paddle.sum(x * x, axis=axis, keepdim=keepdim))


REDUCTIONS: dict[str, Callable[..., Any]] = {
    "ReduceMean": paddle.mean, "ReduceSum": paddle.sum, "ReduceMax": paddle.amax, "ReduceMin": paddle.amin,
    "ReduceProd": paddle.prod, "ReduceL2": _l2,
}
AXES_AS_INPUT = {"ReduceSum": 13}  # the others take axes as an input from opset 18


def _reduction(op: str) -> None:
    func = REDUCTIONS[op]

    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        keepdim = bool(attr(node, "keepdims", 1))
        if ctx.opset >= AXES_AS_INPUT.get(op, 18):
            axes = ctx.const_list(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            if len(node.input) > 1 and node.input[1] and axes is None:
                raise NotImplementedError(f"{op} with computed axes is not implemented")
            if not axes and attr(node, "noop_with_empty_axes", 0):
                return fn_of(lambda x: x, [node.input[0]])
        else:
            axes = attr(node, "axes")
        axis = list(axes) if axes else None
        return fn_of(lambda x: func(x, axis=axis, keepdim=keepdim), [node.input[0]])


for _op in REDUCTIONS:
    _reduction(_op)
