"""ONNX model -> ``torch.fx.GraphModule``, one module per node, dispatched through this package's registry.

The same construction as ``onnx2torch.convert`` (whose node/graph wrappers and converters it reuses), with the
dispatch owned here: each node's converter comes from ``registry.find`` (ours first, onnx2torch's public table
second); a converter's refusal becomes an ``UnsupportedOpError`` naming the node and its layer; graph outputs may
be graph inputs or constants (a folded ``Shape``), not only node outputs.
"""

from __future__ import annotations

import inspect
from operator import getitem
from typing import Any

import onnx

from ...errors import UnsupportedDtypeError, UnsupportedOpError
from ...graph import Graph
from ...imports import import_onnx2torch, import_torch

torch = import_torch()
import_onnx2torch()
from onnx2torch.onnx_graph import OnnxGraph, ValueType  # noqa: E402
from onnx2torch.utils.safe_shape_inference import safe_shape_inference  # noqa: E402
from torch import fx, nn  # noqa: E402

from .dtypes import PROMOTABLE, PROMOTED  # noqa: E402
from .registry import find  # noqa: E402

BACKEND = "torch"


class Constants(nn.Module):
    """Holds the graph's constant initializers as buffers (``c0``, ``c1`` ...)."""

    def forward(self) -> None:  # pragma: no cover - a container
        raise RuntimeError("Constants is a buffer container")


def build(model: onnx.ModelProto, graph: Graph) -> fx.GraphModule:
    """The fx module computing ``model`` (prepared by ``prepass.prepare``); ``graph`` names layers in errors."""
    model = safe_shape_inference(model)
    opsets = {("" if i.domain == "ai.onnx" else i.domain): int(i.version) for i in model.opset_import}
    onnx_graph = OnnxGraph(model.graph)
    fx_graph = fx.Graph()
    root = nn.Module()
    constants = Constants()
    root.add_module("initializers", constants)
    values: dict[str, fx.Node] = {}

    def value(name: str) -> fx.Node | None:
        if not name:
            return None
        if name in values:
            return values[name]
        kind = onnx_graph.value_type(name)
        if kind == ValueType.GRAPH_INITIALIZER:
            buffer = f"c{len(constants._buffers)}"
            constants.register_buffer(buffer, _to_torch(onnx_graph.initializers[name], name))
            values[name] = fx_graph.get_attr(f"initializers.{buffer}")
        elif kind == ValueType.NODE_OUTPUT:
            producer, index = onnx_graph.value_as_node_output(name)
            node = values[producer.unique_name]
            if len(producer.output_values) > 1:
                node = fx_graph.call_function(getitem, args=(node, index))
            values[name] = node
        else:
            raise KeyError(f"value {name!r} is neither a graph input, an initializer nor a node output")
        return values[name]

    for index, name in enumerate(onnx_graph.input_values, 1):
        values[name] = fx_graph.placeholder(name=f"input_{index}")
    for unique, onnx_node in onnx_graph.nodes.items():
        module, mapping = _convert(onnx_node, onnx_graph, opsets, graph)
        root.add_module(unique, module)
        args = [value(name) for name in mapping.inputs]
        kwargs: dict[str, Any] = {}
        if None in args:  # skipped optional inputs: pass the rest by keyword
            first = args.index(None)
            forward = module.inner.forward if isinstance(module, Promoted) else module.forward
            params = tuple(inspect.signature(forward).parameters)[first : len(args)]
            kwargs = {p: a for p, a in zip(params, args[first:]) if a is not None}
            args = args[:first]
        values[unique] = fx_graph.call_module(unique, args=tuple(args), kwargs=kwargs)
    outputs = [value(name) for name in onnx_graph.output_values]
    fx_graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))
    fx_graph.lint()
    return fx.GraphModule(root, fx_graph)


def _to_torch(tensor: Any, name: str) -> Any:
    array = tensor.to_numpy()
    if array.dtype == object or array.dtype.kind in "US":
        raise UnsupportedDtypeError("string", f"initializer {name!r}", BACKEND)
    return torch.from_numpy(array.copy())


def _convert(onnx_node: Any, onnx_graph: Any, opsets: dict[str, int], graph: Graph) -> tuple[nn.Module, Any]:
    """Run the node's converter; every refusal becomes an UnsupportedOpError naming the node."""
    proto = onnx_node.proto
    domain = "" if onnx_node.domain == "ai.onnx" else onnx_node.domain
    opset = opsets.get(domain, 0)

    def refuse(reason: str | None = None) -> UnsupportedOpError:
        return UnsupportedOpError(onnx_node.operation_type, opset, proto.name or onnx_node.unique_name,
                                  graph.layer_map.get(proto.name), BACKEND, reason=reason or None)

    fn = find(onnx_node.operation_type, opset, domain)
    if fn is None:
        raise refuse()
    try:
        module, mapping = fn(onnx_node, onnx_graph)
    except (UnsupportedOpError, UnsupportedDtypeError):
        raise
    except (NotImplementedError, KeyError, ValueError, IndexError) as exc:
        raise refuse(str(exc)) from exc
    elems = [_elem_type(onnx_graph, name) for name in mapping.inputs if name]
    promoted = [e for e in elems if e in PROMOTED]
    if promoted and onnx_node.operation_type in PROMOTABLE:
        module = Promoted(module, _UNSIGNED[promoted[0]])
    return module, mapping


_UNSIGNED = {onnx.TensorProto.UINT16: torch.uint16, onnx.TensorProto.UINT32: torch.uint32}


def _elem_type(onnx_graph: Any, name: str) -> int | None:
    if name in onnx_graph.initializers:
        return int(onnx_graph.initializers[name].proto.data_type)
    info = onnx_graph.value_info.get(name)
    return int(info.type.tensor_type.elem_type) if info is not None and info.type.HasField("tensor_type") else None


class Promoted(nn.Module):
    """Runs ``inner`` on uint16 / uint32 inputs widened to int64 (torch lacks those kernels) and casts integer
    results back: exact, since int64 holds every value and the cast back wraps modulo 2^16 / 2^32."""

    def __init__(self, inner: nn.Module, dtype: Any) -> None:
        super().__init__()
        self.inner, self.dtype = inner, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        widen = lambda v: v.to(torch.int64) if isinstance(v, torch.Tensor) and v.dtype == self.dtype else v  # noqa: E731
        out = self.inner(*[widen(a) for a in args], **{k: widen(v) for k, v in kwargs.items()})
        narrow = lambda v: v.to(self.dtype) if v.dtype == torch.int64 else v  # noqa: E731
        return tuple(narrow(o) for o in out) if isinstance(out, tuple) else narrow(out)
