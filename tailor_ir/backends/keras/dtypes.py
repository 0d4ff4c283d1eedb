"""The ONNX element types this backend computes in, and the rehydrate-time refusal of the others.

TensorFlow has no FNUZ float8/float4/int4/int2/e8m0 tensors Keras can carry, no complex or string ops worth the
name here; a graph that reads, writes or casts to such a type is refused with ``UnsupportedDtypeError``
before anything is built, instead of being computed in some other type.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import TensorProto

from ...errors import UnsupportedDtypeError
from ...graph import Graph

BACKEND = "keras"
SUPPORTED = frozenset({
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16,
    TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64, TensorProto.BOOL,
    TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2,  # TensorFlow's two float8 types (not the *FNUZ ones)
})
# attributes that name an element type (Cast.to, EyeLike.dtype, RandomNormal.dtype, QuantizeLinear.output_dtype)
_TYPE_ATTRS = ("to", "dtype", "output_dtype")


def _name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return str(elem_type)


def _types(graph: Graph) -> Iterator[tuple[int, str]]:
    """(element type, where) of every typed value the graph declares or creates."""
    g = graph.model.graph
    for value in (*g.input, *g.output):
        if value.type.HasField("tensor_type"):
            yield value.type.tensor_type.elem_type, f"graph value {value.name!r}"
    for init in g.initializer:
        yield init.data_type, f"initializer {init.name!r}"
    for node in g.node:
        for a in node.attribute:
            if a.name in _TYPE_ATTRS and a.type == onnx.AttributeProto.INT:
                yield a.i, f"attribute {a.name!r} of {node.op_type} node {node.name or node.output[0]!r}"
            elif a.type == onnx.AttributeProto.TENSOR:
                yield a.t.data_type, f"tensor attribute {a.name!r} of {node.op_type} node {node.name or node.output[0]!r}"


def check_dtypes(graph: Graph) -> None:
    """Raise ``UnsupportedDtypeError`` for the first value of a type TensorFlow/Keras cannot compute in."""
    for elem_type, where in _types(graph):
        if elem_type and elem_type not in SUPPORTED:
            raise UnsupportedDtypeError(_name(elem_type).lower(), where, BACKEND)
