"""Attention (opset 23/24): 3-D or 4-D Q/K/V, grouped-query heads, past key/value caches, boolean or additive
masks (padded to the key length), causal masking aligned bottom-right, non-padded key lengths, softcap, sliding
windows and every ``qk_matmul_output_mode``, following ONNX's reference implementation step by step."""

from __future__ import annotations

import math
from typing import Any

import onnx

from ..context import BuildContext, Converted, attr, fn_of
from ..registry import converter
from ._common import paddle

NEG_INF = float("-inf")


class _Attention:
    def __init__(self, node: onnx.NodeProto) -> None:
        self.scale = attr(node, "scale")
        self.causal = bool(attr(node, "is_causal", 0))
        self.q_heads, self.kv_heads = attr(node, "q_num_heads"), attr(node, "kv_num_heads")
        self.softcap = attr(node, "softcap")
        self.mode = int(attr(node, "qk_matmul_output_mode", 0))
        self.left, self.right = int(attr(node, "left_window_size", -1)), int(attr(node, "right_window_size", -1))
        self.outputs = len(node.output)

    @staticmethod
    def _heads(x: Any, heads: int) -> Any:
        b, s, hidden = x.shape
        return x.reshape([b, s, heads, hidden // heads]).transpose([0, 2, 1, 3])

    def __call__(self, q: Any, k: Any, v: Any, mask: Any = None, past_k: Any = None, past_v: Any = None,
                 nonpad: Any = None) -> Any:
        rank3 = q.ndim == 3
        if rank3:
            q, k, v = self._heads(q, self.q_heads), self._heads(k, self.kv_heads), self._heads(v, self.kv_heads)
        dtype = q.dtype
        scale = self.scale if self.scale is not None else 1 / math.sqrt(q.shape[3])
        root = paddle.to_tensor(math.sqrt(scale), dtype=dtype)
        present_k = paddle.concat([past_k, k], axis=2) if past_k is not None else k
        present_v = paddle.concat([past_v, v], axis=2) if past_v is not None else v
        k, v = present_k, present_v
        sq, skv = q.shape[2], k.shape[2]
        bias = paddle.zeros([sq, skv], dtype)
        if mask is not None and mask.shape[-1] < skv:
            pad = [*mask.shape[:-1], skv - mask.shape[-1]]
            fill = paddle.zeros(pad, "bool") if mask.dtype == paddle.bool else paddle.full(pad, NEG_INF, mask.dtype)
            mask = paddle.concat([mask, fill], axis=-1)
        if mask is not None and mask.dtype == paddle.bool:
            mask = paddle.where(mask, paddle.zeros(mask.shape, dtype), paddle.full(mask.shape, NEG_INF, dtype))
        offset: Any = past_k.shape[2] if past_k is not None else 0
        if past_k is None and nonpad is not None:
            offset = nonpad.astype("int64").reshape([-1, 1, 1, 1]) - sq
        i = paddle.arange(sq, dtype="int64").reshape([sq, 1])
        j = paddle.arange(skv, dtype="int64").reshape([1, skv])
        if self.causal:
            base = mask if mask is not None else bias
            bias = base + paddle.where(j <= i + offset, paddle.zeros([], dtype), paddle.full([], NEG_INF, dtype))
        elif mask is not None:
            bias = bias + mask.astype(dtype)
        if self.left >= 0 or self.right >= 0:
            diff = i + offset - j
            allowed = paddle.ones(diff.shape, "bool")
            if self.left >= 0:
                allowed = allowed & (diff <= self.left)
            if self.right >= 0:
                allowed = allowed & (-diff <= self.right)
            bias = bias + paddle.where(allowed, paddle.zeros([], dtype), paddle.full([], NEG_INF, dtype))
        if nonpad is not None:
            valid = j.reshape([1, 1, 1, skv]) < nonpad.astype("int64").reshape([-1, 1, 1, 1])
            bias = bias + paddle.where(valid, paddle.zeros([], dtype), paddle.full([], NEG_INF, dtype))
        heads, kv_heads = q.shape[1], k.shape[1]
        if heads != kv_heads and heads % kv_heads == 0:
            k = paddle.repeat_interleave(k, heads // kv_heads, axis=1)
            v = paddle.repeat_interleave(v, heads // kv_heads, axis=1)
        qk = paddle.matmul(q * root, k * root, transpose_y=True)
        if self.softcap is not None and self.softcap > 0:
            qk = paddle.tanh(qk / self.softcap) * self.softcap
        with_bias = qk + bias
        qk_out = qk
        if self.mode == 2:
            qk_out = with_bias
        row_max = with_bias.max(axis=-1, keepdim=True)
        safe = paddle.where(paddle.isinf(row_max) & (row_max < 0), paddle.zeros_like(row_max), row_max)
        e = paddle.exp(with_bias - safe)
        total = e.sum(axis=-1, keepdim=True)
        probs = e / paddle.where(total == 0, paddle.ones_like(total), total)
        bias_max = bias.max(axis=-1, keepdim=True)
        probs = paddle.where(paddle.isinf(bias_max) & (bias_max < 0), paddle.zeros_like(probs), probs)
        if self.mode == 3:
            qk_out = probs
        y = paddle.matmul(probs, v)
        if rank3:
            y = y.transpose([0, 2, 1, 3])
            y = y.reshape([y.shape[0], y.shape[1], -1])
        return (y, present_k, present_v, qk_out)[: self.outputs] if self.outputs > 1 else y


@converter("Attention", since=23)
def convert_attention(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    if attr(node, "softmax_precision") is not None:
        raise NotImplementedError("Attention with softmax_precision is not implemented")
    return fn_of(_Attention(node), list(node.input))


@converter("RotaryEmbedding", since=23)
def convert_rotary_embedding(node: onnx.NodeProto, ctx: BuildContext) -> Converted:
    """Rotary position embedding of (batch, heads, seq, head) or (batch, seq, hidden) inputs, halves or
    interleaved pairs rotated, the tail beyond rotary_embedding_dim passed through."""
    interleaved = bool(attr(node, "interleaved", 0))
    dim_attr, num_heads = int(attr(node, "rotary_embedding_dim", 0)), attr(node, "num_heads")

    def rotary(x: Any, cos: Any, sin: Any, positions: Any = None) -> Any:
        shape = x.shape
        y = x.transpose([0, 2, 1, 3]) if x.ndim == 4 else x.reshape([shape[0], shape[1], num_heads, -1])
        dim = dim_attr or y.shape[3]
        rotate, keep = y[:, :, :, :dim], y[:, :, :, dim:]
        if positions is not None:
            index = positions.astype("int64")
            cos = paddle.gather(cos, index.reshape([-1])).reshape([*index.shape, -1])
            sin = paddle.gather(sin, index.reshape([-1])).reshape([*index.shape, -1])
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        if interleaved:
            x1, x2 = rotate[:, :, :, 0::2], rotate[:, :, :, 1::2]
        else:
            x1, x2 = rotate[:, :, :, : dim // 2], rotate[:, :, :, dim // 2 :]
        real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
        if interleaved:
            rotated = paddle.stack([real, imag], axis=-1).reshape(rotate.shape)
        else:
            rotated = paddle.concat([real, imag], axis=-1)
        out = paddle.concat([rotated, keep], axis=-1)
        return out.reshape(shape) if x.ndim == 3 else out.transpose([0, 2, 1, 3])

    return fn_of(rotary, [i for i in node.input[:4]])
