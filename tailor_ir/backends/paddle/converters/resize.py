"""Resize / Upsample: every ONNX coordinate transformation, nearest (each rounding mode), linear and cubic, as
one interpolation matrix per resized axis (built with numpy from the input's shape) applied with paddle ops, so
that gradients flow through it. Nearest gathers, so any dtype resizes exactly."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import onnx

from ...resize_coordinates import MODES as TRANSFORM_MODES
from ...resize_coordinates import source_coordinates
from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import F, paddle


def _nearest(src: np.ndarray, rounding: str) -> np.ndarray:
    if rounding == "floor":
        return np.floor(src)
    if rounding == "ceil":
        return np.ceil(src)
    half = np.floor(src) + 0.5 == src
    if rounding == "round_prefer_ceil":
        return np.where(half, np.ceil(src), np.round(src))
    return np.where(half, np.floor(src), np.round(src))  # round_prefer_floor


def _cubic(r: np.ndarray, a: float) -> np.ndarray:
    """Weights of the four neighbours floor-1 .. floor+2 at fraction ``r``."""
    def far(t: np.ndarray) -> np.ndarray:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    def near(t: np.ndarray) -> np.ndarray:
        return ((a + 2) * t - (a + 3)) * t * t + 1

    return np.stack([far(r + 1), near(r), near(1 - r), far(2 - r)], axis=-1)


@lru_cache(maxsize=256)
def _plan(n_in: int, n_out: int, scale: float, mode: str, transform: str, rounding: str, a: float,
          exclude_outside: bool, roi: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices or matrix, outside mask) for one axis: nearest -> int64 indices (n_out,), else a float64
    (n_out, n_in) matrix; ``outside``: output positions whose source lies outside the input (crop-and-resize)."""
    src, _ = source_coordinates(transform, n_in, n_out, scale, roi)
    outside = (src < 0) | (src > n_in - 1) if transform == "tf_crop_and_resize" else np.zeros(n_out, bool)
    if mode == "nearest":
        return np.clip(_nearest(src, rounding), 0, n_in - 1).astype(np.int64), np.empty(0), outside
    base = np.floor(src)
    r = src - base
    if mode == "linear":
        offsets, weights = np.array([0, 1]), np.stack([1 - r, r], axis=-1)
    else:
        offsets, weights = np.array([-1, 0, 1, 2]), _cubic(r, a)
    idx = base[:, None].astype(np.int64) + offsets[None, :]
    if exclude_outside:
        weights = np.where((idx < 0) | (idx > n_in - 1), 0.0, weights)
        weights = weights / weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((n_out, n_in))
    for k in range(idx.shape[1]):
        np.add.at(matrix, (np.arange(n_out), np.clip(idx[:, k], 0, n_in - 1)), weights[:, k])
    return np.empty(0, np.int64), matrix, outside


class _Resize:
    def __init__(self, node: onnx.NodeProto, opset: int) -> None:
        self.mode = attr(node, "mode", "nearest")
        if self.mode not in ("nearest", "linear", "cubic"):
            raise NotImplementedError(f"Resize mode {self.mode!r} is not implemented")
        if attr(node, "antialias", 0):
            raise NotImplementedError("Resize with antialias=1 is not implemented")
        self.transform = attr(node, "coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
        if self.transform not in TRANSFORM_MODES:
            raise NotImplementedError(f"Resize coordinate_transformation_mode={self.transform!r} is not implemented")
        self.rounding = attr(node, "nearest_mode", "round_prefer_floor")
        self.a = float(attr(node, "cubic_coeff_a", -0.75))
        self.exclude = bool(attr(node, "exclude_outside", 0))
        self.extrapolation = float(attr(node, "extrapolation_value", 0.0))
        self.axes = attr(node, "axes")
        self.policy = attr(node, "keep_aspect_ratio_policy", "stretch")
        self.opset = opset

    def __call__(self, x: Any, roi: Any = None, scales: Any = None, sizes: Any = None) -> Any:
        rank = x.ndim
        axes = [a % rank for a in self.axes] if self.axes is not None else list(range(rank))
        shape = list(x.shape)
        scale_of = {a: 1.0 for a in range(rank)}
        out_of = dict(enumerate(shape))
        if sizes is not None and sizes.size:
            wanted = [int(v) for v in sizes.numpy().reshape(-1)]
            if self.policy != "stretch":
                ratios = [w / shape[a] for a, w in zip(axes, wanted)]
                s = min(ratios) if self.policy == "not_larger" else max(ratios)
                wanted = [int(np.floor(s * shape[a] + 0.5)) for a in axes]
                for a in axes:
                    scale_of[a] = s
            else:
                for a, w in zip(axes, wanted):
                    scale_of[a] = w / shape[a]
            for a, w in zip(axes, wanted):
                out_of[a] = w
        else:
            values = [float(v) for v in scales.numpy().reshape(-1)]
            for a, s in zip(axes, values):
                scale_of[a], out_of[a] = s, int(np.floor(shape[a] * s))
        rois = [(0.0, 1.0)] * rank
        if roi is not None and roi.size and self.transform == "tf_crop_and_resize":
            values = [float(v) for v in roi.numpy().reshape(-1)]
            half = len(values) // 2
            for i, a in enumerate(axes):
                rois[a] = (values[i], values[i + half])
        outside_masks = []
        for a in range(rank):
            if out_of[a] == shape[a] and scale_of[a] == 1.0 and self.transform != "tf_crop_and_resize":
                continue
            index, matrix, outside = _plan(shape[a], out_of[a], scale_of[a], self.mode, self.transform,
                                           self.rounding, self.a, self.exclude, rois[a])
            if self.mode == "nearest":
                x = paddle.index_select(x, paddle.to_tensor(index), axis=a)
            else:
                moved = paddle.moveaxis(x, a, -1)
                moved = paddle.matmul(moved, paddle.to_tensor(matrix.T).astype(x.dtype))
                x = paddle.moveaxis(moved, -1, a)
            if outside.any():
                shape_mask = [1] * rank
                shape_mask[a] = len(outside)
                outside_masks.append(paddle.to_tensor(outside.reshape(shape_mask)))
        for mask in outside_masks:
            x = paddle.where(mask, paddle.full([], self.extrapolation, dtype=x.dtype), x)
        return x


@converter("Resize", since=10)
def convert_resize(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    resize = _Resize(node, ctx.opset)
    if ctx.opset < 11:
        return fn_of(lambda x, scales: resize(x, None, scales), node.input[:2])
    return fn_of(resize, list(node.input))


@converter("Upsample", since=7)
def convert_upsample(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    resize = _Resize(node, 10)
    resize.rounding = "floor"  # Upsample's nearest: the input pixel at floor(x / scale)
    if ctx.opset < 9:
        scales = paddle.to_tensor(np.asarray(attr(node, "scales"), np.float32))
        return fn_of(lambda x: resize(x, None, scales), [node.input[0]])
    return fn_of(lambda x, s: resize(x, None, s), node.input[:2])


GRID_MODES = {"bilinear": "bilinear", "linear": "bilinear", "nearest": "nearest"}


@converter("GridSample", since=16)
def convert_grid_sample(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """4-D bilinear / nearest grid sampling (paddle's grid_sample); cubic and 5-D grids are refused."""
    mode = attr(node, "mode", "bilinear")
    if mode not in GRID_MODES:
        raise NotImplementedError(f"GridSample mode {mode!r} is not implemented")
    padding = attr(node, "padding_mode", "zeros")
    align = bool(attr(node, "align_corners", 0))
    if ctx.rank(node.input[0]) != 4:
        raise NotImplementedError("only GridSample of 4-D inputs (of known rank) is implemented")

    def grid_sample(x: Any, grid: Any) -> Any:
        return F.grid_sample(x, grid, mode=GRID_MODES[mode], padding_mode=padding, align_corners=align)

    return fn_of(grid_sample, node.input[:2])


@converter("AffineGrid", since=20)
def convert_affine_grid(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    align = bool(attr(node, "align_corners", 0))

    def affine_grid(theta: Any, size: Any) -> Any:
        return F.affine_grid(theta, [int(v) for v in size.numpy().reshape(-1)], align_corners=align)

    return fn_of(affine_grid, node.input[:2])


@converter("Col2Im", since=18)
def convert_col2im(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """2-D Col2Im (paddle's fold); other ranks are refused."""
    dims = ctx.shape(node.input[1])
    if dims != (2,):
        raise NotImplementedError("only 2-D Col2Im is implemented")
    strides, dilations = list(attr(node, "strides", [1, 1])), list(attr(node, "dilations", [1, 1]))
    pads = list(attr(node, "pads", [0, 0, 0, 0]))

    def col2im(x: Any, image: Any, block: Any) -> Any:
        return F.fold(x, [int(v) for v in image.numpy()], [int(v) for v in block.numpy()], strides,
                      [pads[0], pads[1], pads[2], pads[3]], dilations)

    return fn_of(col2im, node.input[:3])
