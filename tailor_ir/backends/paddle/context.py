"""What a converter sees while building: the node's constants, weights, shapes and attributes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ...graph import Graph


@dataclasses.dataclass
class Converted:
    """A converter's result: ``fn`` (a paddle Layer or a plain callable) called with the values ``inputs``.

    ``inputs`` are value names fed positionally ('' feeds None); the node's outputs receive the result (a tuple
    for several outputs). ``layer`` marks a real paddle Layer to register as a sublayer (train/eval, params).
    """

    fn: Callable[..., Any]
    inputs: tuple[str, ...]
    layer: bool = False


@dataclasses.dataclass
class BuildContext:
    """Build-time view of the prepared graph for converters."""

    graph: Graph
    params: dict[str, Any]  # weight initializer -> paddle Parameter
    consts: dict[str, np.ndarray]  # initializers that are not weights, and folded values
    opset: int
    slots: dict[str, tuple[Any, str]] = dataclasses.field(default_factory=dict)  # weight -> (container, attr)
    shapes: dict[str, tuple[int | str | None, ...]] | None = None  # value -> shape (see ``value_shapes``)
    types: dict[str, int] = dataclasses.field(default_factory=dict)  # value -> ONNX element type, where known

    def adopt(self, name: str, param: Any) -> None:
        """Make a real layer's own parameter the one parameter of weight ``name`` (its value set from it).

        For layers that lay their parameters out themselves (paddle's LSTM/GRU flatten theirs into one buffer).
        """
        old = self.params[name]
        param.set_value(old.numpy())
        param.stop_gradient = old.stop_gradient
        self.params[name] = param
        container, attr = self.slots[name]
        container._parameters[attr] = param

    def const(self, name: str) -> np.ndarray | None:
        """The build-time value of ``name`` (not a weight), or None when it is computed at run time."""
        if not name:
            return None
        return self.consts.get(name)

    def const_list(self, name: str) -> list[int] | None:
        value = self.const(name)
        return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def is_param(self, name: str) -> bool:
        return name in self.params

    def param(self, name: str) -> Any:
        return self.params[name]

    def shape(self, name: str) -> tuple[int | str | None, ...] | None:
        if name in self.params:
            return tuple(self.params[name].shape)
        if name in self.consts:
            return tuple(self.consts[name].shape)
        if self.shapes is not None:
            return self.shapes.get(name)
        return self.graph.shape_of(name)

    def rank(self, name: str) -> int | None:
        shape = self.shape(name)
        return None if shape is None else len(shape)


SMALL_INITIALIZER = 4096  # elements; larger initializers only lend their type and shape to shape inference


def value_shapes(graph: Graph) -> dict[str, tuple[int | str | None, ...]] | None:
    """Value name -> inferred shape of ``graph`` (see ``value_info``). None if inference fails."""
    return value_info(graph)[0]


def value_info(graph: Graph) -> tuple[dict[str, tuple[int | str | None, ...]] | None, dict[str, int]]:
    """Value name -> inferred shape, and value name -> ONNX element type, of ``graph``; like
    ``graph.shape_of`` but without serialising the weights: shape inference runs on a copy whose large
    initializers are typed graph inputs (on resnet18 0.05 s instead of 0.5 s). Shapes are None if inference
    fails; the types then come from the declared inputs, outputs and initializers only."""
    model = onnx.ModelProto()
    model.ir_version = graph.model.ir_version
    model.opset_import.extend(graph.model.opset_import)
    g = model.graph
    source = graph.model.graph
    g.node.extend(source.node)
    g.input.extend(source.input)
    g.output.extend(source.output)
    g.value_info.extend(source.value_info)
    inputs = {i.name for i in source.input}
    for init in source.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) <= SMALL_INITIALIZER:
            g.initializer.append(init)
        elif init.name not in inputs:
            g.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    types = {init.name: int(init.data_type) for init in source.initializer}
    for value in (*source.input, *source.output, *source.value_info):
        if value.type.tensor_type.elem_type:
            types[value.name] = int(value.type.tensor_type.elem_type)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # best effort, as Graph.value_info
        return None, types
    shapes: dict[str, tuple[int | str | None, ...]] = {
        init.name: tuple(init.dims) for init in source.initializer
    }
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        if value.type.tensor_type.elem_type:
            types.setdefault(value.name, int(value.type.tensor_type.elem_type))
        if value.type.tensor_type.HasField("shape"):
            shapes[value.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in value.type.tensor_type.shape.dim
            )
    return shapes, types


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """An attribute of ``node`` (strings decoded), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def fn_of(func: Callable[..., Any], inputs: Sequence[str]) -> Converted:
    """A functional step."""
    return Converted(func, tuple(inputs))


def layer_of(layer: Any, inputs: Sequence[str]) -> Converted:
    """A real paddle Layer step."""
    return Converted(layer, tuple(inputs), layer=True)
