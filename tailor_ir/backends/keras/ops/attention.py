"""Attention (opset 23/24): 3-D or 4-D Q/K/V, grouped-query heads, past key/value caches, boolean or additive
masks (padded to the key length), causal masking aligned bottom-right, non-padded key lengths, softcap, sliding
windows, ``softmax_precision`` and every ``qk_matmul_output_mode``, step by step as ONNX's reference
(``onnx.reference.ops.op_attention``) computes them, so the function's expanded form and the op agree."""

from __future__ import annotations

import math
from typing import Any

import onnx

from ....imports import import_tensorflow
from ..context import BuildContext, RunState, attr
from ..registry import converter
from ..values import Value

tf = import_tensorflow()

MODE_WITH_BIAS, MODE_AFTER_SOFTMAX = 2, 3


def _heads(x: Any, heads: int) -> Any:
    """(batch, seq, hidden) -> (batch, heads, seq, hidden / heads)."""
    shape = tf.shape(x)
    split = tf.reshape(x, tf.stack([shape[0], shape[1], heads, shape[2] // heads]))
    return tf.transpose(split, (0, 2, 1, 3))


def _where(allowed: Any, dtype: Any) -> Any:
    """0 where ``allowed``, -inf elsewhere, in ``dtype``."""
    return tf.where(allowed, tf.zeros([], dtype), tf.fill([], tf.constant(-math.inf, dtype)))


class _Attention:
    """The node's attributes and its forward computation on TensorFlow tensors."""

    def __init__(self, node: onnx.NodeProto) -> None:
        self.scale = attr(node, "scale")
        self.causal = bool(attr(node, "is_causal", 0))
        self.q_heads, self.kv_heads = attr(node, "q_num_heads"), attr(node, "kv_num_heads")
        self.softcap = attr(node, "softcap")
        self.mode = int(attr(node, "qk_matmul_output_mode", 0))
        self.left, self.right = (
            int(attr(node, "left_window_size", -1)),
            int(attr(node, "right_window_size", -1)),
        )
        precision = attr(node, "softmax_precision")
        self.softmax_dtype = (
            None if precision is None else tf.as_dtype(onnx.helper.tensor_dtype_to_np_dtype(precision))
        )

    def _mask_bias(self, mask: Any, skv: Any, dtype: Any) -> Any:
        """The mask padded to the key length (False / -inf) and made additive (0 / -inf) in ``dtype``."""
        pad = tf.maximum(skv - tf.shape(mask)[-1], 0)
        paddings = tf.concat(
            [tf.zeros([tf.rank(mask) - 1, 2], tf.int32), tf.reshape(tf.stack([0, pad]), [1, 2])], 0
        )
        if mask.dtype == tf.bool:
            return _where(tf.pad(mask, paddings, constant_values=False), dtype)
        return tf.cast(tf.pad(mask, paddings, constant_values=-math.inf), dtype)

    def _bias(self, q: Any, mask: Any, past_k: Any, nonpad: Any, sq: Any, skv: Any) -> Any:
        """The additive bias: mask, causal frontier, sliding window and key padding."""
        dtype = q.dtype
        zeros = tf.zeros(tf.stack([sq, skv]), dtype)
        mask = None if mask is None else self._mask_bias(mask, skv, dtype)
        i = tf.reshape(tf.range(sq, dtype=tf.int64), [-1, 1])
        j = tf.reshape(tf.range(skv, dtype=tf.int64), [1, -1])
        if past_k is None and nonpad is not None:  # external cache: a frontier per batch row, (batch, 1, 1)
            offset = tf.reshape(tf.cast(nonpad, tf.int64), [-1, 1, 1]) - tf.cast(sq, tf.int64)
        else:
            offset = (
                tf.cast(tf.shape(past_k)[2], tf.int64) if past_k is not None else tf.constant(0, tf.int64)
            )

        def by_row(allowed: Any) -> Any:  # a per-batch (batch, q, kv) mask broadcast as (batch, 1, q, kv)
            extra = _where(allowed, dtype)
            return tf.expand_dims(extra, 1) if len(allowed.shape) == 3 else extra

        bias = zeros
        if self.causal:
            base = zeros if mask is None else mask
            if self.left >= 0 or self.right >= 0:
                base = zeros + base
            bias = base + by_row(j <= i + offset)
        elif mask is not None:
            bias = zeros + mask
        if self.left >= 0 or self.right >= 0:
            diff = i + offset - j
            allowed = tf.ones_like(diff, tf.bool)
            if self.left >= 0:
                allowed = allowed & (diff <= self.left)
            if self.right >= 0:
                allowed = allowed & (-diff <= self.right)
            bias = zeros + bias + by_row(allowed)
        if nonpad is not None:
            valid = tf.reshape(j, [1, 1, 1, -1]) < tf.reshape(tf.cast(nonpad, tf.int64), [-1, 1, 1, 1])
            bias = bias + _where(valid, dtype)
        return bias

    def __call__(
        self,
        q: Any,
        k: Any,
        v: Any,
        mask: Any = None,
        past_k: Any = None,
        past_v: Any = None,
        nonpad: Any = None,
    ) -> tuple[Any, Any, Any, Any]:
        rank3 = len(q.shape) == 3
        if rank3:
            q, k, v = _heads(q, self.q_heads), _heads(k, self.kv_heads), _heads(v, self.kv_heads)
        dtype = q.dtype
        scale = self.scale if self.scale is not None else 1 / math.sqrt(q.shape[3])
        root = tf.constant(math.sqrt(scale), dtype)
        present_k = tf.concat([past_k, k], axis=2) if past_k is not None else k
        present_v = tf.concat([past_v, v], axis=2) if past_v is not None else v
        k, v = present_k, present_v
        sq, skv = tf.shape(q)[2], tf.shape(k)[2]
        bias = self._bias(q, mask, past_k, nonpad, sq, skv)
        heads, kv_heads = q.shape[1], k.shape[1]
        if heads != kv_heads and heads % kv_heads == 0:
            k = tf.repeat(k, heads // kv_heads, axis=1)
            v = tf.repeat(v, heads // kv_heads, axis=1)
        qk = tf.matmul(q * root, k * root, transpose_b=True)
        if self.softcap is not None and self.softcap > 0:
            cap = tf.constant(self.softcap, dtype)
            qk = tf.tanh(qk / cap) * cap
        with_bias = qk + bias
        qk_out = with_bias if self.mode == MODE_WITH_BIAS else qk
        logits = with_bias if self.softmax_dtype is None else tf.cast(with_bias, self.softmax_dtype)
        row_max = tf.reduce_max(logits, axis=-1, keepdims=True)
        zero = tf.zeros([], logits.dtype)
        e = tf.exp(logits - tf.where(tf.math.is_inf(row_max) & (row_max < 0), zero, row_max))
        total = tf.reduce_sum(e, axis=-1, keepdims=True)
        probs = e / tf.where(total == 0, tf.ones([], logits.dtype), total)
        bias_max = tf.reduce_max(bias, axis=-1, keepdims=True)
        probs = tf.where(tf.math.is_inf(bias_max) & (bias_max < 0), zero, probs)
        if self.mode == MODE_AFTER_SOFTMAX:
            qk_out = probs
        y = tf.matmul(tf.cast(probs, dtype), v)
        if rank3:
            y = tf.transpose(y, (0, 2, 1, 3))
            shape = tf.shape(y)
            y = tf.reshape(y, tf.stack([shape[0], shape[1], shape[2] * shape[3]]))
        return y, present_k, present_v, tf.cast(qk_out, dtype)


@converter("Attention", since=23)
def attention(node: onnx.NodeProto, ctx: BuildContext) -> Any:
    """bfloat16 is refused: ONNX rounds every intermediate (scaled Q and K, the products, the softmax) to
    bfloat16, and one rounding of a float32 computation lands a bfloat16 unit away from it (float16 agrees)."""
    if ctx.graph.elem_type_of(node.input[0]) == onnx.TensorProto.BFLOAT16:
        raise NotImplementedError(
            "Attention in bfloat16 (ONNX rounds each step to bfloat16); cast Q, K and V "
            "to float32 or float16 before the node"
        )
    compute = _Attention(node)

    def run(state: RunState, *inputs: Value | None) -> tuple[Value, ...]:
        tensors = [None if x is None else x.logical() for x in inputs]
        return tuple(Value(t) for t in compute(*tensors))

    return run
