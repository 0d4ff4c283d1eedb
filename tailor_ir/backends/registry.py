"""A converter registry by ONNX op type, domain and opset, shared by the backends that own their converters.

``registry.converter("Conv", since=1)`` registers a function for opsets ``since`` .. ``until``; ``find`` picks the
registration with the highest ``since`` not above the graph's opset. (The torch backend registers into
onnx2torch's own registry instead, with the same decorator shape.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[..., Any]


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


class ConverterRegistry:
    """Converters of one backend."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[tuple[int, int | None, Converter]]] = {}

    def converter(
        self, op_type: str, since: int = 1, domain: str = "", until: int | None = None
    ) -> Callable[[Converter], Converter]:
        """Register ``fn`` as the converter of ``op_type`` for opsets ``since`` .. ``until`` (inclusive)."""

        def deco(fn: Converter) -> Converter:
            entries = self._entries.setdefault((_domain(domain), op_type), [])
            entries.append((since, until, fn))
            entries.sort(key=lambda e: e[0])
            return fn

        return deco

    def find(self, op_type: str, opset: int, domain: str = "") -> Converter | None:
        """The converter used for ``op_type`` at ``opset``, or None."""
        best = None
        for since, until, fn in self._entries.get((_domain(domain), op_type), []):
            if since <= opset and (until is None or opset <= until):
                best = fn
        return best

    def supported_ops(self, opset: int) -> list[str]:
        """The op types (default domain) that have a converter at ``opset``."""
        return sorted(op for (domain, op) in self._entries if domain == "" and self.find(op, opset) is not None)
