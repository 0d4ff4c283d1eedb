"""Scatter/gather-like and rearranging ops on logical (ONNX-ordered) tensors: ScatterND, ScatterElements,
DepthToSpace, SpaceToDepth, Compress, NonZero, EyeLike, ReverseSequence."""

from __future__ import annotations

from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()

_SCATTER = {
    "none": tf.tensor_scatter_nd_update,
    "add": tf.tensor_scatter_nd_add,
    "max": tf.tensor_scatter_nd_max,
    "min": tf.tensor_scatter_nd_min,
}


def _scatter_fn(node: onnx.NodeProto) -> Any:
    reduction = attr(node, "reduction", "none")
    if reduction not in _SCATTER:
        raise NotImplementedError(f"scatter reduction {reduction!r}")
    return _SCATTER[reduction]


@converter("ScatterND", since=11)
def scatter_nd(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    fn = _scatter_fn(node)

    def run(state: RunState, data: Value, indices: Value, updates: Value) -> Value:
        t = data.logical()
        i = tf.cast(indices.logical(), tf.int64)
        depth = i.shape[-1]
        dims = tf.shape(t, out_type=tf.int64)[:depth]
        i = tf.where(i < 0, i + dims, i)
        return Value(fn(t, i, updates.logical()))

    return run


def _scatter_elements(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    fn = _scatter_fn(node)
    axis = attr(node, "axis", 0)

    def run(state: RunState, data: Value, indices: Value, updates: Value) -> Value:
        t = data.logical()
        i = tf.cast(indices.logical(), tf.int64)
        a = axis % data.rank
        i = tf.where(i < 0, i + tf.shape(t, out_type=tf.int64)[a], i)
        shape = tf.shape(i, out_type=tf.int64)
        coords = tf.meshgrid(*[tf.range(shape[d]) for d in range(indices.rank)], indexing="ij")
        coords[a] = i
        return Value(fn(t, tf.stack(coords, axis=-1), updates.logical()))

    return run


converter("ScatterElements", since=11)(_scatter_elements)
converter("Scatter", since=9)(_scatter_elements)


@converter("DepthToSpace", since=1)
def depth_to_space(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    bs, mode = attr(node, "blocksize"), attr(node, "mode", "DCR")

    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        n, c, h, w = tf.unstack(tf.shape(t))
        if mode == "DCR":
            y = tf.reshape(t, tf.stack([n, bs, bs, c // (bs * bs), h, w]))
            y = tf.transpose(y, [0, 3, 4, 1, 5, 2])
        else:
            y = tf.reshape(t, tf.stack([n, c // (bs * bs), bs, bs, h, w]))
            y = tf.transpose(y, [0, 1, 4, 2, 5, 3])
        return Value(tf.reshape(y, tf.stack([n, c // (bs * bs), h * bs, w * bs])))

    return run


@converter("SpaceToDepth", since=1)
def space_to_depth(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    bs, mode = attr(node, "blocksize"), attr(node, "mode", "DCR")
    order = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]

    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        n, c, h, w = tf.unstack(tf.shape(t))
        y = tf.reshape(t, tf.stack([n, c, h // bs, bs, w // bs, bs]))
        y = tf.transpose(y, order)
        return Value(tf.reshape(y, tf.stack([n, c * bs * bs, h // bs, w // bs])))

    return run


@converter("Compress", since=9)
def compress(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis")

    def run(state: RunState, x: Value, condition: Value) -> Value:
        t = x.logical()
        if axis is None:
            t, a = tf.reshape(t, [-1]), 0
        else:
            a = axis % x.rank
        n = tf.shape(t)[a]
        cond = tf.cast(condition.logical(), tf.bool)[:n]
        cond = tf.concat([cond, tf.zeros([n - tf.shape(cond)[0]], tf.bool)], 0)  # a short condition drops the rest
        return Value(tf.boolean_mask(t, cond, axis=a))

    return run


@converter("NonZero", since=9)
def non_zero(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        return Value(tf.transpose(tf.where(tf.not_equal(t, tf.zeros([], t.dtype)))))

    return run


@converter("EyeLike", since=9)
def eye_like(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    k, dtype = attr(node, "k", 0), attr(node, "dtype")

    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        out_dtype = tf.as_dtype(onnx.helper.tensor_dtype_to_np_dtype(dtype)) if dtype is not None else t.dtype
        shape = tf.shape(t, out_type=tf.int64)
        rows, cols = tf.range(shape[0])[:, None], tf.range(shape[1])[None, :]
        return Value(tf.cast(tf.equal(cols - rows, k), out_dtype))

    return run


@converter("ReverseSequence", since=10)
def reverse_sequence(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    batch_axis, time_axis = attr(node, "batch_axis", 1), attr(node, "time_axis", 0)

    def run(state: RunState, x: Value, lengths: Value) -> Value:
        return Value(tf.reverse_sequence(x.logical(), tf.cast(lengths.logical(), tf.int64), seq_axis=time_axis,
                                         batch_axis=batch_axis))

    return run
