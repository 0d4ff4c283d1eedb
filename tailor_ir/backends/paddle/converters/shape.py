"""Shape plumbing: Shape, Gather (a real Embedding on a weight table), Concat, (Un)Squeeze, Reshape,
Transpose, Flatten, Slice, Expand, Range, ConstantOfShape, Cast, Tile, Split."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..context import BuildContext, Converted, attr, fn_of, layer_of
from ..registry import converter
from ._common import INT_MAX, paddle, paddle_dtype, to_ints, zero_init


@converter("Shape", since=1)
def convert_shape(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    start, end = attr(node, "start", 0), attr(node, "end", None)

    def shape(x: Any) -> Any:
        return paddle.shape(x).astype("int64")[start:end]

    return fn_of(shape, [node.input[0]])


class _Take:
    """ONNX Gather along ``axis`` (any index rank, negative indices) with paddle ops."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def __call__(self, data: Any, index: Any) -> Any:
        axis = self.axis if self.axis >= 0 else data.ndim + self.axis
        size = data.shape[axis]
        index = paddle.where(index < 0, index + size, index)
        if index.ndim == 0:
            return paddle.gather(data, index.reshape([1]), axis=axis).squeeze(axis)
        out = paddle.gather(data, index.reshape([-1]), axis=axis)
        return out.reshape([*data.shape[:axis], *index.shape, *data.shape[axis + 1 :]])


@converter("Gather", since=1)
def convert_gather(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    data, index = node.input[0], node.input[1]
    axis = int(attr(node, "axis", 0))
    if ctx.is_param(data) and axis == 0 and ctx.rank(data) == 2 and ctx.const(index) is None:
        rows, dim = (int(d) for d in ctx.shape(data))
        layer = paddle.nn.Embedding(rows, dim, weight_attr=zero_init())
        layer.weight = ctx.param(data)
        return layer_of(layer, [index])
    return fn_of(_Take(axis), [data, index])


@converter("Concat", since=1)
def convert_concat(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis"))
    return fn_of(lambda *xs: paddle.concat(list(xs), axis=axis), [i for i in node.input if i])


def _axes(node: onnx.NodeProto, ctx: BuildContext) -> tuple[list[int] | None, list[str]]:
    """Axes from the attribute (old opsets) or the constant second input (opset 13+); or None and the input
    that feeds them at run time."""
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const_list(node.input[1])
        if axes is None:
            return None, [node.input[1]]
    return (None if axes is None else [int(a) for a in axes]), []


@converter("Unsqueeze", since=1)
def convert_unsqueeze(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    const, dynamic = _axes(node, ctx)

    def unsqueeze(x: Any, fed: Any = None) -> Any:
        axes = const or (to_ints(fed) if fed is not None else [])
        rank = x.ndim + len(axes)
        for a in sorted(a if a >= 0 else a + rank for a in axes):
            x = paddle.unsqueeze(x, a)
        return x

    return fn_of(unsqueeze, [node.input[0], *dynamic])


@converter("Squeeze", since=1)
def convert_squeeze(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    const, dynamic = _axes(node, ctx)

    def squeeze(x: Any, fed: Any = None) -> Any:
        axes = const if fed is None else to_ints(fed)
        if axes is None:
            return paddle.squeeze(x)
        return paddle.squeeze(x, axis=[a if a >= 0 else a + x.ndim for a in axes]) if x.ndim else x

    return fn_of(squeeze, [node.input[0], *dynamic])


@converter("Reshape", since=5)
def convert_reshape(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    target = ctx.const_list(node.input[1])
    allow_zero = bool(attr(node, "allowzero", 0))
    if allow_zero and target is not None and 0 in target:
        raise NotImplementedError("Reshape with allowzero=1 and a zero dimension is not implemented")
    if target is not None:
        return fn_of(lambda x: paddle.reshape(x, target), [node.input[0]])
    return fn_of(lambda x, s: paddle.reshape(x, to_ints(s)), node.input[:2])


@converter("Transpose", since=1)
def convert_transpose(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    perm = attr(node, "perm")

    def transpose(x: Any) -> Any:
        return paddle.transpose(x, list(perm) if perm is not None else list(range(x.ndim))[::-1])

    return fn_of(transpose, [node.input[0]])


@converter("Flatten", since=1)
def convert_flatten(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", 1))

    def flatten(x: Any) -> Any:
        start = axis if axis >= 0 else x.ndim + axis
        lead = int(np.prod(x.shape[:start])) if start else 1
        return paddle.reshape(x, [lead, -1])

    return fn_of(flatten, [node.input[0]])


def _slice_bound(value: int, step: int) -> int | None:
    if value >= INT_MAX or (step < 0 and value <= -INT_MAX):
        return None
    return value


class _Slice:
    """ONNX Slice with constant or run-time starts/ends/axes/steps, as Python slicing of a paddle tensor."""

    def __init__(self, consts: list[list[int] | None], fed: list[bool]) -> None:
        self.consts = consts
        self.fed = fed  # which of starts/ends/axes/steps come in at run time

    def __call__(self, x: Any, *dynamic: Any) -> Any:
        values = list(self.consts)
        it = iter(dynamic)
        for i, v in enumerate(values):
            if v is None and (i < 2 or self.fed[i]):
                values[i] = to_ints(next(it))
        starts, ends, axes, steps = values
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        index: list[Any] = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[a if a >= 0 else a + x.ndim] = slice(_slice_bound(s, -st) if s <= -INT_MAX else s,
                                                      _slice_bound(e, st), st)
        return x[tuple(index)]


@converter("Slice", since=1, until=9)
def convert_slice_attributes(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    consts = [attr(node, "starts"), attr(node, "ends"), attr(node, "axes"), None]
    consts = [None if c is None else [int(v) for v in c] for c in consts]
    return fn_of(_Slice(consts, [False] * 4), [node.input[0]])


@converter("Slice", since=10)
def convert_slice(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    names = list(node.input[1:]) + [""] * (5 - len(node.input))
    consts = [ctx.const_list(n) if n else None for n in names]
    fed = [bool(n) and c is None for n, c in zip(names, consts)]
    return fn_of(_Slice(consts, fed), [node.input[0], *(n for n, f in zip(names, fed) if f)])


@converter("Expand", since=8)
def convert_expand(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    target = ctx.const_list(node.input[1])

    def expand(x: Any, shape: Any = None) -> Any:
        dims = target if target is not None else to_ints(shape)
        return paddle.broadcast_to(x, list(np.broadcast_shapes(tuple(x.shape), tuple(dims))))

    return fn_of(expand, node.input[:1] if target is not None else node.input[:2])


@converter("Tile", since=6)
def convert_tile(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(lambda x, r: paddle.tile(x, to_ints(r)), node.input[:2])


@converter("Range", since=11)
def convert_range(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def arange(start: Any, limit: Any, delta: Any) -> Any:
        return paddle.arange(start.reshape([]), limit.reshape([]), delta.reshape([]), dtype=start.dtype)

    return fn_of(arange, node.input[:3])


@converter("ConstantOfShape", since=9)
def convert_constant_of_shape(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    value = attr(node, "value")
    array = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    fill, dtype = array.reshape(-1)[0].item(), str(array.dtype)
    return fn_of(lambda shape: paddle.full(to_ints(shape), fill, dtype=dtype), [node.input[0]])


@converter("Cast", since=6)
def convert_cast(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    dtype = paddle_dtype(int(attr(node, "to")))
    return fn_of(lambda x: x.astype(dtype), [node.input[0]])


@converter("CastLike", since=15)
def convert_cast_like(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(lambda x, like: x.astype(like.dtype), node.input[:2])


@converter("Split", since=1)
def convert_split(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", 0))
    if ctx.opset < 13:
        sizes = [int(v) for v in attr(node, "split", [])] or None
    else:
        sizes = ctx.const_list(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    count = len(node.output)
    if len(node.input) > 1 and node.input[1] and sizes is None:
        return fn_of(lambda x, s: tuple(paddle.split(x, to_ints(s), axis=axis)), node.input[:2])

    def split(x: Any) -> Any:
        if sizes:
            return tuple(paddle.split(x, sizes, axis=axis))
        length = x.shape[axis]
        chunk = -(-length // count)  # ONNX: equal parts, the last one smaller when uneven
        return tuple(paddle.split(x, [chunk] * (count - 1) + [length - chunk * (count - 1)], axis=axis))

    return fn_of(split, [node.input[0]])


@converter("Constant", since=1)
def convert_constant(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Constants are folded by the pre-pass; this covers one the folder left (its value is a build constant)."""
    value = ctx.const(node.output[0])
    if value is None:
        raise NotImplementedError("a Constant the pre-pass could not evaluate")
    tensor = paddle.to_tensor(value)
    return fn_of(lambda: tensor, [])
