"""What a converter sees while building (constants, variables, attributes) and while running (training)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ...graph import Graph
from ...imports import import_tensorflow

tf = import_tensorflow()


@dataclasses.dataclass
class BuildContext:
    """Build-time view of the graph for converters."""

    graph: Graph
    variables: dict[str, Any]  # initializer -> keras.Variable (weights, BN statistics)
    consts: dict[str, np.ndarray]  # other initializers, Constant nodes and values folded at build time
    opset: int

    def const(self, name: str) -> np.ndarray | None:
        """The build-time value of input ``name`` (never a variable), or None when computed at run time."""
        if not name:
            return None
        return self.consts.get(name)

    def const_list(self, name: str) -> list[int] | None:
        value = self.const(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def variable(self, name: str) -> Any | None:
        return self.variables.get(name)


@dataclasses.dataclass
class RunState:
    """What ``run`` functions see at call time."""

    training: bool


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """An attribute of ``node`` (strings decoded, tensors as numpy), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, list) and value and isinstance(value[0], bytes):
                return [v.decode() for v in value]
            if isinstance(value, onnx.TensorProto):
                return onnx.numpy_helper.to_array(value)
            return value
    return default


class _RunTime:
    """Marker: the operand is a graph value, known only when the graph runs (see ``resolve``)."""

    def __repr__(self) -> str:
        return "RUNTIME"


RUNTIME: Any = _RunTime()


def input_or_attr(node: onnx.NodeProto, ctx: BuildContext, index: int, name: str, default: Any = None) -> Any:
    """An operand that moved from an attribute to an input across opsets (axes, pads, ratio ...).

    Its build-time value as a list, or ``RUNTIME`` when the input is computed by the graph (``resolve`` reads
    it when the node runs)."""
    if len(node.input) > index and node.input[index]:
        value = ctx.const(node.input[index])
        return RUNTIME if value is None else value.tolist()
    return attr(node, name, default)


def resolve(given: Any, value: Any, what: str) -> Any:
    """``given`` unless it is ``RUNTIME``; then the run-time ``value``'s (a ``Value``) contents as a list.

    Axes, shapes and pads fed as graph inputs have concrete values when the model runs eagerly (as
    ``numpy_forward`` and Keras ``predict`` on a fresh graph do); inside a traced ``tf.function`` they have
    none, and the node is refused with the reason."""
    if given is not RUNTIME:
        return given
    known = tf.get_static_value(value.logical())
    if known is None:
        raise NotImplementedError(f"{what} is a run-time tensor whose value is unknown while tracing; make it a "
                                  "constant (an initializer) in the ONNX graph")
    return np.asarray(known).tolist()
