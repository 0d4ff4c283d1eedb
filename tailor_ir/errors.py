"""Errors raised by the compiler. Each names the culprit (layer, node, op, file) and says what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TailorError(Exception):
    """Base class of every error the model-graph compiler raises on purpose."""


class ModelTypeError(TailorError, TypeError):
    """The object given is not a model of a supported framework."""


class ExportError(TailorError):
    """The framework's exporter could not turn the model into ONNX."""


class InvalidGraphError(TailorError, ValueError):
    """An ONNX file or graph is malformed, truncated or fails the ONNX checker."""


class UnknownLayerError(TailorError, KeyError):
    """A layer or tensor name does not exist in the graph."""

    def __init__(self, name: str, known: Iterable[str], what: str = "layer") -> None:
        known = list(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        hint = f" Closest {what} names: {', '.join(repr(c) for c in close)}." if close else ""
        super().__init__(
            f"Unknown {what} name {name!r}.{hint} Call finetuner.tailor.display(model) to list every {what}."
        )
        self.name = name
        self.closest = close

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class NoCutError(TailorError, ValueError):
    """The graph has no tensor where an embedding can be taken."""


class UnsupportedOpError(TailorError, NotImplementedError):
    """A node uses an ONNX op, or a case of one (attributes, dtypes), that the target framework cannot convert.

    Without ``reason`` the backend has no converter for the op at that opset; with one, its converter refused
    this node and ``reason`` says why.
    """

    def __init__(
        self, op_type: str, opset: int, node: str, layer: str | None, backend: str, reason: str | None = None
    ) -> None:
        where = f" in layer {layer!r}" if layer else ""
        what = f"ONNX op {op_type!r} (opset {opset}) at node {node!r}{where}"
        if reason is None:
            head = f"No {backend} converter for {what}."
        else:
            head = f"The {backend} converter for {what} cannot convert this node: {reason.rstrip('.')}."
        super().__init__(
            f"{head} Cut the model before this layer (layer_name=...), or register a converter for {op_type} "
            f"in tailor_ir.backends.{backend}."
        )
        self.op_type = op_type
        self.opset = opset
        self.node = node
        self.layer = layer
        self.reason = reason


class EquivalenceError(TailorError, AssertionError):
    """A rehydrated model does not compute what onnxruntime computes on the same graph."""


class UnsupportedDtypeError(TailorError, TypeError):
    """A tensor has an element type that the target framework has no tensors for (e.g. uint32 in paddle)."""

    def __init__(self, dtype: str, where: str, backend: str) -> None:
        super().__init__(
            f"The {backend} backend has no tensors of dtype {dtype} ({where}). Cast it in the source model to a "
            f"type {backend} supports, or cut the model before this point (layer_name=...)."
        )
        self.dtype = dtype
        self.where = where
