"""What the three frontends share: the names of the dynamic axes and how an input is classified."""

from __future__ import annotations

import onnx

from ..graph import FLOAT_TYPES

BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"


def name_dynamic_dims(proto: onnx.ModelProto, outputs_lead_with_batch: bool = False) -> None:
    """Rename the exporter's dynamic-axis symbols (``s0``, ``unk__12``, ``DynamicDimension.3``) everywhere.

    An input's first axis becomes ``batch``; the second axis of an integer input (token ids, masks)
    ``sequence``. ``outputs_lead_with_batch``: every output's own first-axis symbol is the batch too (paddle2onnx
    gives outputs fresh symbols).
    """
    rename: dict[str, str] = {}
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_param:
            rename.setdefault(dims[0].dim_param, BATCH_DIM)
        if len(dims) > 1 and dims[1].dim_param and value.type.tensor_type.elem_type not in FLOAT_TYPES:
            rename.setdefault(dims[1].dim_param, SEQUENCE_DIM)
    if outputs_lead_with_batch:
        for value in proto.graph.output:
            dims = value.type.tensor_type.shape.dim
            if dims and dims[0].dim_param:
                rename.setdefault(dims[0].dim_param, BATCH_DIM)
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]


def input_kind(value: onnx.ValueInfoProto) -> str:
    """``tokens`` (integer input), ``image`` (rank 4), ``vector`` (rank 2) or ``sequence`` (other floats)."""
    elem = value.type.tensor_type.elem_type
    rank = len(value.type.tensor_type.shape.dim)
    if elem not in FLOAT_TYPES:
        return "tokens"
    return {4: "image", 2: "vector"}.get(rank, "sequence")
