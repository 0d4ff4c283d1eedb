"""The keras backend's converters: one function per ONNX op, registered by op type, domain and opset.

``@converter("Conv", since=1)`` registers ``fn(node, ctx) -> run``; ``run(state, *inputs)`` is called inside the
Keras layer's ``call`` with the node's inputs as layout-tagged values (``values.Value``; ``None`` for an omitted
input) and returns one value or a tuple. Adding an op is adding one function in ``ops/``.
"""

from __future__ import annotations

from ..registry import Converter, ConverterRegistry

REGISTRY = ConverterRegistry()
converter = REGISTRY.converter
find = REGISTRY.find
supported_ops = REGISTRY.supported_ops

__all__ = ["REGISTRY", "Converter", "converter", "find", "supported_ops"]
