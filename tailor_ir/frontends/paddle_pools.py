"""Adaptive average pools paddle2onnx cannot write, rewritten exactly from the traced run.

paddle2onnx writes ``AdaptiveAvgPool2D`` as an ``AveragePool`` with kernel ``in // out`` and stride
``in // out``: right only when the output size divides the input size. Otherwise (VGG's 7x7 pool on a small
image: 1x1 -> 7x7 gives a zero stride) the ONNX graph is invalid or wrong, and shape inference loses the rank of
everything after it. Adaptive average pooling is linear in each spatial axis (output cell ``i`` averages input
cells ``floor(i*n/m) .. ceil((i+1)*n/m)``), so each such node becomes two ``MatMul``s by constant averaging
matrices, which every backend and shape inference understand. The sizes come from the traced run of the model
(input and output shape of each adaptive pool call, in call order = ONNX node order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ExportError


def averaging_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): row ``i`` averages paddle's adaptive window ``floor(i*n/m) .. ceil((i+1)*n/m)``."""
    matrix = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _pooled_size(n: int, kernel: int, stride: int) -> int | None:
    return None if stride <= 0 or kernel > n else (n - kernel) // stride + 1


def fix_adaptive_pools(proto: onnx.ModelProto, shapes: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
    """Rewrite the AveragePool nodes of adaptive pools whose output size does not divide their input size.

    ``shapes``: (layer path, input spatial shape, output spatial shape) of each AdaptiveAvgPool2D call, in call
    order. Raises ExportError when a broken node cannot be matched to a call.
    """
    pending = [s for s in shapes if any(i % o for i, o in zip(s[1], s[2]))]
    nodes: list[onnx.NodeProto] = []
    for node in proto.graph.node:
        if node.op_type != "AveragePool":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel, strides = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1] * 2))
        broken = any(s <= 0 for s in strides)
        if pending and len(kernel) == 2 and not broken:
            _, size_in, size_out = pending[0]
            broken = [_pooled_size(n, k, s) for n, k, s in zip(size_in, kernel, strides)] != list(size_out)
        if not broken:
            nodes.append(node)
            continue
        if not pending or len(kernel) != 2:
            raise ExportError(
                f"paddle2onnx wrote an adaptive pool as AveragePool node {node.name or node.output[0]!r} with "
                f"strides {strides}, which cannot compute it. Give the model an input large enough that each "
                "adaptive pool's output size divides its input size (e.g. 224x224 for VGG), or replace the pool."
            )
        path, size_in, size_out = pending.pop(0)
        nodes.extend(_as_matmuls(proto, node, size_in, size_out, path))
    if pending:
        raise ExportError(
            f"the adaptive pool {pending[0][0]!r} ({pending[0][1]} -> {pending[0][2]}) has no matching node in "
            "paddle2onnx's graph; give the model an input whose size its output size divides."
        )
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def _as_matmuls(proto: onnx.ModelProto, node: onnx.NodeProto, size_in: Any, size_out: Any,
                path: str) -> list[onnx.NodeProto]:
    base = node.output[0]
    rows = numpy_helper.from_array(averaging_matrix(size_in[0], size_out[0]), f"{base}.adaptive_rows")
    cols = numpy_helper.from_array(averaging_matrix(size_in[1], size_out[1]).T.copy(), f"{base}.adaptive_cols")
    proto.graph.initializer.extend([rows, cols])
    name = node.name or f"{path}.adaptive_pool"
    return [
        helper.make_node("MatMul", [node.input[0], cols.name], [f"{base}.cols"], name=f"{name}.cols"),
        helper.make_node("MatMul", [rows.name, f"{base}.cols"], [base], name=name),
    ]
