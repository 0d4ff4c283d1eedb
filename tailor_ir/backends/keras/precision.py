"""float16 / bfloat16 nodes computed in float32 and rounded once per node, as ONNX's reference does.

ONNX defines each node's result in the node's type; numpy (the reference) computes half-precision ufuncs in
float32 and rounds the result. TensorFlow's CPU kernels for half types round intermediate steps (exp, the
accumulation of a matmul), which lands one unit in the last place away often enough to matter. So a node whose
floating inputs are all of one half type runs on float32 copies, and its float32 results are rounded back.
The round trip through float32 is exact for the inputs; nodes that choose their output type are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...imports import import_tensorflow
from .values import Value

tf = import_tensorflow()

_HALF = {"float16", "bfloat16"}
# ops whose output type is an attribute or another input's: they must see the real input types
_OWN_TYPES = {"Cast", "CastLike", "EyeLike", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "QuantizeLinear",
              "DequantizeLinear", "DynamicQuantizeLinear", "Shape", "Size", "Identity", "Reshape", "Transpose",
              "Squeeze", "Unsqueeze", "Flatten", "Concat", "Split", "Slice", "Gather", "Expand", "Tile",
              "LayerNormalization", "RMSNormalization", "GroupNormalization",
              "Softmax", "LogSoftmax"}


def in_float32(op_type: str, run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` wrapped to compute half-precision nodes in float32 (see the module docstring)."""
    if op_type in _OWN_TYPES:
        return run

    def wrapped(state: Any, *inputs: Value | None) -> Any:
        floats = {v.dtype.name for v in inputs if v is not None and v.dtype.is_floating}
        if len(floats) != 1 or not floats <= _HALF:
            return run(state, *inputs)
        half = next(v.dtype for v in inputs if v is not None and v.dtype.is_floating)
        up = [None if v is None else Value(tf.cast(v.t, tf.float32), v.perm) if v.dtype == half else v
              for v in inputs]
        result = run(state, *up)
        results = result if isinstance(result, tuple) else (result,)
        down = tuple(Value(tf.cast(r.t, half), r.perm) if r.dtype == tf.float32 else r for r in results)
        return down if isinstance(result, tuple) else down[0]

    return wrapped
