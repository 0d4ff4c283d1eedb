"""Reductions at opset 18+ (axes as an input): ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, const_array, result


def _reduce(kind: str, x: torch.Tensor, dim: tuple[int, ...] | None, keep: bool) -> torch.Tensor:
    dims = tuple(range(x.dim())) if dim is None else dim
    if kind in ("max", "min") and any(x.shape[d] == 0 for d in dims):
        return _empty_extremum(kind, x, dims, keep)
    if kind == "mean":
        return torch.mean(x, dim=dims, keepdim=keep)
    if kind == "sum":
        return torch.sum(x, dim=dims, keepdim=keep)
    if kind == "sumsquare":
        return torch.sum(x * x, dim=dims, keepdim=keep)
    if kind == "l1":
        return torch.sum(x.abs(), dim=dims, keepdim=keep)
    if kind == "l2":
        return torch.linalg.vector_norm(x, ord=2, dim=dims, keepdim=keep)
    if kind == "logsum":
        return torch.log(torch.sum(x, dim=dims, keepdim=keep))
    if kind == "logsumexp":
        return torch.logsumexp(x, dim=dims, keepdim=keep)
    if kind == "max":
        return torch.amax(x, dim=dims, keepdim=keep)
    if kind == "min":
        return torch.amin(x, dim=dims, keepdim=keep)
    if kind == "prod":
        for d in sorted((d % x.dim() for d in dims), reverse=True):
            x = torch.prod(x, dim=d, keepdim=keep)
        return x
    raise NotImplementedError(kind)


def _empty_extremum(kind: str, x: torch.Tensor, dims: tuple[int, ...], keep: bool) -> torch.Tensor:
    """Max / min over an empty set: the identity of the reduction (-inf / +inf, the dtype's bounds, False / True)."""
    axes = {d % x.dim() for d in dims}
    shape = [1 if i in axes else s for i, s in enumerate(x.shape) if keep or i not in axes]
    if x.dtype == torch.bool:
        fill: float | bool = kind == "min"
    elif x.dtype.is_floating_point:
        fill = float("-inf") if kind == "max" else float("inf")
    else:
        info = torch.iinfo(x.dtype)
        fill = info.min if kind == "max" else info.max
    return torch.full(shape, fill, dtype=x.dtype, device=x.device)


class Reduce(nn.Module):
    """A reduction over static axes (None = all axes, or identity when noop_with_empty_axes)."""

    def __init__(self, kind: str, axes: tuple[int, ...] | None, keepdims: bool, noop: bool) -> None:
        super().__init__()
        self.kind, self.axes, self.keepdims, self.noop = kind, axes, keepdims, noop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axes is None and self.noop:
            return x
        return _reduce(self.kind, x, self.axes, self.keepdims)


class ReduceDynamicAxes(Reduce):
    """A reduction whose axes are computed at run time."""

    def forward(self, x: torch.Tensor, axes: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        dims = tuple(int(a) for a in axes.tolist()) if axes is not None and axes.numel() else None
        if dims is None and self.noop:
            return x
        return _reduce(self.kind, x, dims, self.keepdims)


_KINDS = {
    "ReduceMean": "mean", "ReduceSum": "sum", "ReduceSumSquare": "sumsquare", "ReduceL1": "l1", "ReduceL2": "l2",
    "ReduceLogSum": "logsum", "ReduceLogSumExp": "logsumexp", "ReduceMax": "max", "ReduceMin": "min",
    "ReduceProd": "prod",
}


def _convert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    kind = _KINDS[node.operation_type]
    keep = bool(attr(node, "keepdims", 1))
    noop = bool(attr(node, "noop_with_empty_axes", 0))
    if "axes" in node.attributes:  # older opsets: axes attribute
        return result(Reduce(kind, tuple(node.attributes["axes"]), keep, False), node, inputs=(node.input_values[0],))
    if len(node.input_values) < 2 or not node.input_values[1]:
        return result(Reduce(kind, None, keep, noop), node, inputs=(node.input_values[0],))
    axes = const_array(node.input_values[1], graph)
    if axes is None:
        return result(ReduceDynamicAxes(kind, None, keep, noop), node)
    dims = tuple(int(a) for a in axes.reshape(-1)) or None
    return result(Reduce(kind, dims, keep, noop), node, inputs=(node.input_values[0],))


for _op in _KINDS:
    converter(_op, since=1)(_convert)
