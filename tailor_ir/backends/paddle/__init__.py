"""PaddlePaddle backend: ``Graph`` -> a trainable ``paddle.nn.Layer`` built by one converter per ONNX op.

Every initializer named in ``graph.weights`` becomes exactly one paddle Parameter (weight tying kept; those in
``graph.frozen`` with ``stop_gradient=True``); other initializers are non-persistable buffers or build-time
constants (never int64 parameters). Patterns with a real paddle layer become one (Conv1D/2D/3D, Linear,
BatchNorm, LayerNorm, Embedding, LSTM/GRU, Dropout); everything else runs as paddle functions. BatchNorm
running statistics update in train mode; Dropout is random in train mode and identity in eval mode.
Every ONNX element type paddle has tensors for is computed in that type (float16/int8/int16/uint8 steps run on
wider copies where paddle lacks the kernel, cast back); a graph using one it lacks (uint16/32/64, bfloat16,
float8, 4-/2-bit, strings) is refused at rehydrate time with ``UnsupportedDtypeError``, and an op a converter
cannot compute exactly with ``UnsupportedOpError``. ``rehydrate(..., check=True)`` compares the layer with
onnxruntime. ``current_initializers(layer)`` gives the current value of every initializer the layer holds as
state (weights, BatchNorm statistics) by ONNX name, for writing a trained layer back into its graph. Paddle is imported with RTLD_DEEPBIND.
"""

from __future__ import annotations

from .layer import RehydratedLayer, current_initializers, numpy_forward, rehydrate
from .registry import converter, supported_ops

__all__ = ["RehydratedLayer", "converter", "current_initializers", "numpy_forward", "rehydrate", "supported_ops"]
