"""Recurrent layers: PaddleRNN (the pre-pass's LSTM/GRU on paddle-layout weights) -> a real paddle LSTM/GRU.

Plain ONNX LSTM/GRU nodes whose weights are not paddle's own (reordered) weights are refused with a reason.
"""

from __future__ import annotations

from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, layer_of
from ..prepass import DOMAIN
from ..registry import converter
from ._common import paddle

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


def _refuse(op: str) -> None:
    @converter(op, since=1)
    def convert(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
        raise NotImplementedError(
            f"only {op} nodes on paddle-layout weights (single direction, no sequence_lens) are implemented"
        )


for _op in ("LSTM", "GRU"):
    _refuse(_op)
