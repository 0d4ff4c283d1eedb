"""LSTM and GRU as ``tf.scan`` loops over the ONNX-layout weights.

The weights stay in ONNX layout (gate order i,o,f,c for LSTM and z,r,h for GRU, with ONNX's separate input
and recurrent biases), so each initializer is exactly one trainable variable and no gate reordering (Keras
orders LSTM gates i,f,c,o and keeps one bias) can go wrong. Default activations only; no peepholes.
"""

from __future__ import annotations

from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()


def _check(node: onnx.NodeProto, defaults: list[str]) -> None:
    acts = attr(node, "activations")
    if acts is not None and [a.lower() for a in acts[: len(defaults)]] != [d.lower() for d in defaults]:
        raise NotImplementedError(f"activations {acts}")
    if attr(node, "clip") is not None:
        raise NotImplementedError("clip")
    if len(node.input) > 4 and node.input[4]:
        raise NotImplementedError("sequence_lens")


def _directions(node: onnx.NodeProto) -> list[bool]:
    """reverse flag per direction."""
    return {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[attr(node, "direction", "forward")]


def _outputs(ys: list[Any], finals: list[list[Any]], layout: int) -> tuple[Value, ...]:
    y = tf.stack(ys, axis=1)  # (T, dirs, B, H)
    if layout:
        y = tf.transpose(y, [2, 0, 1, 3])
    states = []
    for per_dir in finals:
        s = tf.stack(per_dir, axis=0)  # (dirs, B, H)
        states.append(Value(tf.transpose(s, [1, 0, 2]) if layout else s))
    return (Value(y), *states)


@converter("LSTM", since=7)
def lstm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    _check(node, ["Sigmoid", "Tanh", "Tanh"])
    if attr(node, "input_forget", 0) or (len(node.input) > 7 and node.input[7]):
        raise NotImplementedError("input_forget / peepholes")
    hidden, layout = attr(node, "hidden_size"), attr(node, "layout", 0)
    reverses = _directions(node)

    def run(state: RunState, x: Value, w: Value, r: Value, b: Value | None = None, _lens: Value | None = None,
            h0: Value | None = None, c0: Value | None = None, _p: Value | None = None) -> tuple[Value, ...]:
        seq = x.logical()
        if layout:
            seq = tf.transpose(seq, [1, 0, 2])
        batch = tf.shape(seq)[1]
        zeros = tf.zeros(tf.stack([batch, hidden]), seq.dtype)
        ys, hs, cs = [], [], []
        for d, reverse in enumerate(reverses):
            wd, rd = w.logical()[d], r.logical()[d]
            xw = tf.einsum("tbi,gi->tbg", seq, wd)
            if b is not None:
                bias = b.logical()[d]
                xw = xw + bias[: 4 * hidden] + bias[4 * hidden :]
            h_init = h0.logical()[d] if h0 is not None else zeros
            c_init = c0.logical()[d] if c0 is not None else zeros
            if layout and h0 is not None:
                h_init = tf.transpose(h0.logical(), [1, 0, 2])[d]
            if layout and c0 is not None:
                c_init = tf.transpose(c0.logical(), [1, 0, 2])[d]

            def step(carry: tuple[Any, Any], xt: Any, rd: Any = rd) -> tuple[Any, Any]:
                h, c = carry
                gates = xt + tf.matmul(h, rd, transpose_b=True)
                i, o, f, g = tf.split(gates, 4, axis=-1)
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                return tf.sigmoid(o) * tf.tanh(c), c

            h_seq, c_seq = tf.scan(step, xw, initializer=(h_init, c_init), reverse=reverse)
            last = 0 if reverse else -1
            ys.append(h_seq)
            hs.append(h_seq[last])
            cs.append(c_seq[last])
        return _outputs(ys, [hs, cs], layout)

    return run


@converter("GRU", since=7)
def gru(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    _check(node, ["Sigmoid", "Tanh"])
    hidden, layout = attr(node, "hidden_size"), attr(node, "layout", 0)
    before_reset = attr(node, "linear_before_reset", 0)
    reverses = _directions(node)

    def run(state: RunState, x: Value, w: Value, r: Value, b: Value | None = None, _lens: Value | None = None,
            h0: Value | None = None) -> tuple[Value, ...]:
        seq = x.logical()
        if layout:
            seq = tf.transpose(seq, [1, 0, 2])
        batch = tf.shape(seq)[1]
        zeros = tf.zeros(tf.stack([batch, hidden]), seq.dtype)
        ys, hs = [], []
        for d, reverse in enumerate(reverses):
            wd, rd = w.logical()[d], r.logical()[d]
            xw = tf.einsum("tbi,gi->tbg", seq, wd)
            if b is not None:
                bias = b.logical()[d]
                wb, rb = bias[: 3 * hidden], bias[3 * hidden :]
            else:
                wb = rb = tf.zeros([3 * hidden], seq.dtype)
            xw = xw + wb
            h_init = zeros
            if h0 is not None:
                h_init = (tf.transpose(h0.logical(), [1, 0, 2]) if layout else h0.logical())[d]

            def step(h: Any, xt: Any, rd: Any = rd, rb: Any = rb) -> Any:
                xz, xr, xh = tf.split(xt, 3, axis=-1)
                rz, rr, rh = tf.split(rd, 3, axis=0)
                bz, br, bh = tf.split(rb, 3, axis=0)
                z = tf.sigmoid(xz + tf.matmul(h, rz, transpose_b=True) + bz)
                reset = tf.sigmoid(xr + tf.matmul(h, rr, transpose_b=True) + br)
                if before_reset:
                    cand = tf.tanh(xh + reset * (tf.matmul(h, rh, transpose_b=True) + bh))
                else:
                    cand = tf.tanh(xh + tf.matmul(reset * h, rh, transpose_b=True) + bh)
                return (1 - z) * cand + z * h

            h_seq = tf.scan(step, xw, initializer=h_init, reverse=reverse)
            ys.append(h_seq)
            hs.append(h_seq[0 if reverse else -1])
        return _outputs(ys, [hs], layout)

    return run
