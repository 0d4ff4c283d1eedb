"""Indexing ops: GatherElements, GatherND, ScatterElements, ScatterND, TopK, OneHot, Trilu, NonZero, Compress,
EyeLike, Size (ONNX index rules: negative indices count from the end)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle, paddle_dtype, to_ints


def _wrap(index: Any, size: int) -> Any:
    index = index.astype("int64")
    return paddle.where(index < 0, index + size, index)


def _positions(shape: list[int], index: Any, axis: int) -> Any:
    """Flat positions in a tensor of ``shape`` addressed by ``index`` along ``axis`` (every other coordinate
    its own position in ``index``, which may be smaller than ``shape`` there, as ONNX allows)."""
    strides = np.cumprod([1, *shape[::-1]])[:-1][::-1]
    pos = _wrap(index, shape[axis]) * int(strides[axis])
    for d, size in enumerate(index.shape):
        if d != axis:
            view = [1] * index.ndim
            view[d] = size
            pos = pos + paddle.arange(size, dtype="int64").reshape(view) * int(strides[d])
    return pos.reshape([-1])


@converter("GatherElements", since=11)
def convert_gather_elements(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", 0))

    def gather_elements(x: Any, index: Any) -> Any:
        pos = _positions(list(x.shape), index, axis % x.ndim)
        return paddle.gather(x.reshape([-1]), pos).reshape(index.shape)

    return fn_of(gather_elements, node.input[:2])


REDUCE = {"none": "assign", "add": "add", "mul": "mul", "max": "amax", "min": "amin"}


@converter("ScatterElements", since=11)
def convert_scatter_elements(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", 0))
    reduce = REDUCE[attr(node, "reduction", "none")]

    def scatter_elements(x: Any, index: Any, updates: Any) -> Any:
        pos = _positions(list(x.shape), index, axis % x.ndim)
        flat = paddle.put_along_axis(x.reshape([-1]), pos, updates.reshape([-1]), 0, reduce=reduce, broadcast=False)
        return flat.reshape(x.shape)

    return fn_of(scatter_elements, node.input[:3])


@converter("GatherND", since=11)
def convert_gather_nd(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    batch_dims = int(attr(node, "batch_dims", 0))

    def gather_nd(x: Any, index: Any) -> Any:
        depth = index.shape[-1]
        sizes = paddle.to_tensor(np.array(x.shape[batch_dims:batch_dims + depth], np.int64))
        index = _wrap(index, sizes) if depth else index.astype("int64")
        if not batch_dims:
            return paddle.gather_nd(x, index)
        lead = x.shape[:batch_dims]
        flat = x.reshape([-1, *x.shape[batch_dims:]])
        idx = index.reshape([int(np.prod(lead)), -1, depth])
        outs = [paddle.gather_nd(flat[b], idx[b]) for b in range(flat.shape[0])]
        out = paddle.stack(outs)
        return out.reshape([*index.shape[:-1], *out.shape[2:]])

    return fn_of(gather_nd, node.input[:2])


@converter("ScatterND", since=11)
def convert_scatter_nd(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    reduction = attr(node, "reduction", "none")
    if reduction not in ("none", "add"):
        raise NotImplementedError(f"ScatterND with reduction={reduction!r} is not implemented")

    def scatter_nd(x: Any, index: Any, updates: Any) -> Any:
        sizes = paddle.to_tensor(np.array(x.shape[: index.shape[-1]], np.int64))
        index = _wrap(index, sizes)
        if reduction == "none":  # clear the targeted elements, then add
            hit = paddle.scatter_nd_add(paddle.zeros(x.shape, "int32"), index, paddle.ones(updates.shape, "int32"))
            x = paddle.where(hit > 0, paddle.zeros_like(x), x)
        return paddle.scatter_nd_add(x, index, updates)

    return fn_of(scatter_nd, node.input[:3])


@converter("TopK", since=10)
def convert_topk(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", -1))
    largest, ordered = bool(attr(node, "largest", 1)), bool(attr(node, "sorted", 1))
    if not ordered:
        raise NotImplementedError("TopK with sorted=0 is not implemented (its order is unspecified)")

    def topk(x: Any, k: Any) -> Any:
        count = to_ints(k)[0]
        a = axis % x.ndim
        # a stable sort keeps ties in index order, as ONNX requires (paddle.topk does not promise it)
        indices = paddle.argsort(x, axis=a, descending=largest, stable=True)
        indices = indices[tuple([slice(None)] * a + [slice(0, count)])]
        return paddle.take_along_axis(x, indices, a, broadcast=False), indices

    return fn_of(topk, node.input[:2])


@converter("OneHot", since=9)
def convert_one_hot(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = int(attr(node, "axis", -1))

    def one_hot(indices: Any, depth: Any, values: Any) -> Any:
        n = int(np.asarray(depth.numpy()).reshape(-1)[0])
        a = axis if axis >= 0 else indices.ndim + 1 + axis
        idx = indices.astype("int64")
        idx = paddle.where(idx < 0, idx + n, idx).unsqueeze(a)
        shape = [1] * (indices.ndim + 1)
        shape[a] = n
        hot = idx == paddle.arange(n, dtype="int64").reshape(shape)
        return paddle.where(hot, values[1], values[0])

    return fn_of(one_hot, node.input[:3])


@converter("Trilu", since=14)
def convert_trilu(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    func = paddle.triu if attr(node, "upper", 1) else paddle.tril

    def trilu(x: Any, k: Any = None) -> Any:
        diagonal = to_ints(k)[0] if k is not None else 0
        if x.size == 0:
            return x
        if x.dtype == paddle.bool:
            return func(x.astype("int32"), diagonal).astype("bool")
        return func(x, diagonal)

    return fn_of(trilu, [i for i in node.input[:2] if i])


@converter("NonZero", since=9)
def convert_non_zero(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def non_zero(x: Any) -> Any:
        return paddle.nonzero(x).transpose([1, 0]).astype("int64")

    return fn_of(non_zero, [node.input[0]])


@converter("Compress", since=9)
def convert_compress(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis = attr(node, "axis")

    def compress(x: Any, condition: Any) -> Any:
        data = x.reshape([-1]) if axis is None else x
        a = 0 if axis is None else axis % x.ndim
        keep = paddle.nonzero(condition.astype("bool")).reshape([-1])
        keep = keep[keep < data.shape[a]]
        return paddle.index_select(data, keep, axis=a)

    return fn_of(compress, node.input[:2])


@converter("EyeLike", since=9)
def convert_eye_like(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    k, to = int(attr(node, "k", 0)), attr(node, "dtype")

    def eye_like(x: Any) -> Any:
        dtype = paddle_dtype(int(to)) if to is not None else x.dtype
        rows, cols = x.shape
        eye = np.eye(rows, cols, k, dtype=np.int64)
        return paddle.to_tensor(eye).astype(dtype)

    return fn_of(eye_like, [node.input[0]])


@converter("Size", since=1)
def convert_size(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(lambda x: paddle.to_tensor(int(np.prod(x.shape)), dtype="int64"), [node.input[0]])


@converter("Unique", since=11)
def convert_unique(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """(values, first indices, inverse indices, counts); sorted=0 keeps the order of first occurrence."""
    axis, ordered = attr(node, "axis"), bool(attr(node, "sorted", 1))
    count = len(node.output)

    def unique(x: Any) -> Any:
        values, first, inverse, counts = paddle.unique(
            x, return_index=True, return_inverse=True, return_counts=True, axis=axis, dtype="int64"
        )
        if not ordered:
            order = paddle.argsort(first)
            rank = paddle.argsort(order)
            values = paddle.index_select(values, order, axis=0 if axis is None else axis)
            first, counts = paddle.gather(first, order), paddle.gather(counts, order)
            inverse = paddle.gather(rank, inverse.reshape([-1]))
        return (values, first, inverse.reshape([-1]), counts)[:count] if count > 1 else values

    return fn_of(unique, [node.input[0]])
