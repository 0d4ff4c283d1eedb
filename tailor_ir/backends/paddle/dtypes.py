"""Element types: which ONNX types paddle has tensors for, and running narrow types through wider kernels.

Paddle has no uint16/uint32/uint64, float8, 4-/2-bit or string tensors (numpy uint16 would silently become
bfloat16, and numpy cannot hand bfloat16 to paddle), so a graph using one is refused at rehydrate time with
``UnsupportedDtypeError`` naming the dtype. Paddle's CPU kernels for float16, int8, int16 and uint8 are sparse
(no float16 ``add``, no int8 ``multiply``): a functional step on such inputs runs on float32 / int32 copies
and its outputs are cast back to the ONNX type, which is exact for integers (the cast wraps like ONNX) and the
correctly rounded float16 result for single float ops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ...errors import UnsupportedDtypeError
from ...graph import Graph
from ...imports import import_paddle

paddle = import_paddle()

BACKEND = "paddle"
SUPPORTED = {
    TensorProto.BOOL, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT8,
    TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8,
}
NARROW = {TensorProto.FLOAT16: "float32", TensorProto.INT8: "int32", TensorProto.INT16: "int32",
          TensorProto.UINT8: "int32"}
NARROW_PADDLE = {"paddle.float16": "float32", "paddle.int8": "int32", "paddle.int16": "int32",
                 "paddle.uint8": "int32"}


def type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type).lower()


def check_graph(graph: Graph, types: Mapping[str, int]) -> None:
    """Raise UnsupportedDtypeError for the first tensor (input, output, initializer, inferred value, Cast or
    constant-fill target) whose element type paddle lacks."""
    named: list[tuple[str, int]] = [(f"graph input {v.name!r}", v.type.tensor_type.elem_type)
                                    for v in graph.model.graph.input]
    named += [(f"graph output {v.name!r}", v.type.tensor_type.elem_type) for v in graph.model.graph.output]
    named += [(f"initializer {i.name!r}", i.data_type) for i in graph.model.graph.initializer]
    named += [(f"value {name!r}", t) for name, t in types.items()]
    for node in graph.model.graph.node:
        for a in node.attribute:
            if a.name in ("to", "dtype") and a.type == onnx.AttributeProto.INT:
                named.append((f"the {a.name} of node {node.name or node.op_type!r}", int(a.i)))
            elif a.type == onnx.AttributeProto.TENSOR:
                named.append((f"the {a.name} of node {node.name or node.op_type!r}", a.t.data_type))
    for where, elem_type in named:
        if elem_type and elem_type not in SUPPORTED and elem_type not in (TensorProto.COMPLEX64,
                                                                          TensorProto.COMPLEX128):
            raise UnsupportedDtypeError(type_name(elem_type), where, BACKEND)


def check_array(name: str, value: np.ndarray) -> None:
    """Refuse a fed numpy array paddle would misread (uint16 becomes bfloat16) or cannot hold."""
    if value.dtype.kind == "u" and value.dtype != np.uint8 or value.dtype.kind in "USO" or value.dtype.kind == "V":
        raise UnsupportedDtypeError(str(value.dtype), f"model input {name!r}", BACKEND)
    if value.dtype.kind == "f" and value.dtype.itemsize == 2 and value.dtype != np.float16:
        raise UnsupportedDtypeError(str(value.dtype), f"model input {name!r}", BACKEND)


# float16 results of these depend on the accumulation order and precision, so float32 accumulation would not
# reproduce a float16 computation: they are left to paddle's own kernels (a clear refusal where it has none)
ACCUMULATING = {
    "MatMul", "Gemm", "Linear", "Einsum", "Conv", "ConvTranspose", "Softmax", "LogSoftmax", "Hardmax", "CumSum",
    "CumProd", "LayerNormalization", "RMSNormalization", "GroupNormalization", "InstanceNormalization",
    "BatchNormalization", "LpNormalization", "MeanVarianceNormalization", "AveragePool", "GlobalAveragePool",
    "LpPool", "Attention", "ReduceSum", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare", "Mean", "Sum",
}


def needs_widening(op_type: str, inputs: Iterable[str], types: Mapping[str, int]) -> bool:
    """Whether a step on ``inputs`` must run on wider copies (see the module docstring)."""
    narrow = {types.get(i) for i in inputs if i} & set(NARROW)
    if op_type in ACCUMULATING:
        narrow.discard(TensorProto.FLOAT16)
    return bool(narrow)


def widened(fn: Callable[..., Any], outputs: Iterable[str], types: Mapping[str, int]) -> Callable[..., Any]:
    """``fn`` run on float32/int32 copies of its narrow inputs, outputs cast back to their ONNX types."""
    targets = [paddle_type(types.get(o)) for o in outputs]

    def run(*args: Any) -> Any:
        args = tuple(_widen(a) for a in args)
        result = fn(*args)
        if isinstance(result, (tuple, list)):
            return tuple(_cast(r, t) for r, t in zip(result, targets))
        return _cast(result, targets[0] if targets else None)

    return run


def paddle_type(elem_type: int | None) -> str | None:
    if not elem_type or elem_type not in SUPPORTED:
        return None
    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))


def _widen(value: Any) -> Any:
    if isinstance(value, paddle.Tensor):
        wide = NARROW_PADDLE.get(str(value.dtype))
        if wide is not None:
            return value.astype(wide)
    return value


def _cast(value: Any, target: str | None) -> Any:
    if target is None or not isinstance(value, paddle.Tensor) or str(value.dtype) == f"paddle.{target}":
        return value
    return value.astype(target)
