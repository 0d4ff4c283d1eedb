"""MatMul and Gemm (numpy-style batch broadcasting; transposed operands never copied)."""

from __future__ import annotations

from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()


@converter("MatMul", since=1)
def matmul(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    def run(state: RunState, a: Value, b: Value) -> Value:
        x, y = a.logical(), b.logical()
        if a.rank == 1 and b.rank == 1:
            return Value(tf.tensordot(x, y, axes=1))
        if b.rank == 1:
            return Value(tf.squeeze(tf.matmul(x, tf.expand_dims(y, -1)), -1))
        if a.rank == 1:
            return Value(tf.squeeze(tf.matmul(tf.expand_dims(x, 0), y), -2))
        if a.rank > 2 and b.rank == 2 and a.perm is None:  # (..., K) @ (K, N): one 2-D product
            return Value(tf.tensordot(x, y, axes=1))
        return Value(tf.matmul(x, y))

    return run


@converter("Gemm", since=1)
def gemm(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    trans_a, trans_b = bool(attr(node, "transA", 0)), bool(attr(node, "transB", 0))

    def run(state: RunState, a: Value, b: Value, c: Value | None = None) -> Value:
        x, ta = _operand(a, trans_a)
        y, tb = _operand(b, trans_b)
        out = tf.matmul(x, y, transpose_a=ta, transpose_b=tb)  # no Transpose op, forward or backward
        if alpha != 1.0:
            out = alpha * out
        if c is not None:
            out = out + (beta * c.logical() if beta != 1.0 else c.logical())
        return Value(out)

    return run


def _operand(v: Value, transposed: bool) -> tuple[Any, bool]:
    """A 2-D Gemm operand as (physical tensor, transpose flag for ``tf.matmul``): a value held transposed (its
    layout tag) flips the flag instead of being transposed."""
    return v.t, transposed != (v.perm == (1, 0))
