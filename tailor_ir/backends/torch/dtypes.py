"""Element types: which ONNX types torch computes with, the refusal of the others, numpy <-> torch transfer.

torch has no tensors of the 8-bit float, 4-bit and 2-bit ONNX types, nor strings, and its CPU kernels for
uint16/uint32/uint64 cover data movement and a few ops only. ``check_graph`` refuses such a graph at rehydrate
time with ``UnsupportedDtypeError`` (never a silent change of type); bfloat16 is carried bit-exactly across numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ...errors import UnsupportedDtypeError
from ...graph import Graph

BACKEND = "torch"
UNSUPPORTED = {
    TensorProto.STRING, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
    TensorProto.FLOAT8E5M2FNUZ, TensorProto.UINT4, TensorProto.INT4, TensorProto.FLOAT4E2M1,
}
UNSUPPORTED |= {getattr(TensorProto, n) for n in ("FLOAT8E8M0", "UINT2", "INT2") if hasattr(TensorProto, n)}
WIDE_UNSIGNED = {TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
# ops whose torch kernels handle uint16/32/64 (data movement, equality, products)
UNSIGNED_OK = {
    "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Gather", "GatherElements",
    "GatherND", "Slice", "Expand", "Cast", "CastLike", "Shape", "Size", "Equal", "Mul", "Pow", "Where", "Split",
    "Tile", "Constant", "ConstantOfShape",
}


# ops computed exactly in int64 on uint16 / uint32 values (the result cast back wraps like unsigned arithmetic)
PROMOTABLE = {
    "Add", "Sub", "Div", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Max", "Min", "Mod", "BitShift",
    "Sum", "Abs", "Neg", "ReduceMax", "ReduceMin", "ReduceSum", "ArgMax", "ArgMin", "Clip",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot",
}
PROMOTED = {TensorProto.UINT16, TensorProto.UINT32}


def type_name(elem_type: int) -> str:
    return helper.tensor_dtype_to_string(elem_type).replace("TensorProto.", "").lower()


def check_graph(graph: Graph) -> None:
    """Raise UnsupportedDtypeError for the first tensor of a type torch cannot compute with."""
    g = graph.model.graph
    for kind, infos in (("graph input", g.input), ("graph output", g.output), ("value", g.value_info)):
        for info in infos:
            elem = info.type.tensor_type.elem_type
            if elem in UNSUPPORTED:
                raise UnsupportedDtypeError(type_name(elem), f"{kind} {info.name!r}", BACKEND)
    for init in g.initializer:
        if init.data_type in UNSUPPORTED:
            raise UnsupportedDtypeError(type_name(init.data_type), f"initializer {init.name!r}", BACKEND)
    types = _value_types(graph)
    for node in g.node:
        where = f"{node.op_type} node {node.name or node.output[0]!r}"
        for a in node.attribute:
            if a.name == "to" and a.i in UNSUPPORTED:
                raise UnsupportedDtypeError(type_name(a.i), where, BACKEND)
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in UNSUPPORTED:
                raise UnsupportedDtypeError(type_name(a.t.data_type), where, BACKEND)
        for name in list(node.input) + list(node.output):
            elem = types.get(name)
            if elem in UNSUPPORTED:
                raise UnsupportedDtypeError(type_name(elem), where, BACKEND)
            promoted = elem in PROMOTED and node.op_type in PROMOTABLE
            if elem in WIDE_UNSIGNED and node.op_type not in UNSIGNED_OK and name in node.input and not promoted:
                raise UnsupportedDtypeError(type_name(elem), f"{where}: torch has no such kernel", BACKEND)


def _value_types(graph: Graph) -> dict[str, int]:
    """Element type of every value ONNX shape inference can type (the graph's cached, weight-free inference)."""
    types = {i.name: i.data_type for i in graph.model.graph.initializer}
    for name, info in graph.value_info.items():
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[name] = info.type.tensor_type.elem_type
    return types


def to_torch(array: np.ndarray) -> Any:
    """A numpy array as a torch tensor (bfloat16 via its bits)."""
    import torch

    array = np.require(array, requirements='C')  # keeps 0-d arrays 0-d (ascontiguousarray would not)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor as numpy (bfloat16 via its bits, as ml_dtypes.bfloat16)."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()
