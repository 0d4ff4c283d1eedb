"""The torch backend's converter registry: this package's converters first, onnx2torch's public table second.

``@converter("Gelu", since=20)`` registers a function ``(OnnxNode, OnnxGraph) -> OperationConverterResult`` for
every schema version of the op from ``since`` on (up to ``until``). ``find(op, opset)`` resolves the op's schema
version at ``opset`` (``onnx.defs``), returns this package's converter for exactly that version if there is one,
and otherwise asks onnx2torch through its public ``get_converter``. Nothing is written into onnx2torch: its table
stays as shipped, so a lookup is a pure function and the backend is safe to use from several threads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import onnx
from onnx import defs

from ...imports import import_onnx2torch

import_onnx2torch()
from onnx2torch.node_converters import get_converter as _o2t_get_converter  # noqa: E402

_MAX_OPSET = onnx.defs.onnx_opset_version()
Converter = Callable[..., Any]
_OURS: dict[tuple[str, str, int], Converter] = {}


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _since_versions(op_type: str, since: int, domain: str = "") -> list[int]:
    """The distinct schema since-versions of ``op_type`` reachable from opset ``since`` on."""
    versions: set[int] = set()
    for opset in range(since, _MAX_OPSET + 1):
        version = _schema_version(op_type, opset, domain)
        if version is not None and version >= since:
            versions.add(version)
    return sorted(versions) or [since]


@cache
def _schema_version(op_type: str, opset: int, domain: str) -> int | None:
    """The since-version of the schema of ``op_type`` in force at ``opset`` (None for ops ONNX does not know)."""
    try:
        return int(defs.get_schema(op_type, max_inclusive_version=opset, domain=domain).since_version)
    except (RuntimeError, defs.SchemaError):
        return None


def converter(
    op_type: str, since: int = 1, domain: str = "", until: int | None = None
) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of ``op_type`` for schema versions ``since`` .. ``until`` (inclusive)."""

    def deco(fn: Converter) -> Converter:
        for version in _since_versions(op_type, since, _domain(domain)):
            if until is None or version <= until:
                _OURS[(_domain(domain), op_type, version)] = fn
        return fn

    return deco


def alias(op_type: str, existing: int, since: int, domain: str = "") -> None:
    """Use onnx2torch's converter of ``op_type``-``existing`` for the later versions ``since`` on.

    Only for versions whose changes onnx2torch's converter covers (e.g. new element types only).
    """
    fn = _o2t_get_converter(operation_type=op_type, version=existing, domain=domain)
    for version in _since_versions(op_type, since, _domain(domain)):
        _OURS.setdefault((_domain(domain), op_type, version), fn)


def find(op_type: str, opset: int, domain: str = "") -> Converter | None:
    """The converter used for ``op_type`` at ``opset``: ours for that schema version, else onnx2torch's, else None."""
    domain = _domain(domain)
    version = _schema_version(op_type, opset, domain)
    ours = _OURS.get((domain, op_type, version if version is not None else opset))
    if ours is not None:
        return ours
    if version is None and domain:  # a custom domain: registered by opset version
        return None
    try:
        return _o2t_get_converter(operation_type=op_type, version=opset, domain=domain)
    except NotImplementedError:
        return None


def supported_ops(opset: int) -> list[str]:
    """The op types (default domain) that have a converter at ``opset``."""
    names = {schema.name for schema in defs.get_all_schemas_with_history() if schema.domain == ""}
    return sorted(op for op in names if find(op, opset) is not None)
