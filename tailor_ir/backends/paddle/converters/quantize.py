"""QuantizeLinear / DequantizeLinear to and from int8/uint8/int16/int32 (per tensor or per axis; blocked
quantization and 4-/8-bit float types are refused: paddle has no tensors of those types)."""

from __future__ import annotations

from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle, paddle_dtype
from .conv import CONV_FUNCS, _padding

RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(2**31), 2**31 - 1)}


def _along(scale: Any, x: Any, axis: int) -> Any:
    """A per-axis (1-D) scale or zero point shaped to broadcast along ``axis`` of ``x``."""
    if scale.ndim != 1 or x.ndim == 0:
        return scale
    shape = [1] * x.ndim
    shape[axis % x.ndim] = scale.shape[0]
    return scale.reshape(shape)


def _round_half_even(v: Any) -> Any:
    low = paddle.floor(v)
    frac = v - low
    even = low - 2 * paddle.floor(low / 2) == 0
    up = (frac > 0.5) | ((frac == 0.5) & ~even)
    return paddle.where(up, low + 1, low)


@converter("QuantizeLinear", since=10)
def convert_quantize(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if attr(node, "block_size", 0):
        raise NotImplementedError("blocked QuantizeLinear is not implemented")
    axis = int(attr(node, "axis", 1))
    to = attr(node, "output_dtype", 0)
    zp_name = node.input[2] if len(node.input) > 2 else ""
    zp_type = ctx.types.get(zp_name) if zp_name else None
    target = paddle_dtype(int(to)) if to else (paddle_dtype(zp_type) if zp_type else "uint8")
    if target not in RANGES:
        raise NotImplementedError(f"QuantizeLinear to {target} is not implemented")
    low, high = RANGES[target]

    def quantize(x: Any, scale: Any, zero_point: Any = None) -> Any:
        wide = "float64" if target == "int32" else "float32"
        v = _round_half_even(x.astype(wide) / _along(scale, x, axis).astype(wide))
        if zero_point is not None:
            v = v + _along(zero_point, x, axis).astype(wide)
        return paddle.clip(v, low, high).astype(target)

    return fn_of(quantize, [i for i in node.input[:3] if i])


@converter("DequantizeLinear", since=10)
def convert_dequantize(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if attr(node, "block_size", 0):
        raise NotImplementedError("blocked DequantizeLinear is not implemented")
    axis = int(attr(node, "axis", 1))
    to = attr(node, "output_dtype", 0)

    def dequantize(x: Any, scale: Any, zero_point: Any = None) -> Any:
        v = x.astype("float64" if x.dtype == paddle.int32 else "float32")
        if zero_point is not None:
            v = v - _along(zero_point, x, axis).astype(v.dtype)
        out = v * _along(scale, x, axis).astype(v.dtype)
        return out.astype(paddle_dtype(int(to)) if to else scale.dtype)

    return fn_of(dequantize, [i for i in node.input[:3] if i])




@converter("DynamicQuantizeLinear", since=11)
def convert_dynamic_quantize(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """uint8 quantization over the range of ``x`` widened to hold 0: (y, scale, zero point)."""

    def dynamic_quantize(x: Any) -> Any:
        low = paddle.minimum(x.min(), paddle.zeros([], x.dtype))
        high = paddle.maximum(x.max(), paddle.zeros([], x.dtype))
        scale = (high - low) / 255
        zero_point = paddle.clip(_round_half_even(-low / scale), 0, 255)
        y = paddle.clip(_round_half_even(x / scale) + zero_point, 0, 255)
        return y.astype("uint8"), scale, zero_point.astype("uint8")

    return fn_of(dynamic_quantize, [node.input[0]])


@converter("QLinearMatMul", since=10)
def convert_qlinear_matmul(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Quantized MatMul: ((a - a_zp) @ (b - b_zp)) * a_scale * b_scale / y_scale + y_zp, rounded half to even
    and saturated to y_zp's type, computed in float64 (exact for 8-bit operands)."""
    target = paddle_dtype(ctx.types[node.input[7]]) if node.input[7] in ctx.types else "uint8"
    if target not in RANGES:
        raise NotImplementedError(f"QLinearMatMul to {target} is not implemented")
    low, high = RANGES[target]

    def qlinear_matmul(a: Any, a_scale: Any, a_zp: Any, b: Any, b_scale: Any, b_zp: Any, y_scale: Any,
                       y_zp: Any) -> Any:
        wide = "float64"
        a_rows = a_zp.astype(wide).reshape([-1, 1]) if a_zp.ndim == 1 and a_zp.shape[0] > 1 else a_zp.astype(wide)
        a_scales = a_scale.astype(wide).reshape([-1, 1]) if a_scale.ndim == 1 and a_scale.shape[0] > 1 else (
            a_scale.astype(wide))
        acc = paddle.matmul(a.astype(wide) - a_rows, b.astype(wide) - b_zp.astype(wide))
        v = _round_half_even(acc * a_scales * b_scale.astype(wide) / y_scale.astype(wide)) + y_zp.astype(wide)
        return paddle.clip(v, low, high).astype(target)

    return fn_of(qlinear_matmul, list(node.input[:8]))


@converter("ConvInteger", since=10)
def convert_conv_integer(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Integer convolution of (x - x_zp) and (w - w_zp) to int32, computed exactly in float64."""
    w_shape = ctx.shape(node.input[1])
    if w_shape is None or len(w_shape) - 2 not in CONV_FUNCS:
        raise NotImplementedError("ConvInteger needs a 1-D to 3-D weight of known rank")
    dims = len(w_shape) - 2
    stride, dilation = list(attr(node, "strides", [1] * dims)), list(attr(node, "dilations", [1] * dims))
    groups, padding = int(attr(node, "group", 1)), _padding(node, dims)

    def conv_integer(x: Any, w: Any, x_zp: Any = None, w_zp: Any = None) -> Any:
        xf, wf = x.astype("float64"), w.astype("float64")
        if x_zp is not None:
            xf = xf - x_zp.astype("float64")
        if w_zp is not None:
            wf = wf - (w_zp.astype("float64").reshape([-1] + [1] * (w.ndim - 1)) if w_zp.size > 1 else
                       w_zp.astype("float64"))
        out = CONV_FUNCS[dims](xf, wf, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
        return out.astype("int32")

    return fn_of(conv_integer, list(node.input[:4]))
