"""Sequence ops that exporters emit for plain tensor code (``torch.chunk`` / ``torch.split`` / lists of tensors).

A sequence is a Python tuple of tensors inside the fx graph; its length is fixed by the input's shape at run
time (the exporter's split sizes are static), so nothing needs a true dynamic list.
"""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result


class SplitToSequence(nn.Module):
    """Split into a tuple: by a scalar chunk size, by a list of sizes, or into single slices (keepdims)."""

    def __init__(self, axis: int, keepdims: bool) -> None:
        super().__init__()
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if split is None:
            parts = torch.split(x, 1, self.axis)
            return parts if self.keepdims else tuple(p.squeeze(self.axis) for p in parts)
        if split.dim() == 0:
            return tuple(torch.split(x, int(split), self.axis))
        return tuple(torch.split(x, [int(s) for s in split.tolist()], self.axis))


@converter("SplitToSequence", since=11)
def convert_split_to_sequence(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(SplitToSequence(int(attr(node, "axis", 0)), bool(attr(node, "keepdims", 1))), node)


class SequenceAt(nn.Module):
    """The tensor at a (possibly negative) position."""

    def forward(self, sequence: tuple[torch.Tensor, ...], position: torch.Tensor) -> torch.Tensor:
        return sequence[int(position)]


@converter("SequenceAt", since=11)
def convert_sequence_at(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(SequenceAt(), node)


class ConcatFromSequence(nn.Module):
    """Concatenate (or stack, ``new_axis=1``) the tensors of a sequence."""

    def __init__(self, axis: int, new_axis: bool) -> None:
        super().__init__()
        self.axis, self.new_axis = axis, new_axis

    def forward(self, sequence: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.stack(sequence, self.axis) if self.new_axis else torch.cat(sequence, self.axis)


@converter("ConcatFromSequence", since=11)
def convert_concat_from_sequence(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(ConcatFromSequence(int(attr(node, "axis", 0)), bool(attr(node, "new_axis", 0))), node)


class SequenceLength(nn.Module):
    """The number of tensors, as an int64 scalar."""

    def forward(self, sequence: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.tensor(len(sequence), dtype=torch.int64)


@converter("SequenceLength", since=11)
def convert_sequence_length(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(SequenceLength(), node)


class SequenceConstruct(nn.Module):
    """A tuple of the given tensors."""

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(tensors)


@converter("SequenceConstruct", since=11)
def convert_sequence_construct(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(SequenceConstruct(), node)


class SequenceInsert(nn.Module):
    """A tuple with a tensor inserted at a position (default: appended)."""

    def forward(self, sequence: tuple[torch.Tensor, ...], tensor: torch.Tensor,
                position: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        items = list(sequence)
        if position is None:
            items.append(tensor)
        else:
            index = int(position)
            items.insert(index + len(items) if index < 0 else index, tensor)
        return tuple(items)


@converter("SequenceInsert", since=11)
def convert_sequence_insert(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return result(SequenceInsert(), node)
