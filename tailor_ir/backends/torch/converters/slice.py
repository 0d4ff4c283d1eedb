"""Slice with tuple indexing (onnx2torch's indexes with a list, deprecated in torch and warned on every call)."""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, const_array, result


def _index(x: torch.Tensor, starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> torch.Tensor:
    index: list[slice] = [slice(None)] * x.dim()
    flips: list[int] = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis % x.dim()
        size = x.shape[axis]
        if step > 0:
            start = max(0, min(size, start + size if start < 0 else start))
            end = max(0, min(size, end + size if end < 0 else end))
            index[axis] = slice(start, end, step)
        else:  # negative step: pick the same elements forwards, then flip
            start = max(-1, min(size - 1, start + size if start < 0 else start))
            end = max(-1, min(size - 1, end + size if end < 0 else end))
            picked = list(range(start, end, step))
            if not picked:
                index[axis] = slice(0, 0)
            else:
                index[axis] = slice(picked[-1], picked[0] + 1, -step)
                flips.append(axis)
    y = x[tuple(index)]
    return y.flip(flips) if flips else y


class StaticSlice(nn.Module):
    """A Slice whose starts/ends/axes/steps are known at build time."""

    def __init__(self, starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> None:
        super().__init__()
        self.args = (starts, ends, axes, steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _index(x, *self.args)


class DynamicSlice(nn.Module):
    """A Slice with computed bounds."""

    def forward(self, x: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, axes: torch.Tensor | None = None,
                steps: torch.Tensor | None = None) -> torch.Tensor:
        s, e = starts.tolist(), ends.tolist()
        a = axes.tolist() if axes is not None else list(range(len(s)))
        st = steps.tolist() if steps is not None else [1] * len(s)
        return _index(x, s, e, a, st)


@converter("Slice", since=10)
def convert_slice(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    names = list(node.input_values[1:]) + [""] * (4 - len(node.input_values[1:]))
    values = [const_array(n, graph) if n else None for n in names]
    starts, ends, axes, steps = values
    dynamic = [n for n, v in zip(names[:2], values[:2]) if v is None] + [
        n for n, v in zip(names[2:], values[2:]) if n and v is None
    ]
    if dynamic:
        return result(DynamicSlice(), node)
    s = [int(v) for v in starts.reshape(-1)]
    e = [int(v) for v in ends.reshape(-1)]
    a = [int(v) for v in axes.reshape(-1)] if axes is not None else list(range(len(s)))
    st = [int(v) for v in steps.reshape(-1)] if steps is not None else [1] * len(s)
    return result(StaticSlice(s, e, a, st), node, inputs=(node.input_values[0],))
