"""Pad (constant, reflect, edge, wrap; negative pads crop) and CenterCropPad, built from slices and concats so
that every mode works on every rank and dtype exactly as ONNX defines it."""

from __future__ import annotations

from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle, to_ints


def _take(x: Any, axis: int, start: int | None, stop: int | None, step: int = 1) -> Any:
    index: list[Any] = [slice(None)] * x.ndim
    index[axis] = slice(start, stop, step)
    return x[tuple(index)]


def _pad_axis(x: Any, axis: int, before: int, after: int, mode: str, value: Any) -> Any:
    n = x.shape[axis]
    if before < 0:
        x, n, before = _take(x, axis, -before, None), n + before, 0
    if after < 0:
        x, n, after = _take(x, axis, 0, n + after), n + after, 0
    if not before and not after:
        return x
    parts = []
    for count, at_start in ((before, True), (after, False)):
        if not count:
            parts.append(None)
            continue
        if mode == "constant":
            shape = list(x.shape)
            shape[axis] = count
            part = paddle.full(shape, 0, dtype=x.dtype) + value.astype(x.dtype).reshape([])
        elif mode == "edge":
            edge = _take(x, axis, 0, 1) if at_start else _take(x, axis, n - 1, n)
            part = paddle.concat([edge] * count, axis=axis)
        elif mode == "reflect":
            if count >= n:
                raise NotImplementedError(f"reflect padding of {count} on an axis of length {n}")
            part = _take(x, axis, count, 0, -1) if at_start else _take(x, axis, n - 2, n - 2 - count if count < n - 1 else None, -1)
        else:  # wrap
            if count > n:
                raise NotImplementedError(f"wrap padding of {count} on an axis of length {n}")
            part = _take(x, axis, n - count, n) if at_start else _take(x, axis, 0, count)
        parts.append(part)
    pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
    return paddle.concat(pieces, axis=axis)


@converter("Pad", since=1)
def convert_pad(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    mode = attr(node, "mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NotImplementedError(f"Pad mode {mode!r} is not implemented")
    if ctx.opset < 11:
        pads_attr = [int(p) for p in attr(node, "pads", attr(node, "paddings", []))]
        fill = float(attr(node, "value", 0.0))

        def pad_legacy(x: Any) -> Any:
            return _pad(x, pads_attr, paddle.to_tensor(fill), None, mode)

        return fn_of(pad_legacy, [node.input[0]])
    names = [node.input[i] if len(node.input) > i else "" for i in (1, 2, 3)]

    def pad(x: Any, pads: Any, value: Any = None, axes: Any = None) -> Any:
        fill = value if value is not None else paddle.zeros([], dtype=x.dtype)
        return _pad(x, to_ints(pads), fill, to_ints(axes) if axes is not None else None, mode)

    return fn_of(pad, [node.input[0], *names])


def _pad(x: Any, pads: list[int], value: Any, axes: list[int] | None, mode: str) -> Any:
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    for i, a in enumerate(axes):
        x = _pad_axis(x, a, pads[i], pads[i + len(axes)], mode, value)
    return x


@converter("CenterCropPad", since=18)
def convert_center_crop_pad(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axes_attr = attr(node, "axes")

    def center_crop_pad(x: Any, shape: Any) -> Any:
        sizes = to_ints(shape)
        axes = [a % x.ndim for a in axes_attr] if axes_attr is not None else list(range(x.ndim))
        zero = paddle.zeros([], dtype=x.dtype)
        for a, size in zip(axes, sizes):
            n = x.shape[a]
            if size < n:  # crop: the extra element goes to the end
                start = (n - size) // 2
                x = _take(x, a, start, start + size)
            elif size > n:  # pad with zeros: the extra element goes to the end
                before = (size - n) // 2
                x = _pad_axis(x, a, before, size - n - before, "constant", zero)
        return x

    return fn_of(center_crop_pad, node.input[:2])
