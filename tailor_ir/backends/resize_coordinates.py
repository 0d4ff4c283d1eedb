"""ONNX Resize's coordinate transformation, shared by every backend: output index -> source coordinate.

Pure numpy, computed once per (input length, output length, scale, roi) when a backend builds its Resize. The
scaled length ``scale * n_in`` is not rounded, as in ONNX's reference implementation.
"""

from __future__ import annotations

import numpy as np

MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_crop_and_resize")


def source_coordinates(
    mode: str, n_in: int, n_out: int, scale: float, roi: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The source coordinate of each of ``n_out`` output indices along one axis, and (``tf_crop_and_resize``
    only) which of them fall outside the input, where ONNX uses ``extrapolation_value``."""
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in
    outside = None
    if mode == "align_corners":
        x = np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi if roi is not None else (0.0, 1.0)
        x = np.full(n_out, (hi - lo) * (n_in - 1) / 2) if width == 1 else y * (hi - lo) * (n_in - 1) / (width - 1)
        x = x + lo * (n_in - 1)
        outside = (x < 0) | (x > n_in - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        x = n_in / 2 * (1 - n_out / width) + (y + 0.5) / scale - 0.5
    else:
        raise NotImplementedError(f"Resize coordinate_transformation_mode {mode!r}")
    return x, outside
