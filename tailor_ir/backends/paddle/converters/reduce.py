"""Reductions: ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare (axes as attribute or as a constant or
computed input), ArgMax/ArgMin, CumSum/CumProd. Results keep the input's dtype (paddle sums int32 to int64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle, to_ints


def _l2(x: Any, axis: Any, keepdim: bool) -> Any:
    return paddle.sqrt(paddle.sum(x * x, axis=axis, keepdim=keepdim))


REDUCTIONS: dict[str, Callable[..., Any]] = {
    "ReduceMean": paddle.mean, "ReduceSum": paddle.sum, "ReduceMax": paddle.amax, "ReduceMin": paddle.amin,
    "ReduceProd": paddle.prod, "ReduceL2": _l2,
    "ReduceL1": lambda x, axis, keepdim: paddle.sum(paddle.abs(x), axis=axis, keepdim=keepdim),
    "ReduceSumSquare": lambda x, axis, keepdim: paddle.sum(x * x, axis=axis, keepdim=keepdim),
    "ReduceLogSum": lambda x, axis, keepdim: paddle.log(paddle.sum(x, axis=axis, keepdim=keepdim)),
    "ReduceLogSumExp": paddle.logsumexp,
}
# the value of a reduction over no elements ("inf" / "-inf": the dtype's extreme for integers and bools)
EMPTY = {"ReduceMean": float("nan"), "ReduceProd": 1, "ReduceMax": "-inf", "ReduceMin": "inf",
         "ReduceLogSum": float("-inf"), "ReduceLogSumExp": float("-inf")}
AXES_AS_INPUT = {"ReduceSum": 13}  # the others take axes as an input from opset 18


class _Reduce:
    """One reduction over constant axes (None: every axis), or over axes fed at run time."""

    def __init__(self, func: Callable[..., Any], axes: list[int] | None, keepdim: bool, noop_if_empty: bool,
                 empty: Any = 0) -> None:
        self.func, self.axes, self.keepdim, self.noop_if_empty = func, axes, keepdim, noop_if_empty
        self.empty = empty

    def __call__(self, x: Any, axes: Any = None) -> Any:
        axis = self.axes if axes is None else to_ints(axes)
        if not axis:
            if self.noop_if_empty:
                return x
            axis = None
        if x.size == 0:
            return self._of_nothing(x, axis)
        out = self.func(x, axis=axis, keepdim=self.keepdim)
        return out if out.dtype == x.dtype else out.astype(x.dtype)


    def _of_nothing(self, x: Any, axis: list[int] | None) -> Any:
        reduced = {a % x.ndim for a in axis} if axis is not None else set(range(x.ndim))
        shape = [1 if i in reduced else d for i, d in enumerate(x.shape) if self.keepdim or i not in reduced]
        fill = self.empty
        if isinstance(fill, str):
            dtype = x.numpy().dtype
            info = np.iinfo(dtype) if dtype.kind in "iu" else None
            if dtype == np.bool_:
                fill = fill == "inf"
            elif info is not None:
                fill = info.max if fill == "inf" else info.min
            else:
                fill = float(fill)
        return paddle.full(shape, fill, dtype=x.dtype)


def _reduction(op: str) -> None:
    func = REDUCTIONS[op]

    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        keepdim = bool(attr(node, "keepdims", 1))
        noop = bool(attr(node, "noop_with_empty_axes", 0))
        if ctx.opset >= AXES_AS_INPUT.get(op, 18):
            name = node.input[1] if len(node.input) > 1 else ""
            axes = ctx.const_list(name) if name else []
            if name and axes is None:
                return fn_of(_Reduce(func, None, keepdim, noop, EMPTY.get(op, 0)), node.input[:2])
        else:
            axes = list(attr(node, "axes", []) or [])
            noop = False
        return fn_of(_Reduce(func, axes, keepdim, noop, EMPTY.get(op, 0)), [node.input[0]])


for _op in REDUCTIONS:
    _reduction(_op)


def _arg(op: str, func: Callable[..., Any]) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        axis, keepdim = int(attr(node, "axis", 0)), bool(attr(node, "keepdims", 1))
        last = bool(attr(node, "select_last_index", 0))

        def arg(x: Any) -> Any:
            if not last:
                return func(x, axis=axis, keepdim=keepdim)
            flipped = func(paddle.flip(x, [axis]), axis=axis, keepdim=keepdim)
            return x.shape[axis] - 1 - flipped

        return fn_of(arg, [node.input[0]])


_arg("ArgMax", paddle.argmax)
_arg("ArgMin", paddle.argmin)


def _cumulative(op: str, func: Callable[..., Any], identity: int) -> None:
    @converter(op, since=11)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        exclusive, reverse = bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))

        def cumulative(x: Any, axis: Any) -> Any:
            a = to_ints(axis)[0]
            a = a if a >= 0 else a + x.ndim
            y = paddle.flip(x, [a]) if reverse else x
            if exclusive:  # shift by one along the axis, the identity first
                first = paddle.full([*y.shape[:a], 1, *y.shape[a + 1:]], identity, dtype=y.dtype)
                y = paddle.concat([first, y[tuple([slice(None)] * a + [slice(0, -1)])]], axis=a)
            out = func(y, a)
            out = out if out.dtype == x.dtype else out.astype(x.dtype)
            return paddle.flip(out, [a]) if reverse else out

        return fn_of(cumulative, node.input[:2])


_cumulative("CumSum", paddle.cumsum, 0)
_cumulative("CumProd", paddle.cumprod, 1)
