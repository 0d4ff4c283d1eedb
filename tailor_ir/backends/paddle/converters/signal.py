"""Signal and small linear-algebra ops: Hann/Hamming/Blackman windows, DFT, Det, ReverseSequence, the deprecated
Scatter, MatMulInteger."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle, paddle_dtype, to_ints
from .index import convert_scatter_elements

WINDOWS = {
    "HannWindow": lambda n, d: 0.5 - 0.5 * np.cos(2 * np.pi * n / d),
    "HammingWindow": lambda n, d: 25 / 46 - (1 - 25 / 46) * np.cos(2 * np.pi * n / d),
    "BlackmanWindow": lambda n, d: 0.42 - 0.5 * np.cos(2 * np.pi * n / d) + 0.08 * np.cos(4 * np.pi * n / d),
}


def _window(op: str) -> None:
    formula = WINDOWS[op]

    @converter(op, since=17)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        dtype = paddle_dtype(int(attr(node, "output_datatype", onnx.TensorProto.FLOAT)))
        periodic = bool(attr(node, "periodic", 1))

        def window(size: Any) -> Any:
            n = to_ints(size)[0]
            values = formula(np.arange(n, dtype=np.float64), n if periodic else n - 1)
            return paddle.to_tensor(values.astype(np.float32)).astype(dtype)

        return fn_of(window, [node.input[0]])


for _op in WINDOWS:
    _window(_op)


@converter("DFT", since=17)
def convert_dft(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """(..., n, 1 | 2) real or complex signal -> (..., m, 2) transform along ``axis``."""
    inverse, onesided = bool(attr(node, "inverse", 0)), bool(attr(node, "onesided", 0))
    if inverse and onesided:
        raise NotImplementedError("an inverse one-sided DFT is not implemented")
    legacy_axis = int(attr(node, "axis", 1))
    names = list(node.input) + [""] * (3 - len(node.input))

    def dft(x: Any, length: Any = None, axis: Any = None) -> Any:
        if ctx.opset >= 20:
            a = to_ints(axis)[0] if axis is not None else -2
            a = a % x.ndim
        else:
            a = legacy_axis % (x.ndim - 1)
        wide = x.astype("float64")  # in double precision, rounded once at the end (as ONNX's reference)
        signal = paddle.complex(wide[..., 0], wide[..., 1]) if x.shape[-1] == 2 else wide[..., 0].astype("complex128")
        if inverse:  # ONNX's reference transforms back in the input's precision
            signal = signal.astype("complex64" if x.dtype == paddle.float32 else "complex128")
        n = to_ints(length)[0] if length is not None else None
        out = (paddle.fft.ifft if inverse else paddle.fft.fft)(signal, n=n, axis=a)
        if onesided:
            out = out[tuple([slice(None)] * a + [slice(0, out.shape[a] // 2 + 1)])]
        return paddle.stack([paddle.real(out), paddle.imag(out)], axis=-1).astype(x.dtype)

    inputs = [names[0], names[1]] + ([names[2]] if ctx.opset >= 20 else [])
    return fn_of(dft, inputs)


@converter("Det", since=11)
def convert_det(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    return fn_of(paddle.linalg.det, [node.input[0]])


@converter("ReverseSequence", since=10)
def convert_reverse_sequence(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    batch_axis, time_axis = int(attr(node, "batch_axis", 1)), int(attr(node, "time_axis", 0))

    def reverse_sequence(x: Any, lengths: Any) -> Any:
        steps = x.shape[time_axis]
        t = paddle.arange(steps, dtype="int64")
        shape = [1] * x.ndim
        shape[time_axis] = steps
        t = t.reshape(shape)
        lens_shape = [1] * x.ndim
        lens_shape[batch_axis] = x.shape[batch_axis]
        lens = lengths.astype("int64").reshape(lens_shape)
        order = paddle.where(t < lens, lens - 1 - t, t)
        order = paddle.broadcast_to(order, x.shape)
        return paddle.take_along_axis(x, order, time_axis, broadcast=False)

    return fn_of(reverse_sequence, node.input[:2])


@converter("Scatter", since=9, until=10)
def convert_scatter(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """The deprecated Scatter is ScatterElements without a reduction."""
    return convert_scatter_elements(node, ctx)


@converter("MatMulInteger", since=10)
def convert_matmul_integer(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def matmul_integer(a: Any, b: Any, a_zero: Any = None, b_zero: Any = None) -> Any:
        a, b = a.astype("int32"), b.astype("int32")
        if a_zero is not None:
            a = a - (a_zero.astype("int32").reshape([-1, 1]) if a_zero.ndim == 1 and a_zero.shape[0] > 1 else
                     a_zero.astype("int32"))
        if b_zero is not None:
            b = b - b_zero.astype("int32")
        return paddle.matmul(a.astype("float64"), b.astype("float64")).astype("int32")

    return fn_of(matmul_integer, list(node.input[:4]))
