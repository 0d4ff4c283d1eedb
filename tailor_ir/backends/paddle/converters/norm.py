"""Normalisation: BatchNormalization (a real paddle BatchNorm), LayerNormalization, LpNormalization."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..context import BuildContext, Converted, attr, fn_of, layer_of
from ..registry import converter
from ._common import F, paddle, zero_init

DATA_FORMATS = {2: "NC", 3: "NCL", 4: "NCHW", 5: "NCDHW"}


class BatchNorm(paddle.nn.layer.norm._BatchNormBase):
    """paddle's batch norm for inputs of any rank (N, C, ...): running statistics update in train mode."""

    def _check_input_dim(self, input: Any) -> None:
        if input.ndim < 2:
            raise ValueError(f"batch norm expects (N, C, ...) input, got rank {input.ndim}")

    def _check_data_format(self, input: Any) -> None:
        return None


@converter("BatchNormalization", since=1)
def convert_batch_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if len([o for o in node.output if o]) > 1 or attr(node, "training_mode", 0):
        return _batch_norm_training(node)
    x, scale, bias, mean_name, var_name = node.input[:5]
    mean, var = ctx.const(mean_name), ctx.const(var_name)
    if mean is None or var is None:
        return _batch_norm_function(node)
    rank = ctx.rank(x)
    layer = BatchNorm(
        int(mean.shape[0]), momentum=float(attr(node, "momentum", 0.9)), epsilon=float(attr(node, "epsilon", 1e-5)),
        weight_attr=zero_init(), bias_attr=zero_init(), data_format=DATA_FORMATS.get(rank or 4, "NCHW"),
    )
    for name, slot in ((scale, "weight"), (bias, "bias")):
        if ctx.is_param(name):
            setattr(layer, slot, ctx.param(name))
        else:
            value = ctx.const(name)
            if value is None:
                raise NotImplementedError("BatchNormalization with a computed scale or bias is not implemented")
            getattr(layer, slot).set_value(np.asarray(value, dtype=np.float32))
            getattr(layer, slot).stop_gradient = True
    layer._mean.set_value(np.asarray(mean, dtype=np.float32))
    layer._variance.set_value(np.asarray(var, dtype=np.float32))
    return layer_of(layer, [x])


def _batch_norm_function(node: onnx.NodeProto) -> Converted:
    """Inference batch norm on statistics computed at run time (graph inputs or values)."""
    eps = float(attr(node, "epsilon", 1e-5))

    def batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any) -> Any:
        shape = [1, -1] + [1] * (x.ndim - 2)
        return (x - mean.reshape(shape)) / paddle.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(
            shape
        )

    return fn_of(batch_norm, node.input[:5])


def _batch_norm_training(node: onnx.NodeProto) -> Converted:
    """Training-mode BatchNormalization as ONNX defines it: batch statistics (population variance) normalise,
    and the running statistics outputs are ``running * momentum + batch * (1 - momentum)``."""
    eps, momentum = float(attr(node, "epsilon", 1e-5)), float(attr(node, "momentum", 0.9))
    count = len(node.output)

    def batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any) -> Any:
        axes = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        batch_mean = x.mean(axis=axes)
        batch_var = ((x - batch_mean.reshape(shape)) ** 2).mean(axis=axes)
        y = (x - batch_mean.reshape(shape)) / paddle.sqrt(batch_var.reshape(shape) + eps)
        y = y * scale.reshape(shape) + bias.reshape(shape)
        running_mean = mean * momentum + batch_mean * (1 - momentum)
        running_var = var * momentum + batch_var * (1 - momentum)
        return (y, running_mean, running_var)[:count] if count > 1 else y

    return fn_of(batch_norm, node.input[:5])


@converter("LayerNormalization", since=17)
def convert_layer_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if len(node.output) > 1 or attr(node, "stash_type", 1) != 1:
        return _layer_norm_with_statistics(node, ctx)
    x, scale = node.input[0], node.input[1]
    bias = node.input[2] if len(node.input) > 2 else ""
    axis = int(attr(node, "axis", -1))
    eps = float(attr(node, "epsilon", 1e-5))
    rank = ctx.rank(x)
    scale_shape = ctx.shape(scale)
    normalized = (rank - axis) if (rank is not None and axis >= 0) else -axis
    if ctx.is_param(scale) and (not bias or ctx.is_param(bias)) and scale_shape and len(scale_shape) == normalized:
        layer = paddle.nn.LayerNorm(list(scale_shape), epsilon=eps, weight_attr=zero_init(),
                                    bias_attr=zero_init() if bias else False)
        layer.weight = ctx.param(scale)
        if bias:
            layer.bias = ctx.param(bias)
        return layer_of(layer, [x])

    def layer_norm(x: Any, w: Any, b: Any = None) -> Any:
        start = axis if axis >= 0 else x.ndim + axis
        return F.layer_norm(x, x.shape[start:], w, b, eps)

    return fn_of(layer_norm, [x, scale] + ([bias] if bias else []))


@converter("LpNormalization", since=1)
def convert_lp_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    p, axis = int(attr(node, "p", 2)), int(attr(node, "axis", -1))

    if p not in (1, 2):
        raise NotImplementedError(f"LpNormalization with p={p} is not implemented (ONNX allows 1 and 2)")

    def lp_norm(x: Any) -> Any:  # (paddle.linalg.norm takes a matrix norm on some ranks)
        norm = paddle.abs(x).sum(axis=axis, keepdim=True) if p == 1 else paddle.sqrt((x * x).sum(axis=axis, keepdim=True))
        return x / paddle.where(norm == 0, paddle.ones_like(norm), norm)  # a zero vector stays zero

    return fn_of(lp_norm, [node.input[0]])


def _layer_norm_with_statistics(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """LayerNormalization written out (float32 statistics, as stash_type=1) with its Mean / InvStdDev outputs."""
    axis, eps = int(attr(node, "axis", -1)), float(attr(node, "epsilon", 1e-5))
    if attr(node, "stash_type", 1) != 1:
        raise NotImplementedError("LayerNormalization with stash_type other than float32 is not implemented")
    count = len(node.output)

    def layer_norm(x: Any, w: Any, b: Any = None) -> Any:
        start = axis % x.ndim
        axes = list(range(start, x.ndim))
        xf = x.astype("float32")
        mean = xf.mean(axis=axes, keepdim=True)
        inv_std = paddle.rsqrt(((xf - mean) ** 2).mean(axis=axes, keepdim=True) + eps)
        y = (xf - mean) * inv_std * w.astype("float32")
        if b is not None:
            y = y + b.astype("float32")
        return (y.astype(x.dtype), mean, inv_std)[:count]

    inputs = [i for i in node.input[:3] if i]
    return fn_of(layer_norm, inputs)


@converter("RMSNormalization", since=23)
def convert_rms_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axis, eps = int(attr(node, "axis", -1)), float(attr(node, "epsilon", 1e-5))

    def rms_norm(x: Any, w: Any) -> Any:
        axes = list(range(axis % x.ndim, x.ndim))
        xf = x.astype("float32")
        y = xf * paddle.rsqrt((xf * xf).mean(axis=axes, keepdim=True) + eps)
        return (y * w.astype("float32")).astype(x.dtype)

    return fn_of(rms_norm, node.input[:2])


@converter("InstanceNormalization", since=1)
def convert_instance_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    eps = float(attr(node, "epsilon", 1e-5))

    def instance_norm(x: Any, w: Any, b: Any) -> Any:
        axes = list(range(2, x.ndim))
        mean = x.mean(axis=axes, keepdim=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdim=True)
        shape = [1, -1] + [1] * (x.ndim - 2)
        return (x - mean) / paddle.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)

    return fn_of(instance_norm, node.input[:3])


@converter("GroupNormalization", since=21)
def convert_group_norm(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    eps, groups = float(attr(node, "epsilon", 1e-5)), int(attr(node, "num_groups"))

    def group_norm(x: Any, w: Any, b: Any) -> Any:
        n, c = x.shape[:2]
        g = x.reshape([n, groups, -1])
        mean = g.mean(axis=-1, keepdim=True)
        var = ((g - mean) ** 2).mean(axis=-1, keepdim=True)
        y = ((g - mean) / paddle.sqrt(var + eps)).reshape(x.shape)
        shape = [1, -1] + [1] * (x.ndim - 2)
        return y * w.reshape(shape) + b.reshape(shape)

    return fn_of(group_norm, node.input[:3])


@converter("MeanVarianceNormalization", since=9)
def convert_mvn(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    axes = [int(a) for a in attr(node, "axes", [0, 2, 3])]

    def mvn(x: Any) -> Any:
        mean = x.mean(axis=axes, keepdim=True)
        var = (x * x).mean(axis=axes, keepdim=True) - mean * mean
        return (x - mean) / (paddle.sqrt(var) + 1e-9)

    return fn_of(mvn, [node.input[0]])


@converter("LRN", since=1)
def convert_lrn(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    size = int(attr(node, "size"))
    alpha, beta, bias = float(attr(node, "alpha", 1e-4)), float(attr(node, "beta", 0.75)), float(attr(node, "bias", 1.0))
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2

    def lrn(x: Any) -> Any:
        sq = x * x
        c = x.shape[1]
        zeros_b = paddle.zeros([x.shape[0], before, *x.shape[2:]], x.dtype)
        zeros_a = paddle.zeros([x.shape[0], after, *x.shape[2:]], x.dtype)
        padded = paddle.concat([zeros_b, sq, zeros_a], axis=1)
        total = sum(padded[:, i : i + c] for i in range(size))
        return x / (bias + alpha / size * total) ** beta

    return fn_of(lrn, [node.input[0]])
