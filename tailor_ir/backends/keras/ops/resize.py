"""Resize (and the older Upsample): separable interpolation, one axis at a time.

For each resized axis the source positions and the weights of the neighbours they read are computed once in
numpy from the shapes alone (float64, as ONNX's reference computes them), and applied as a ``tf.gather`` of the
neighbours and a weighted sum: nearest (every ``nearest_mode``), linear and cubic (``cubic_coeff_a``,
``exclude_outside``), every ``coordinate_transformation_mode``, ``axes``, ``keep_aspect_ratio_policy`` and the
``tf_crop_and_resize`` extrapolation. Anti-aliased downsampling is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from ....imports import import_tensorflow
from ...resize_coordinates import source_coordinates
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()


def _coefficients(kind: str, ratio: float, nearest: str, a: float) -> list[float]:
    if kind == "nearest":
        if ratio == 1:
            return [0.0, 1.0]
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False, "ceil": True}
        if nearest not in up:
            raise NotImplementedError(f"nearest_mode {nearest!r}")
        return [0.0, 1.0] if up[nearest] else [1.0, 0.0]
    if kind == "linear":
        return [1 - ratio, ratio]
    r = ratio
    return [
        ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
        ((a + 2) * r - (a + 3)) * r * r + 1,
        ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
        ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a,
    ]


def axis_weights(kind: str, coord: str, n: int, out: int, scale: float, roi: tuple[float, float] | None,
                 nearest: str, a: float, exclude_outside: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """(neighbour indices (out, taps), weights (out, taps), extrapolated mask or None) along one axis."""
    x, outside = source_coordinates(coord, n, out, scale, roi)
    floor = np.floor(x)
    ratios = np.where(x == floor, 1.0, x - floor)
    weights = np.array([_coefficients(kind, float(r), nearest, a) for r in ratios]).reshape(out, -1)
    taps = weights.shape[1]
    pad = math.ceil(taps / 2)
    padded = x + pad
    p = np.floor(padded).astype(np.int64)
    frac = padded - p
    if taps % 2 == 0:
        start = p + np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        start = p + np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    index = start[:, None] + np.arange(taps)[None, :] - pad
    if exclude_outside:
        weights = np.where((index < 0) | (index >= n), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, n - 1), weights, outside


def _resize(t: Any, sizes: list[int], scales: list[float], roi: list[float] | None, kind: str, coord: str,
            nearest: str, a: float, exclude_outside: bool, extrapolation: float) -> Any:
    rank = len(sizes)
    dtype = t.dtype
    exact = kind == "nearest"
    work = t if exact else tf.cast(t, tf.float64)
    for axis in range(rank):
        n = int(work.shape[axis])
        same_roi = roi is None or (math.isclose(roi[axis], 0.0) and math.isclose(roi[axis + rank], 1.0))
        if math.isclose(scales[axis], 1.0) and sizes[axis] == n and same_roi:
            continue
        axis_roi = None if roi is None else (roi[axis], roi[axis + rank])
        index, weights, outside = axis_weights(kind, coord, n, sizes[axis], scales[axis], axis_roi, nearest, a,
                                               exclude_outside)
        if exact:  # one neighbour has weight 1
            picked = index[np.arange(len(index)), np.argmax(weights, axis=1)]
            work = tf.gather(work, picked, axis=axis)
        else:
            gathered = tf.gather(work, index, axis=axis)  # (..., out, taps, ...)
            shape = [1] * axis + list(weights.shape) + [1] * (rank - axis - 1)
            work = tf.reduce_sum(gathered * tf.constant(weights.reshape(shape)), axis=axis + 1)
        if outside is not None and outside.any():
            mask = tf.constant(outside.reshape([1] * axis + [-1] + [1] * (rank - axis - 1)))
            work = tf.where(mask, tf.cast(extrapolation, work.dtype), work)
    if exact or dtype == tf.float64:
        return tf.cast(work, dtype)
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        work = tf.clip_by_value(tf.round(work), float(info.min), float(info.max))
    return tf.cast(work, dtype)


def _scaled(scale: float, n: int) -> int:
    """``floor(n * scale)``, forgiving the float32 rounding of a scale an exporter computed as ``size / n``
    (tf2onnx writes 5/12 as 0.41666666, and 12 * 0.41666666 must still give 5, as onnxruntime gives)."""
    return int(math.floor(n * scale * (1 + 1e-6)))


def _value(v: Value | None) -> np.ndarray | None:
    if v is None:
        return None
    known = tf.get_static_value(v.logical())
    if known is None:
        raise NotImplementedError("Resize with scales/sizes/roi unknown while tracing; make them constants")
    return np.asarray(known)


@converter("Resize", since=10)
def resize(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    kind = attr(node, "mode", "nearest")
    if kind not in ("nearest", "linear", "cubic"):
        raise NotImplementedError(f"Resize mode {kind!r}")
    if attr(node, "antialias", 0) and kind != "nearest":
        raise NotImplementedError("anti-aliased Resize")
    old = ctx.opset < 11
    coord = "asymmetric" if old else attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest = "floor" if old else attr(node, "nearest_mode", "round_prefer_floor")
    a = attr(node, "cubic_coeff_a", -0.75)
    exclude, extrapolation = bool(attr(node, "exclude_outside", 0)), attr(node, "extrapolation_value", 0.0)
    policy, axes_attr = attr(node, "keep_aspect_ratio_policy", "stretch"), attr(node, "axes")

    def run(state: RunState, x: Value, *rest: Value | None) -> Value:
        if old:
            roi, scales_in, sizes_in = None, _value(rest[0]), None
        else:
            roi, scales_in, sizes_in = (_value(rest[i]) if len(rest) > i else None for i in range(3))
        t = x.logical()
        shape = [int(d) if d is not None else None for d in t.shape]
        if None in shape:
            raise NotImplementedError("Resize of a tensor of unknown shape")
        rank = len(shape)
        axes = [d % rank for d in axes_attr] if axes_attr is not None else list(range(rank))
        roi_list = None
        if roi is not None and roi.size:
            roi_list = [0.0] * rank + [1.0] * rank
            for i, d in enumerate(axes):
                roi_list[d], roi_list[rank + d] = float(roi[i]), float(roi[len(axes) + i])
        if sizes_in is not None and sizes_in.size:
            sizes = list(shape)
            for i, d in enumerate(axes):
                sizes[d] = int(sizes_in[i])
            scales = [sizes[d] / shape[d] for d in range(rank)]
            if policy != "stretch":
                pick = min if policy == "not_larger" else max
                scale = pick(scales[d] for d in axes)
                scales = [scale if d in axes else 1.0 for d in range(rank)]
                sizes = [int(scale * shape[d] + 0.5) if d in axes else shape[d] for d in range(rank)]
        else:
            scales = [1.0] * rank
            for i, d in enumerate(axes):
                scales[d] = float(scales_in[i])
            sizes = [_scaled(s, n) for s, n in zip(scales, shape)]
        return Value(_resize(t, sizes, scales, roi_list, kind, coord, nearest, a, exclude, extrapolation))

    return run


@converter("Upsample", since=7)
def upsample(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    kind = attr(node, "mode", "nearest")
    fixed = attr(node, "scales")

    def run(state: RunState, x: Value, scales_in: Value | None = None) -> Value:
        scales = [float(s) for s in (fixed if fixed is not None else _value(scales_in))]
        t = x.logical()
        shape = [int(d) for d in t.shape]
        sizes = [_scaled(s, n) for s, n in zip(scales, shape)]
        return Value(_resize(t, sizes, scales, None, "linear" if kind in ("linear", "bilinear") else "nearest",
                             "asymmetric", "floor", -0.75, False, 0.0))

    return run
