"""The converter registry: onnx2torch's ``add_converter`` table, extended (and overridden) by this package.

``@converter("Gelu", since=20)`` registers a function ``(OnnxNode, OnnxGraph) -> OperationConverterResult`` for
every schema version of the op from ``since`` on, replacing onnx2torch's own converter for those versions where
one exists (ours keep weights as inputs so they can become trainable parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx
from onnx import defs

from ...imports import import_onnx2torch

import_onnx2torch()
from onnx2torch.node_converters import registry as _o2t_registry  # noqa: E402

_MAX_OPSET = onnx.defs.onnx_opset_version()
Converter = Callable[..., Any]


def _since_versions(op_type: str, since: int, domain: str = "") -> list[int]:
    """The distinct schema since-versions of ``op_type`` reachable from opset ``since`` on."""
    versions: set[int] = set()
    for opset in range(since, _MAX_OPSET + 1):
        try:
            versions.add(defs.get_schema(op_type, max_inclusive_version=opset, domain=domain).since_version)
        except (RuntimeError, defs.SchemaError):
            continue
    return sorted(v for v in versions) or [since]


def converter(op_type: str, since: int = 1, domain: str = "", until: int | None = None) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of ``op_type`` for schema versions ``since`` .. ``until`` (inclusive)."""

    def deco(fn: Converter) -> Converter:
        for version in _since_versions(op_type, since, domain):
            if until is not None and version > until:
                continue
            key = _o2t_registry.OperationDescription(domain=domain, operation_type=op_type, version=version)
            _o2t_registry._CONVERTER_REGISTRY[key] = fn
        return fn

    return deco


def alias(op_type: str, existing: int, since: int, domain: str = "") -> None:
    """Reuse onnx2torch's converter of ``op_type``-``existing`` for later versions whose semantics it covers."""
    fn = _o2t_registry._CONVERTER_REGISTRY[
        _o2t_registry.OperationDescription(domain=domain, operation_type=op_type, version=existing)
    ]
    for version in _since_versions(op_type, since, domain):
        key = _o2t_registry.OperationDescription(domain=domain, operation_type=op_type, version=version)
        _o2t_registry._CONVERTER_REGISTRY.setdefault(key, fn)


def find(op_type: str, opset: int, domain: str = "") -> Converter | None:
    """The converter used for ``op_type`` at ``opset``, or None."""
    try:
        return _o2t_registry.get_converter(operation_type=op_type, version=opset, domain=domain)
    except NotImplementedError:
        return None


def supported_ops(opset: int) -> list[str]:
    """The op types (default domain) that have a converter at ``opset``."""
    ops = {d.operation_type for d in _o2t_registry._CONVERTER_REGISTRY if d.domain in ("", "ai.onnx")}
    return sorted(op for op in ops if find(op, opset) is not None)
