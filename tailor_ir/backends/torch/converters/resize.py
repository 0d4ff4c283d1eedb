"""Resize (11 .. 19): every mode, coordinate transformation, nearest rounding, antialias, axes and aspect policy.

Resizing is separable: each resized axis gathers ``n`` neighbours per output position and sums them with
weights. The neighbour indices and weights depend only on the shapes, so they are computed with numpy following
the ONNX reference formulas (cached per shape), and the gather + weighted sum runs in torch (differentiable in
the data). Values are interpolated in float64 and cast back, as the reference does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ...resize_coordinates import source_coordinates
from ..registry import converter
from ._common import OperationConverterResult, attr, result


def _nearest(ratio: float, scale: float, mode: str) -> list[float]:
    if float(ratio).is_integer():
        return [0.0, 1.0]
    pick_right = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False,
                  "ceil": True}[mode]
    return [0.0, 1.0] if pick_right else [1.0, 0.0]


def _linear(ratio: float, scale: float, antialias: bool) -> list[float]:
    if not antialias:
        return [1 - ratio, ratio]
    scale = min(scale, 1.0)
    start = int(math.floor(-1 / scale) + 1)
    args = (np.arange(start, start + 2 - 2 * start) - ratio) * scale
    coeffs = np.clip(1 - np.abs(args), 0, 1)
    return list(coeffs / coeffs.sum())


def _cubic(ratio: float, scale: float, a: float, antialias: bool) -> list[float]:
    if not antialias:
        r1 = 1 - ratio
        return [
            ((a * (ratio + 1) - 5 * a) * (ratio + 1) + 8 * a) * (ratio + 1) - 4 * a,
            ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1,
            ((a + 2) * r1 - (a + 3)) * r1 * r1 + 1,
            ((a * (r1 + 1) - 5 * a) * (r1 + 1) + 8 * a) * (r1 + 1) - 4 * a,
        ]
    scale = min(scale, 1.0)

    def weight(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    start = int(math.floor(-2 / scale) + 1)
    coeffs = [weight(scale * (i - ratio)) for i in range(start, 2 - start)]
    total = sum(coeffs)
    return [c / total for c in coeffs]


class Resize(nn.Module):
    """ONNX Resize with the reference's exact neighbour and weight rules."""

    def __init__(self, mode: str, coordinates: str, nearest_mode: str, cubic_a: float, exclude_outside: bool,
                 extrapolation: float, antialias: bool, axes: list[int] | None, policy: str) -> None:
        super().__init__()
        self.mode, self.coordinates, self.nearest_mode, self.cubic_a = mode, coordinates, nearest_mode, cubic_a
        self.exclude_outside, self.extrapolation, self.antialias = exclude_outside, extrapolation, antialias
        self.axes, self.policy = axes, policy
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor, np.ndarray | None]] = {}

    def _coeffs(self, ratio: float, scale: float) -> list[float]:
        if self.mode == "nearest":
            return _nearest(ratio, scale, self.nearest_mode)
        if self.mode == "linear":
            return _linear(ratio, scale, self.antialias)
        return _cubic(ratio, scale, self.cubic_a, self.antialias)

    def _table(self, size: int, out: int, scale: float, roi: tuple[float, float] | None
               ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        key = (size, out, scale, roi)
        if key in self._tables:
            return self._tables[key]
        x, extrapolated = source_coordinates(self.coordinates, size, out, scale, roi)
        x_int = np.floor(x)
        ratios = np.where(x == x_int, 1.0, x - x_int)
        coeffs = np.array([self._coeffs(float(r), scale) for r in ratios], dtype=np.float64).reshape(out, -1)
        n = coeffs.shape[1]
        pad = int(math.ceil(n / 2))
        xp = x + pad
        pp = np.floor(xp).astype(np.int64)
        frac = xp - pp
        if n % 2 == 0:
            offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
        else:
            base = -((n - 1) // 2)
            offset = np.where(frac <= 0.5, base, base + 1)
        index = (pp + offset)[:, None] + np.arange(n)[None, :] - pad
        if self.exclude_outside:
            coeffs = np.where((index < 0) | (index >= size), 0.0, coeffs)
            total = coeffs.sum(axis=-1, keepdims=True)
            coeffs = coeffs / np.where(total == 0, 1.0, total)
        entry = (torch.from_numpy(np.clip(index, 0, size - 1)), torch.from_numpy(coeffs), extrapolated)
        self._tables[key] = entry
        return entry

    def forward(self, x: torch.Tensor, roi: torch.Tensor | None = None, scales: torch.Tensor | None = None,
                sizes: torch.Tensor | None = None) -> torch.Tensor:
        rank = x.dim()
        axes = [a % rank for a in self.axes] if self.axes else list(range(rank))
        shape = list(x.shape)
        scale = [1.0] * rank
        out = list(shape)
        if sizes is not None and sizes.numel():
            wanted = [int(s) for s in sizes.tolist()]
            for i, a in enumerate(axes):
                out[a], scale[a] = wanted[i], wanted[i] / shape[a]
            if self.policy != "stretch":
                pick = min if self.policy == "not_larger" else max
                common = pick(scale[a] for a in axes)
                for a in axes:
                    scale[a], out[a] = common, int(common * shape[a] + 0.5)
        elif scales is not None and scales.numel():
            for i, a in enumerate(axes):
                scale[a] = float(scales.tolist()[i])
                out[a] = int(scale[a] * shape[a])
        else:
            raise NotImplementedError("Resize needs scales or sizes")
        rois: dict[int, tuple[float, float]] = {}
        if roi is not None and roi.numel() and self.coordinates == "tf_crop_and_resize":
            values = [float(v) for v in roi.tolist()]
            for i, a in enumerate(axes):
                rois[a] = (values[i], values[len(axes) + i])
        y = x.to(torch.float64)
        for a in axes:
            lo_hi = rois.get(a)
            if math.isclose(scale[a], 1.0) and out[a] == y.shape[a] and (
                    lo_hi is None or (math.isclose(lo_hi[0], 0.0) and math.isclose(lo_hi[1], 1.0))):
                continue
            if out[a] == 0:
                y = y.narrow(a, 0, 0)
                continue
            index, coeffs, extrapolated = self._table(y.shape[a], out[a], scale[a], lo_hi)
            n = index.shape[1]
            gathered = y.index_select(a, index.reshape(-1).to(y.device))
            gathered = gathered.reshape(*y.shape[:a], out[a], n, *y.shape[a + 1 :])
            weights = coeffs.to(y.device).reshape((1,) * a + (out[a], n) + (1,) * (rank - a - 1))
            y = (gathered * weights).sum(dim=a + 1)
            if extrapolated is not None and extrapolated.any():
                mask = torch.from_numpy(extrapolated).reshape((1,) * a + (out[a],) + (1,) * (rank - a - 1))
                y = torch.where(mask.to(y.device), torch.full_like(y, self.extrapolation), y)
        if x.dtype.is_floating_point:
            return y.to(x.dtype)
        info = torch.iinfo(x.dtype)
        return torch.round(y).clamp(info.min, info.max).to(x.dtype)


@converter("Resize", since=11)
def convert_resize(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    module = Resize(
        attr(node, "mode", "nearest"), attr(node, "coordinate_transformation_mode", "half_pixel"),
        attr(node, "nearest_mode", "round_prefer_floor"), float(attr(node, "cubic_coeff_a", -0.75)),
        bool(attr(node, "exclude_outside", 0)), float(attr(node, "extrapolation_value", 0.0)),
        bool(attr(node, "antialias", 0)), [int(a) for a in attr(node, "axes", [])] or None,
        attr(node, "keep_aspect_ratio_policy", "stretch"),
    )
    return result(module, node)
