"""LSTM and GRU on torch's fused recurrent kernels (the ones nn.LSTM / nn.GRU run).

The ONNX weights W, R, B arrive as inputs (usually computed from the model's own parameters); gates are
reordered from ONNX order (LSTM i,o,f,c; GRU z,r,h) to torch order (i,f,g,o; r,z,n) on the fly.
"""

from __future__ import annotations

import torch
from onnx2torch.onnx_graph import OnnxGraph
from onnx2torch.onnx_node import OnnxNode
from torch import nn

from ..registry import converter
from ._common import OperationConverterResult, attr, result

_LSTM_ORDER = (0, 2, 3, 1)  # torch gate k takes ONNX gate _LSTM_ORDER[k]
_GRU_ORDER = (1, 0, 2)


def _gate_index(order: tuple[int, ...], hidden: int) -> torch.Tensor:
    return torch.cat([torch.arange(g * hidden, (g + 1) * hidden) for g in order])


class Recurrent(nn.Module):
    """ONNX LSTM / GRU (forward, reverse or bidirectional; layout 0 or 1) on torch.lstm / torch.gru."""

    def __init__(self, cell: str, hidden: int, direction: str, layout: int, n_outputs: int) -> None:
        super().__init__()
        self.cell, self.hidden, self.layout, self.n_outputs = cell, hidden, layout, n_outputs
        self.bidirectional = direction == "bidirectional"
        self.reverse = direction == "reverse"
        self.gates = 4 if cell == "lstm" else 3
        self.register_buffer("index", _gate_index(_LSTM_ORDER if cell == "lstm" else _GRU_ORDER, hidden), False)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None = None,
        sequence_lens: torch.Tensor | None = None, initial_h: torch.Tensor | None = None,
        initial_c: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.layout == 1:  # (batch, seq, ...) -> (seq, batch, ...)
            x = x.transpose(0, 1)
            initial_h = initial_h.transpose(0, 1) if initial_h is not None else None
            initial_c = initial_c.transpose(0, 1) if initial_c is not None else None
        dirs = w.shape[0]
        batch = x.shape[1]
        gh = self.gates * self.hidden
        params: list[torch.Tensor] = []
        for d in range(dirs):
            params += [w[d].index_select(0, self.index), r[d].index_select(0, self.index)]
            if b is None:
                params += [x.new_zeros(gh), x.new_zeros(gh)]
            else:
                params += [b[d, :gh].index_select(0, self.index), b[d, gh:].index_select(0, self.index)]
        h0 = initial_h if initial_h is not None else x.new_zeros(dirs, batch, self.hidden)
        if self.reverse:
            x = x.flip(0)
        if self.cell == "lstm":
            c0 = initial_c if initial_c is not None else x.new_zeros(dirs, batch, self.hidden)
            y, h, c = torch.lstm(x, (h0, c0), params, True, 1, 0.0, self.training, self.bidirectional, False)
        else:
            y, h = torch.gru(x, h0, params, True, 1, 0.0, self.training, self.bidirectional, False)
            c = None
        if self.reverse:
            y = y.flip(0)
        y = y.reshape(y.shape[0], batch, dirs, self.hidden)  # (seq, batch, dirs, hidden)
        if self.layout == 1:
            y = y.permute(1, 0, 2, 3)  # (batch, seq, dirs, hidden)
            h = h.transpose(0, 1)
            c = c.transpose(0, 1) if c is not None else None
        else:
            y = y.permute(0, 2, 1, 3)  # (seq, dirs, batch, hidden)
        outs = (y, h, c)[: self.n_outputs]
        return outs[0] if self.n_outputs == 1 else outs


def _convert(node: OnnxNode, graph: OnnxGraph, cell: str) -> OperationConverterResult:
    if len(node.input_values) > 4 and node.input_values[4]:
        raise NotImplementedError(f"{node.operation_type} with sequence_lens is not implemented")
    if len(node.input_values) > 7 and node.input_values[7]:
        raise NotImplementedError("LSTM with peepholes is not implemented")
    if attr(node, "activations", None) or attr(node, "clip", None) or attr(node, "input_forget", 0):
        raise NotImplementedError(f"{node.operation_type} with custom activations/clip/input_forget is not implemented")
    if cell == "gru" and not attr(node, "linear_before_reset", 0):
        raise NotImplementedError("GRU with linear_before_reset=0 has no torch kernel")
    module = Recurrent(
        cell, int(attr(node, "hidden_size", 0)), attr(node, "direction", "forward"), int(attr(node, "layout", 0)),
        len(node.output_values),
    )
    return result(module, node)


@converter("LSTM", since=7)
def convert_lstm(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _convert(node, graph, "lstm")


@converter("GRU", since=7)
def convert_gru(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _convert(node, graph, "gru")
