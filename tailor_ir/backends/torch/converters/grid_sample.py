"""GridSample (16+) on torch's ``grid_sample`` for the attribute combinations whose rules match ONNX's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result

_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
          "bicubic": "bicubic"}


class GridSample(nn.Module):
    """Sample ``x`` at the normalised ``grid`` locations (torch.nn.functional.grid_sample)."""

    def __init__(self, mode: str, padding: str, align_corners: bool) -> None:
        super().__init__()
        self.mode, self.padding, self.align_corners = mode, padding, align_corners

    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        if self.mode == "bicubic" and x.dim() != 4:
            raise NotImplementedError("GridSample cubic on volumes")
        return F.grid_sample(x, grid.to(x.dtype), self.mode, self.padding, self.align_corners)


@converter("GridSample", since=16)
def convert_grid_sample(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    mode = attr(node, "mode", "linear" if "mode" not in node.attributes else node.attributes["mode"])
    if mode not in _MODES:
        raise NotImplementedError(f"GridSample mode {mode!r}")
    padding = attr(node, "padding_mode", "zeros")
    module = GridSample(_MODES[mode], padding, bool(attr(node, "align_corners", 0)))
    return result(module, node)
