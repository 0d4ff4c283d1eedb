"""Shape and indexing ops. Transpose only re-tags the layout; Concat/Split/Slice/Pad/Squeeze keep it."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ....imports import import_tensorflow
from ..context import RUNTIME, BuildContext, RunState, attr, input_or_attr, resolve
from ..registry import converter
from ..values import Value, drop_axes, inverse

tf = import_tensorflow()
INT64_MAX = np.iinfo(np.int64).max


@converter("Transpose", since=1)
def transpose(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    given = attr(node, "perm")

    def run(state: RunState, x: Value) -> Value:
        p = list(given) if given is not None else list(reversed(range(x.rank)))
        p_inv = inverse(p)
        current = x.perm or tuple(range(x.rank))
        return Value(x.t, tuple(p_inv[a] for a in current))

    return run


@converter("Reshape", since=5)
def reshape(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    allowzero = attr(node, "allowzero", 0)
    static = ctx.const_list(node.input[1])

    def run(state: RunState, x: Value, shape: Value) -> Value:
        t = x.logical()
        if static is not None:
            if allowzero or 0 not in static:
                return Value(tf.reshape(t, static))
            dims = tf.shape(t, out_type=tf.int64)
            target = [dims[i] if d == 0 else d for i, d in enumerate(static)]
            return Value(tf.reshape(t, tf.stack([tf.cast(d, tf.int64) for d in target])))
        s = tf.cast(shape.logical(), tf.int64)
        if not allowzero:
            dims = tf.shape(t, out_type=tf.int64)
            index = tf.minimum(tf.range(tf.size(s, out_type=tf.int64)), tf.cast(tf.rank(t), tf.int64) - 1)
            s = tf.where(tf.equal(s, 0), tf.gather(dims, index), s)
        return Value(tf.reshape(t, s))

    return run


@converter("Flatten", since=1)
def flatten(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis", 1)

    def run(state: RunState, x: Value) -> Value:
        t = x.logical()
        a = axis % x.rank if x.rank else 0
        dims = t.shape
        if all(d is not None for d in dims[1:]):
            inner = int(np.prod([int(d) for d in dims[a:]])) if a > 0 else -1
            outer = -1 if a > 0 else 1
            return Value(tf.reshape(t, [outer, inner]))
        shape = tf.shape(t)
        return Value(tf.reshape(t, [tf.reduce_prod(shape[:a]), tf.reduce_prod(shape[a:])]))

    return run


@converter("Shape", since=1)
def shape_(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    start, end = attr(node, "start", 0), attr(node, "end")

    def run(state: RunState, x: Value) -> Value:
        s = x.logical_shape()
        return Value(s[start:end] if (start or end is not None) else s)

    return run


@converter("Size", since=1)
def size(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return lambda state, x: Value(tf.size(x.t, out_type=tf.int64))


@converter("Squeeze", since=1)
def squeeze(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axes = input_or_attr(node, ctx, 1, "axes")

    def run(state: RunState, x: Value, axes_in: Value | None = None) -> Value:
        given = resolve(axes, axes_in, "Squeeze axes")
        if given is None:
            logical = [a for a, d in enumerate(x.static_logical_shape()) if d == 1]
            if None in x.static_logical_shape():
                raise NotImplementedError("Squeeze without axes on a tensor of unknown shape")
        else:
            logical = [a % x.rank for a in given]
        physical = [x.physical_axis(a) for a in logical]
        return Value(tf.squeeze(x.t, physical), drop_axes(x.perm, logical))

    return run


@converter("Unsqueeze", since=1)
def unsqueeze(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axes = input_or_attr(node, ctx, 1, "axes")

    def run(state: RunState, x: Value, axes_in: Value | None = None) -> Value:
        given = resolve(axes, axes_in, "Unsqueeze axes")
        t = x.logical()
        out_rank = x.rank + len(given)
        for a in sorted(a % out_rank for a in given):
            t = tf.expand_dims(t, a)
        return Value(t)

    return run


@converter("Concat", since=1)
def concat(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis")

    def run(state: RunState, *xs: Value) -> Value:
        perm = next((x.perm for x in xs if x.perm is not None), None)
        first = xs[0]
        phys = perm.index(axis % first.rank) if perm is not None else axis % first.rank
        return Value(tf.concat([x.to(perm) for x in xs], axis=phys), perm)

    return run


@converter("Split", since=1)
def split(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis", 0)
    sizes = input_or_attr(node, ctx, 1, "split")
    count = attr(node, "num_outputs", len(node.output))

    def run(state: RunState, x: Value, split_in: Value | None = None) -> tuple[Value, ...]:
        phys = x.physical_axis(axis)
        given = resolve(sizes, split_in, "Split sizes")
        if given is not None:
            parts = tf.split(x.t, given, axis=phys)
        else:
            dim = x.t.shape[phys]
            if dim is not None and dim % count:
                chunk = -(-dim // count)
                parts = tf.split(x.t, [chunk] * (count - 1) + [dim - chunk * (count - 1)], axis=phys)
            else:
                parts = tf.split(x.t, count, axis=phys)
        return tuple(Value(p, x.perm) for p in parts)

    return run


@converter("Slice", since=10)
def slice_(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    static = [ctx.const_list(name) if len(node.input) > i and name else None
              for i, name in enumerate(node.input[1:5], start=1)]

    def run(state: RunState, x: Value, starts: Value, ends: Value, axes: Value | None = None,
            steps: Value | None = None) -> Value:
        s_axes = static[2] if len(static) > 2 and static[2] is not None else None
        s_steps = static[3] if len(static) > 3 and static[3] is not None else None
        if static[0] is not None and static[1] is not None:
            count = len(static[0])
            axes_list = s_axes if s_axes is not None else list(range(count))
            steps_list = s_steps if s_steps is not None else [1] * count
            index: list[Any] = [slice(None)] * x.rank
            for a, b, e, st in zip(axes_list, static[0], static[1], steps_list):
                e_ = None if (st > 0 and e >= INT64_MAX // 2) or (st < 0 and e <= -INT64_MAX // 2) else e
                index[x.physical_axis(a)] = slice(b, e_, st)
            return Value(x.t[tuple(index)], x.perm)
        if s_axes is None and axes is not None:
            s_axes = resolve(RUNTIME, axes, "Slice axes")
        t = x.logical()
        count = len(s_axes) if s_axes is not None else int(starts.t.shape[0])
        axes_list = [a % x.rank for a in (s_axes or range(count))]
        begin = [tf.zeros([], tf.int64)] * x.rank
        end = [tf.zeros([], tf.int64)] * x.rank
        stride = [tf.ones([], tf.int64)] * x.rank
        mask = (1 << x.rank) - 1
        b_t, e_t = tf.cast(starts.logical(), tf.int64), tf.cast(ends.logical(), tf.int64)
        st_t = tf.cast(steps.logical(), tf.int64) if steps is not None else tf.ones([count], tf.int64)
        for i, a in enumerate(axes_list):
            begin[a], end[a], stride[a] = b_t[i], e_t[i], st_t[i]
            mask &= ~(1 << a)
        return Value(tf.strided_slice(t, tf.stack(begin), tf.stack(end), tf.stack(stride),
                                      begin_mask=mask, end_mask=mask))

    return run


@converter("Gather", since=1)
def gather(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis", 0)
    static = ctx.const(node.input[1])

    def run(state: RunState, data: Value, indices: Value) -> Value:
        t = data.logical()
        a = axis % data.rank
        if static is not None:
            idx = np.where(static < 0, static + (t.shape[a] or 0), static) if t.shape[a] else static
            return Value(tf.gather(t, idx, axis=a))
        i = indices.logical()
        dim = tf.cast(tf.shape(t)[a], i.dtype)
        i = tf.where(i < 0, i + dim, i)
        return Value(tf.gather(t, i, axis=a))

    return run


@converter("Expand", since=8)
def expand(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, x: Value, shape: Value) -> Value:
        t = x.logical()
        target = tf.broadcast_dynamic_shape(tf.shape(t, out_type=tf.int64), tf.cast(shape.logical(), tf.int64))
        return Value(tf.broadcast_to(t, target))

    return run


@converter("Tile", since=6)
def tile(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    return lambda state, x, reps: Value(tf.tile(x.logical(), tf.cast(reps.logical(), tf.int64)))


@converter("ConstantOfShape", since=9)
def constant_of_shape(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    value = attr(node, "value")
    fill = np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0)
    dtype = tf.as_dtype(np.asarray(fill).dtype)

    def run(state: RunState, shape: Value) -> Value:
        return Value(tf.fill(tf.cast(shape.logical(), tf.int64), tf.constant(fill, dtype)))

    return run


@converter("Range", since=11)
def range_(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, start: Value, limit: Value, delta: Value) -> Value:
        return Value(tf.range(start.logical(), limit.logical(), delta.logical()))

    return run


@converter("Pad", since=2)
def pad(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    mode = attr(node, "mode", "constant")
    pads = input_or_attr(node, ctx, 1, "pads")
    axes = input_or_attr(node, ctx, 3, "axes")
    fill_attr = attr(node, "value", 0.0)
    if pads is None:
        raise NotImplementedError("Pad without pads")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NotImplementedError(f"Pad mode {mode!r}")

    def run(state: RunState, x: Value, pads_in: Value | None = None, value: Value | None = None,
            axes_in: Value | None = None) -> Value:
        pads_now = resolve(pads, pads_in, "Pad pads")
        axes_now = resolve(axes, axes_in, "Pad axes")
        rank = x.rank
        which = [a % rank for a in axes_now] if axes_now is not None else list(range(rank))
        half = len(pads_now) // 2
        logical = [[0, 0] for _ in range(rank)]
        for i, a in enumerate(which):
            logical[a] = [pads_now[i], pads_now[i + half]]
        physical = [logical[x.perm[j]] if x.perm else logical[j] for j in range(rank)]
        t = x.t
        if any(p < 0 for pair in physical for p in pair):  # negative pads crop
            t = t[tuple(slice(-b if b < 0 else None, e if e < 0 else None) for b, e in physical)]
            physical = [[max(b, 0), max(e, 0)] for b, e in physical]
        fill = tf.reshape(value.logical(), []) if value is not None else fill_attr
        if mode == "constant":
            return Value(tf.pad(t, physical, constant_values=tf.cast(fill, t.dtype)), x.perm)
        if mode == "reflect":
            return Value(tf.pad(t, physical, mode="REFLECT"), x.perm)
        return Value(_pad_by_index(t, physical, mode), x.perm)

    return run


def _pad_by_index(t: Any, pads: list[list[int]], mode: str) -> Any:
    """Edge (repeat the border) or wrap (circular) padding, one axis at a time by gathering indices."""
    for axis, (b, e) in enumerate(pads):
        if not b and not e:
            continue
        n = t.shape[axis]
        if n is None:
            raise NotImplementedError(f"Pad mode {mode!r} on an axis of unknown size")
        index = np.arange(-b, int(n) + e)
        index = np.clip(index, 0, int(n) - 1) if mode == "edge" else index % int(n)
        t = tf.gather(t, index, axis=axis)
    return t


@converter("GatherElements", since=11)
def gather_elements(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    axis = attr(node, "axis", 0)

    def run(state: RunState, data: Value, indices: Value) -> Value:
        t, i = data.logical(), tf.cast(indices.logical(), tf.int64)
        a = axis % data.rank
        i = tf.where(i < 0, i + tf.shape(t, out_type=tf.int64)[a], i)
        shape = tf.shape(i, out_type=tf.int64)
        coords = tf.meshgrid(*[tf.range(shape[d]) for d in range(indices.rank)], indexing="ij")
        coords[a] = i
        return Value(tf.gather_nd(t, tf.stack(coords, axis=-1)))

    return run


@converter("GatherND", since=11)
def gather_nd(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    batch_dims = attr(node, "batch_dims", 0)

    def run(state: RunState, data: Value, indices: Value) -> Value:
        return Value(tf.gather_nd(data.logical(), tf.cast(indices.logical(), tf.int64), batch_dims=batch_dims))

    return run
