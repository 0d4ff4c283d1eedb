"""Recurrent layers: PaddleRNN (the pre-pass's LSTM/GRU on paddle-layout weights) -> a real paddle LSTM/GRU;
every other ONNX LSTM/GRU/RNN (ONNX-layout weights from any exporter, bidirectional or reverse, sequence_lens,
initial states, peepholes, clip, batch-first layout) runs step by step as paddle functions on its W/R/B, which
stay trainable parameters when they are weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of, layer_of
from ..prepass import DOMAIN
from ..registry import converter
from ._common import F, paddle

SLOTS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


class RNN(paddle.nn.Layer):
    """A time-major paddle LSTM/GRU returning ONNX's (Y, Y_h[, Y_c]) layout."""

    def __init__(self, rnn: Any, lstm: bool) -> None:
        super().__init__()
        self.rnn = rnn
        self.lstm = lstm

    def forward(self, x: Any, h0: Any = None, c0: Any = None) -> Any:
        states = None
        if h0 is not None:
            states = (h0, c0 if c0 is not None else paddle.zeros_like(h0)) if self.lstm else h0
        y, final = self.rnn(x, states)
        y = y.unsqueeze(1)  # (seq, num_directions=1, batch, hidden)
        return (y, *final) if self.lstm else (y, final)


@converter("PaddleRNN", since=1, domain=DOMAIN)
def convert_paddle_rnn(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    mode, hidden = attr(node, "mode"), int(attr(node, "hidden_size"))
    lstm = mode == "LSTM"
    states = list(node.input[1:3] if lstm else node.input[1:2])
    weights = list(node.input[len(states) + 1 :])
    input_size = int(ctx.shape(weights[0])[1])
    rnn = (paddle.nn.LSTM if lstm else paddle.nn.GRU)(input_size, hidden, time_major=True)
    for slot, name in zip(SLOTS, weights):
        ctx.adopt(name, getattr(rnn, slot))
    return layer_of(RNN(rnn, lstm), [node.input[0], *states])


ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "Sigmoid": F.sigmoid, "Tanh": paddle.tanh, "Relu": F.relu, "Softsign": F.softsign, "Softplus": F.softplus,
}
DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


class _Recurrence:
    """One ONNX LSTM / GRU / RNN node: ``(X, W, R, B, sequence_lens, initial_h[, initial_c, P]) -> outputs``."""

    def __init__(self, op: str, hidden: int, directions: list[bool], acts: list[Callable[[Any], Any]],
                 clip: float | None, layout: int, linear_before_reset: bool, outputs: int) -> None:
        self.op, self.hidden, self.directions, self.acts = op, hidden, directions, acts
        self.clip, self.layout, self.lbr, self.outputs = clip, layout, linear_before_reset, outputs

    def __call__(self, x: Any, w: Any, r: Any, b: Any = None, lens: Any = None, h0: Any = None, c0: Any = None,
                 p: Any = None) -> Any:
        if self.layout:
            x = x.transpose([1, 0, 2])
            h0 = h0.transpose([1, 0, 2]) if h0 is not None else None
            c0 = c0.transpose([1, 0, 2]) if c0 is not None else None
        steps, batch = x.shape[0], x.shape[1]
        g, hs = GATES[self.op], self.hidden
        if lens is not None:
            lengths = lens.astype("int64")
        else:
            lengths = paddle.full([batch], steps, dtype="int64")
        t = paddle.arange(steps, dtype="int64").unsqueeze(1)
        valid = (t < lengths.unsqueeze(0)).astype(x.dtype).unsqueeze(-1)  # (steps, batch, 1)
        ys, hs_out, cs_out = [], [], []
        for d, reverse in enumerate(self.directions):
            bias = b[d] if b is not None else paddle.zeros([2 * g * hs], x.dtype)
            h = h0[d] if h0 is not None else paddle.zeros([batch, hs], x.dtype)
            c = c0[d] if c0 is not None else paddle.zeros([batch, hs], x.dtype)
            order = paddle.where(t < lengths.unsqueeze(0), lengths.unsqueeze(0) - 1 - t, t) if reverse else None
            seq = paddle.take_along_axis(x, order.unsqueeze(-1).expand(x.shape), 0) if reverse else x
            xw = paddle.matmul(seq, w[d], transpose_y=True) + bias[: g * hs]
            out = []
            for step in range(steps):
                h_new, c_new = self._cell(xw[step], h, c, r[d], bias[g * hs:], p[d] if p is not None else None)
                m = valid[step]
                h = m * h_new + (1 - m) * h
                c = m * c_new + (1 - m) * c
                out.append(h * m)
            y = paddle.stack(out)
            if reverse:
                y = paddle.take_along_axis(y, order.unsqueeze(-1).expand(y.shape), 0)
            ys.append(y)
            hs_out.append(h)
            cs_out.append(c)
        y, y_h, y_c = paddle.stack(ys, axis=1), paddle.stack(hs_out), paddle.stack(cs_out)
        if self.layout:
            y, y_h, y_c = y.transpose([2, 0, 1, 3]), y_h.transpose([1, 0, 2]), y_c.transpose([1, 0, 2])
        return (y, y_h, y_c)[: self.outputs] if self.outputs > 1 else y

    def _gate(self, v: Any) -> Any:
        return paddle.clip(v, -self.clip, self.clip) if self.clip else v

    def _cell(self, xw: Any, h: Any, c: Any, r: Any, rb: Any, p: Any) -> tuple[Any, Any]:
        hs, acts = self.hidden, self.acts
        if self.op == "RNN":
            return acts[0](self._gate(xw + paddle.matmul(h, r, transpose_y=True) + rb)), c
        if self.op == "LSTM":
            v = xw + paddle.matmul(h, r, transpose_y=True) + rb
            i, o, f, cc = (v[:, k * hs:(k + 1) * hs] for k in range(4))
            if p is not None:
                i, f = i + p[:hs] * c, f + p[2 * hs:] * c
            i, f, cc = acts[0](self._gate(i)), acts[0](self._gate(f)), acts[1](self._gate(cc))
            c = f * c + i * cc
            if p is not None:
                o = o + p[hs:2 * hs] * c
            return acts[0](self._gate(o)) * acts[2](c), c
        z_x, r_x, h_x = (xw[:, k * hs:(k + 1) * hs] for k in range(3))
        z_r, r_r, h_r = (r[k * hs:(k + 1) * hs] for k in range(3))
        rb_z, rb_r, rb_h = (rb[k * hs:(k + 1) * hs] for k in range(3))
        z = acts[0](self._gate(z_x + paddle.matmul(h, z_r, transpose_y=True) + rb_z))
        reset = acts[0](self._gate(r_x + paddle.matmul(h, r_r, transpose_y=True) + rb_r))
        if self.lbr:
            cand = h_x + reset * (paddle.matmul(h, h_r, transpose_y=True) + rb_h)
        else:
            cand = h_x + paddle.matmul(reset * h, h_r, transpose_y=True) + rb_h
        cand = acts[1](self._gate(cand))
        return (1 - z) * cand + z * h, c


def _recurrent(op: str) -> None:
    @converter(op, since=7)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        direction = attr(node, "direction", "forward")
        directions = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]
        if attr(node, "activation_alpha") is not None or attr(node, "activation_beta") is not None:
            raise NotImplementedError(f"{op} with activation_alpha/beta is not implemented")
        if attr(node, "input_forget", 0):
            raise NotImplementedError("LSTM with input_forget=1 is not implemented")
        names = list(attr(node, "activations", None) or DEFAULTS[op] * len(directions))
        per_direction = len(DEFAULTS[op])
        if names[:per_direction] * len(directions) != names or any(n not in ACTIVATIONS for n in names):
            raise NotImplementedError(f"{op} activations {names} are not implemented")
        acts = [ACTIVATIONS[n] for n in names[:per_direction]]
        clip = attr(node, "clip")
        outputs = len(node.output)
        rnn = _Recurrence(op, int(attr(node, "hidden_size")), directions, acts, float(clip) if clip else None,
                          int(attr(node, "layout", 0)), bool(attr(node, "linear_before_reset", 0)), outputs)
        return fn_of(rnn, list(node.input))


for _op in GATES:
    _recurrent(_op)
