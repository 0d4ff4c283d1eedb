"""The paddle backend's converters: one function per ONNX op, registered by op type, domain and opset.

``@converter("Conv", since=1)`` registers ``fn(node, ctx) -> Converted``. Adding an op is adding one function in
``converters/``.
"""

from __future__ import annotations

from ..registry import Converter, ConverterRegistry

REGISTRY = ConverterRegistry()
converter = REGISTRY.converter
find = REGISTRY.find
supported_ops = REGISTRY.supported_ops

__all__ = ["REGISTRY", "Converter", "converter", "find", "supported_ops"]
