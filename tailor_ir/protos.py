"""Protobuf helpers: copying ONNX messages without the parts that are about to be replaced (the weights), and the
size of a tensor from its ONNX type."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import onnx


def copy_fields(source: Any, target: Any, skip: Collection[str] = ()) -> None:
    """Copy every set field of protobuf message ``source`` into ``target`` except those named in ``skip``."""
    for field, value in source.ListFields():
        if field.name in skip:
            continue
        if field.label == field.LABEL_REPEATED:
            getattr(target, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def model_shell(model: onnx.ModelProto, skip_graph: Collection[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph lacks the fields named in ``skip_graph`` (e.g. ``node``, ``initializer``).

    Building a changed model from a shell copies only what is kept: a whole-model ``CopyFrom`` would copy
    every weight first (hundreds of MB for a BERT-base graph).
    """
    shell = onnx.ModelProto()
    copy_fields(model, shell, skip=("graph",))
    copy_fields(model.graph, shell.graph, skip=skip_graph)
    return shell


def tensor_nbytes(dims: Sequence[int], elem_type: int) -> int:
    """Bytes of a tensor of shape ``dims`` and ONNX element type ``elem_type``."""
    return int(np.prod(dims, dtype=np.int64)) * onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
