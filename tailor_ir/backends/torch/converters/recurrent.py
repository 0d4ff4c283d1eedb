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


_ACTIVATIONS = {"Tanh": torch.tanh, "Relu": torch.relu, "Sigmoid": torch.sigmoid}


class LoopRecurrent(nn.Module):
    """ONNX RNN, and GRU with linear_before_reset=0 (no torch kernel), as an explicit loop over time steps."""

    def __init__(self, cell: str, hidden: int, direction: str, layout: int, n_outputs: int,
                 activations: list[str]) -> None:
        super().__init__()
        self.cell, self.hidden, self.direction, self.layout, self.n_outputs = cell, hidden, direction, layout, n_outputs
        self.activations = activations

    def _step(self, x: torch.Tensor, h: torch.Tensor, w: torch.Tensor, r: torch.Tensor, wb: torch.Tensor,
              rb: torch.Tensor, acts: list[str]) -> torch.Tensor:
        if self.cell == "rnn":
            return _ACTIVATIONS[acts[0]](x @ w.t() + h @ r.t() + wb + rb)
        f, g = _ACTIVATIONS[acts[0]], _ACTIVATIONS[acts[1]]
        n = self.hidden
        xw = x @ w.t() + wb
        z = f(xw[:, :n] + h @ r[:n].t() + rb[:n])
        rt = f(xw[:, n : 2 * n] + h @ r[n : 2 * n].t() + rb[n : 2 * n])
        hh = g(xw[:, 2 * n :] + (rt * h) @ r[2 * n :].t() + rb[2 * n :])
        return (1 - z) * hh + z * h

    def forward(self, x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None = None,
                sequence_lens: torch.Tensor | None = None,
                initial_h: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.layout == 1:
            x = x.transpose(0, 1)
            initial_h = initial_h.transpose(0, 1) if initial_h is not None else None
        dirs, steps, batch = w.shape[0], x.shape[0], x.shape[1]
        gates = w.shape[1]
        ys, hs = [], []
        per_dir = len(self.activations) // dirs
        for d in range(dirs):
            wb = b[d, :gates] if b is not None else x.new_zeros(gates)
            rb = b[d, gates:] if b is not None else x.new_zeros(gates)
            h = initial_h[d] if initial_h is not None else x.new_zeros(batch, self.hidden)
            reverse = self.direction == "reverse" or d == 1
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            outs: list[torch.Tensor] = [x.new_zeros(0)] * steps
            for t in order:
                h = self._step(x[t], h, w[d], r[d], wb, rb, self.activations[d * per_dir : (d + 1) * per_dir])
                outs[t] = h
            ys.append(torch.stack(outs))
            hs.append(h)
        y = torch.stack(ys, 1)  # (seq, dirs, batch, hidden)
        h_last = torch.stack(hs)
        if self.layout == 1:
            y, h_last = y.permute(2, 0, 1, 3), h_last.transpose(0, 1)
        outs_all = (y, h_last)[: self.n_outputs]
        return outs_all[0] if self.n_outputs == 1 else outs_all


def _loop(node: OnnxNode, cell: str) -> OperationConverterResult:
    direction = attr(node, "direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    default = ["Tanh"] if cell == "rnn" else ["Sigmoid", "Tanh"]
    acts = [a.decode() if isinstance(a, bytes) else a for a in attr(node, "activations", default * dirs)]
    if any(a not in _ACTIVATIONS for a in acts) or attr(node, "clip", None):
        raise NotImplementedError(f"{node.operation_type} with activations {acts} or clip is not implemented")
    if len(node.input_values) > 4 and node.input_values[4]:
        raise NotImplementedError(f"{node.operation_type} with sequence_lens is not implemented")
    module = LoopRecurrent(cell, int(attr(node, "hidden_size", 0)), direction, int(attr(node, "layout", 0)),
                           len(node.output_values), acts)
    return result(module, node)


@converter("RNN", since=7)
def convert_rnn(node: OnnxNode, graph: OnnxGraph) -> OperationConverterResult:
    return _loop(node, "rnn")


def _convert(node: OnnxNode, graph: OnnxGraph, cell: str) -> OperationConverterResult:
    if cell == "gru" and not attr(node, "linear_before_reset", 0):
        return _loop(node, "gru")
    if len(node.input_values) > 4 and node.input_values[4]:
        raise NotImplementedError(f"{node.operation_type} with sequence_lens is not implemented")
    if len(node.input_values) > 7 and node.input_values[7]:
        raise NotImplementedError("LSTM with peepholes is not implemented")
    if attr(node, "activations", None) or attr(node, "clip", None) or attr(node, "input_forget", 0):
        raise NotImplementedError(f"{node.operation_type} with custom activations/clip/input_forget is not implemented")
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
