"""Convolution and pooling: Conv (a real Conv1D/2D/3D layer on a weight), MaxPool, AveragePool, global pools."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of, layer_of
from ..registry import converter
from ._common import F, onnx_pads, paddle, zero_init

CONV_LAYERS = {1: "Conv1D", 2: "Conv2D", 3: "Conv3D"}
CONV_FUNCS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _padding(node: onnx.NodeProto, dims: int) -> Any:
    auto = attr(node, "auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if auto == "SAME_LOWER":
            raise NotImplementedError("auto_pad=SAME_LOWER is not implemented")
        return "SAME"
    if auto == "VALID":
        return "VALID"
    pads = onnx_pads(attr(node, "pads"), dims)
    symmetric = all(pads[2 * i] == pads[2 * i + 1] for i in range(dims))
    return [pads[2 * i] for i in range(dims)] if symmetric else pads


@converter("Conv", since=1)
def convert_conv(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    shape = ctx.shape(w)
    if shape is None or any(not isinstance(d, int) for d in shape):
        raise NotImplementedError("Conv with a weight of unknown shape is not implemented")
    dims = len(shape) - 2
    if dims not in CONV_LAYERS:
        raise NotImplementedError(f"{dims}-D convolution is not implemented")
    groups = int(attr(node, "group", 1))
    stride = list(attr(node, "strides", [1] * dims))
    dilation = list(attr(node, "dilations", [1] * dims))
    padding = _padding(node, dims)
    if ctx.is_param(w) and (not b or ctx.is_param(b)):
        layer = getattr(paddle.nn, CONV_LAYERS[dims])(
            shape[1] * groups, shape[0], shape[2:], stride=stride, padding=padding, dilation=dilation,
            groups=groups, weight_attr=zero_init(), bias_attr=zero_init() if b else False,
        )
        layer.weight = ctx.param(w)
        if b:
            layer.bias = ctx.param(b)
        return layer_of(layer, [x])
    func = CONV_FUNCS[dims]

    def conv(x: Any, w: Any, b: Any = None) -> Any:
        return func(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    return fn_of(conv, [x, w] + ([b] if b else []))


def _pool_args(node: onnx.NodeProto) -> tuple[int, list[int], list[int], Any]:
    kernel = list(attr(node, "kernel_shape"))
    dims = len(kernel)
    if dims not in (1, 2, 3):
        raise NotImplementedError(f"{dims}-D pooling is not implemented")
    if any(d != 1 for d in attr(node, "dilations", [1] * dims)):
        raise NotImplementedError("pooling with dilations is not implemented")
    return dims, kernel, list(attr(node, "strides", [1] * dims)), _padding(node, dims)


def _dilated_pool(node: onnx.NodeProto, kind: str) -> Converted | None:
    """A pool with dilations, as the reduction of one strided slice per kernel offset (paddle's pools have no
    dilation); None when the node has none."""
    kernel = list(attr(node, "kernel_shape"))
    dims = len(kernel)
    dilation = list(attr(node, "dilations", [1] * dims))
    if all(d == 1 for d in dilation):
        return None
    if attr(node, "auto_pad", "NOTSET") != "NOTSET":
        raise NotImplementedError("pooling with dilations and auto_pad is not implemented")
    stride = list(attr(node, "strides", [1] * dims))
    pads = list(attr(node, "pads", [0] * (2 * dims)))
    ceil, include_pad = bool(attr(node, "ceil_mode", 0)), bool(attr(node, "count_include_pad", 0))

    def pool(x: Any) -> Any:
        sizes, begins, ends = [], [], []  # output size; padding before / after (explicit + ceil overhang)
        for i in range(dims):
            n, k, s, d, b, e = x.shape[2 + i], kernel[i], stride[i], dilation[i], pads[i], pads[i + dims]
            span = (k - 1) * d + 1
            out = (n + b + e - span) / s + 1
            out = int(np.ceil(out)) if ceil else int(np.floor(out))
            if ceil and (out - 1) * s >= n + b:
                out -= 1
            sizes.append(out)
            begins.append(b)
            ends.append(max((out - 1) * s + span - n - b, 0))
        fmt = _FORMATS[dims]
        grow = [v for b, e in zip(reversed(begins), reversed(ends)) for v in (b, e)]
        padded = F.pad(x, grow, value=float("-inf") if kind == "max" else 0.0, data_format=fmt)
        ones = paddle.ones([1, 1, *x.shape[2:]], x.dtype)
        valid = F.pad(ones, grow, value=0.0, data_format=fmt)  # 1 on the input
        inside = [n + b + e for n, b, e in zip(x.shape[2:], begins, pads[dims:])]  # 1 on input + explicit pads
        explicit = F.pad(paddle.ones([1, 1, *inside], x.dtype),
                         [v for end, e in zip(reversed(ends), reversed(pads[dims:])) for v in (0, max(end - e, 0))],
                         value=0.0, data_format=fmt)
        windows, counts, totals = [], [], []
        for offset in np.ndindex(*kernel):
            index = [slice(None), slice(None)] + [
                slice(o * dilation[i], o * dilation[i] + (sizes[i] - 1) * stride[i] + 1, stride[i])
                for i, o in enumerate(offset)
            ]
            windows.append(padded[tuple(index)])
            if kind == "avg":
                counts.append(valid[tuple(index)])
                totals.append(explicit[tuple(index)])
        stacked = paddle.stack(windows)
        if kind == "max":
            return stacked.max(axis=0)
        divisor = paddle.stack(totals if include_pad else counts).sum(axis=0)
        return stacked.sum(axis=0) / divisor

    return fn_of(pool, [node.input[0]])


def _ceil_trim(node: onnx.NodeProto, kernel: list[int], stride: list[int], padding: Any) -> Any:
    """With ceil_mode, ONNX drops a last window that would start inside the end padding; paddle keeps it.
    Returns ``(x, y) -> y`` trimmed to ONNX's output size."""
    if isinstance(padding, str):
        if padding == "SAME":
            return None
        begins = [0] * len(kernel)
    else:
        begins = padding[::2] if len(padding) == 2 * len(kernel) else list(padding)

    def trim(x: Any, y: Any) -> Any:
        index: list[Any] = [slice(None), slice(None)]
        cut = False
        for i, (s, b) in enumerate(zip(stride, begins)):
            size = y.shape[2 + i]
            if size > 1 and (size - 1) * s >= x.shape[2 + i] + b:
                size -= 1
                cut = True
            index.append(slice(0, size))
        return y[tuple(index)] if cut else y

    return trim


@converter("MaxPool", since=1)
def convert_max_pool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if len([o for o in node.output if o]) > 1:
        raise NotImplementedError("MaxPool with an Indices output is not implemented")
    dilated = _dilated_pool(node, "max")
    if dilated is not None:
        return dilated
    dims, kernel, stride, padding = _pool_args(node)
    func = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[dims]
    ceil = bool(attr(node, "ceil_mode", 0))
    trim = _ceil_trim(node, kernel, stride, padding) if ceil else None

    def max_pool(x: Any) -> Any:
        y = func(x, kernel, stride, padding, ceil_mode=ceil)
        return trim(x, y) if trim else y

    return fn_of(max_pool, [node.input[0]])


@converter("AveragePool", since=1)
def convert_avg_pool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    dilated = _dilated_pool(node, "avg")
    if dilated is not None:
        return dilated
    dims, kernel, stride, padding = _pool_args(node)
    func = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    ceil = bool(attr(node, "ceil_mode", 0))
    exclusive = not attr(node, "count_include_pad", 0)
    trim = _ceil_trim(node, kernel, stride, padding) if ceil else None

    def avg_pool(x: Any) -> Any:
        y = func(x, kernel, stride, padding, ceil_mode=ceil, exclusive=exclusive)
        return trim(x, y) if trim else y

    return fn_of(avg_pool, [node.input[0]])


@converter("GlobalAveragePool", since=1)
def convert_global_avg_pool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def global_avg_pool(x: Any) -> Any:
        return x.mean(axis=list(range(2, x.ndim)), keepdim=True)

    return fn_of(global_avg_pool, [node.input[0]])


@converter("GlobalMaxPool", since=1)
def convert_global_max_pool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    def global_max_pool(x: Any) -> Any:
        return x.amax(axis=list(range(2, x.ndim)), keepdim=True)

    return fn_of(global_max_pool, [node.input[0]])


CONV_TRANSPOSE = {1: F.conv1d_transpose, 2: F.conv2d_transpose, 3: F.conv3d_transpose}


@converter("ConvTranspose", since=1)
def convert_conv_transpose(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Full transposed convolution (no padding), the output_padding tail added, then cropped to ONNX's pads or
    output_shape: exact for every asymmetric padding and auto_pad mode."""
    kernel = attr(node, "kernel_shape")
    w_shape = ctx.shape(node.input[1])
    dims = len(kernel) if kernel is not None else (len(w_shape) - 2 if w_shape else None)
    if dims not in CONV_TRANSPOSE:
        raise NotImplementedError("ConvTranspose needs a 1-D, 2-D or 3-D kernel of known rank")
    groups = int(attr(node, "group", 1))
    stride = list(attr(node, "strides", [1] * dims))
    dilation = list(attr(node, "dilations", [1] * dims))
    extra = list(attr(node, "output_padding", [0] * dims))
    output_shape = attr(node, "output_shape")
    auto = attr(node, "auto_pad", "NOTSET")
    pads = list(attr(node, "pads", [0] * (2 * dims)))
    func = CONV_TRANSPOSE[dims]

    def conv_transpose(x: Any, w: Any, b: Any = None) -> Any:
        y = func(x, w, None, stride=stride, padding=0, dilation=dilation, groups=groups)
        if any(extra):  # positions no input reaches: zero before the bias
            y = F.pad(y, [p for e in reversed(extra) for p in (0, e)], data_format=_FORMATS[dims])
        full = y.shape[2:]
        if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            target = list(output_shape)[-dims:] if output_shape is not None else [
                x.shape[2 + i] * stride[i] for i in range(dims)
            ]
            total = [f - t for f, t in zip(full, target)]
            upper = auto != "SAME_LOWER" if output_shape is None else auto == "SAME_UPPER"
            begins = [t // 2 if upper else t - t // 2 for t in total]
            ends = [t - bgn for t, bgn in zip(total, begins)]
        elif auto == "VALID":
            begins, ends = [0] * dims, [0] * dims
        else:
            begins, ends = pads[:dims], pads[dims:]
        grow = [(max(-bgn, 0), max(-e, 0)) for bgn, e in zip(begins, ends)]
        if any(g for pair in grow for g in pair):  # an output_shape beyond the full output: zeros
            y = F.pad(y, [g for pair in reversed(grow) for g in pair], data_format=_FORMATS[dims])
            full = y.shape[2:]
            begins, ends = [max(v, 0) for v in begins], [max(v, 0) for v in ends]
        index = [slice(None), slice(None)] + [slice(bgn, f - e) for bgn, e, f in zip(begins, ends, full)]
        y = y[tuple(index)]
        if b is not None:
            y = y + b.reshape([1, -1] + [1] * dims)
        return y

    return fn_of(conv_transpose, [i for i in node.input[:3] if i])


_FORMATS = {1: "NCL", 2: "NCHW", 3: "NCDHW"}


@converter("LpPool", since=2)
def convert_lp_pool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """(sum over the window of |x|^p)^(1/p): an average pool counting the zero padding, times the window size."""
    dims, kernel, stride, padding = _pool_args(node)
    if isinstance(padding, str) and padding != "VALID":
        raise NotImplementedError("LpPool with auto_pad=SAME_UPPER/SAME_LOWER is not implemented")
    func = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    p = float(attr(node, "p", 2))
    ceil = bool(attr(node, "ceil_mode", 0))
    trim = _ceil_trim(node, kernel, stride, padding) if ceil else None
    size = float(np.prod(kernel))

    def lp_pool(x: Any) -> Any:
        y = func(paddle.abs(x) ** p, kernel, stride, padding, ceil_mode=ceil, exclusive=False) * size
        y = y ** (1.0 / p)
        return trim(x, y) if trim else y

    return fn_of(lp_pool, [node.input[0]])


@converter("MaxUnpool", since=9)
def convert_max_unpool(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Zeros of the shape kernel/strides/pads imply, each value put at its flat MaxPool index; a larger
    ``output_shape`` pads that block with zeros at the end, as ONNX's reference does."""
    kernel = list(attr(node, "kernel_shape"))
    dims = len(kernel)
    stride = list(attr(node, "strides", [1] * dims))
    pads = list(attr(node, "pads", [0] * (2 * dims)))

    def max_unpool(x: Any, indices: Any, output_shape: Any = None) -> Any:
        spatial = [(n - 1) * s + k - pads[i] - pads[i + dims] for i, (n, s, k) in enumerate(zip(x.shape[2:], stride, kernel))]
        inferred = [*x.shape[:2], *spatial]
        flat = paddle.zeros([int(np.prod(inferred))], x.dtype)
        flat = paddle.put_along_axis(flat, indices.reshape([-1]).astype("int64"), x.reshape([-1]), 0,
                                     reduce="assign", broadcast=False)
        y = flat.reshape(inferred)
        if output_shape is None:
            return y
        shape = [int(v) for v in output_shape.numpy().reshape(-1)]  # larger: the inferred block at the origin
        return paddle.nn.functional.pad(y, [v for n, m in zip(reversed(inferred[2:]), reversed(shape[2:]))
                                            for v in (0, m - n)], data_format=_FORMATS[dims])

    return fn_of(max_unpool, [i for i in node.input[:3] if i])
