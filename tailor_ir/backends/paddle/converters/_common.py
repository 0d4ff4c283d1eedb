"""Helpers shared by the converters."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ....imports import import_paddle

paddle = import_paddle()
F = paddle.nn.functional
INT_MAX = 2**31 - 1


def paddle_dtype(onnx_type: int) -> str:
    """The paddle dtype name of an ONNX element type."""
    return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(onnx_type)))


def to_ints(value: Any) -> list[int]:
    """A shape-like tensor / array / list as Python ints."""
    if isinstance(value, paddle.Tensor):
        value = value.numpy()
    return [int(v) for v in np.asarray(value).reshape(-1)]


def zero_init() -> Any:
    """A cheap initializer for real layers whose parameters are replaced by the graph's weights."""
    return paddle.ParamAttr(initializer=paddle.nn.initializer.Constant(0.0))


def onnx_pads(pads: list[int] | None, dims: int) -> list[int]:
    """ONNX ``[b1, b2, .., e1, e2, ..]`` -> paddle ``[b1, e1, b2, e2, ..]``."""
    pads = list(pads or [0] * (2 * dims))
    return [p for i in range(dims) for p in (pads[i], pads[i + dims])]
