"""PyTorch backend: ``Graph`` -> a trainable ``torch.nn.Module`` (onnx2torch, extended by ``converters/``).

Every initializer named in ``graph.weights`` becomes exactly one ``nn.Parameter`` (weight tying kept; those in
``graph.frozen`` with ``requires_grad=False``); other initializers are buffers/constants. BatchNormalization
nodes are batch-norm modules whose running statistics update in train mode; Dropout nodes are random in
train mode and identity in eval mode. ``rehydrate(..., check=True)`` compares the module with onnxruntime.
"""

from __future__ import annotations

from .module import RehydratedModule, current_initializers, numpy_forward, rehydrate
from .registry import converter, supported_ops

__all__ = ["RehydratedModule", "converter", "current_initializers", "numpy_forward", "rehydrate", "supported_ops"]
