"""The converter registry: one function per ONNX op, registered by op type, domain and opset.

``@converter("Conv", since=1)`` registers ``fn(node, ctx) -> Converted`` for opsets ``since`` .. ``until``; the
lookup picks the registration with the highest ``since`` not above the graph's opset. Adding an op is adding
one function in ``converters/`` (same shape as onnx2torch's ``add_converter``, used by the torch backend).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[..., Any]
_REGISTRY: dict[tuple[str, str], list[tuple[int, int | None, Converter]]] = {}


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def converter(op_type: str, since: int = 1, domain: str = "", until: int | None = None) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of ``op_type`` for opsets ``since`` .. ``until`` (inclusive)."""

    def deco(fn: Converter) -> Converter:
        entries = _REGISTRY.setdefault((_domain(domain), op_type), [])
        entries.append((since, until, fn))
        entries.sort(key=lambda e: e[0])
        return fn

    return deco


def find(op_type: str, opset: int, domain: str = "") -> Converter | None:
    """The converter used for ``op_type`` at ``opset``, or None."""
    best = None
    for since, until, fn in _REGISTRY.get((_domain(domain), op_type), []):
        if since <= opset and (until is None or opset <= until):
            best = fn
    return best


def supported_ops(opset: int) -> list[str]:
    """The op types (default domain) that have a converter at ``opset``."""
    return sorted(op for (domain, op) in _REGISTRY if domain == "" and find(op, opset) is not None)
