"""Write new values into a Graph's initializers (trained weights, BatchNorm statistics)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnx import helper, numpy_helper

from ..graph import Graph
from ..protos import model_shell


def set_initializers(graph: Graph, values: Mapping[str, np.ndarray]) -> Graph:
    """A copy of ``graph`` whose named initializers hold ``values`` (same shapes; cast to each one's dtype).

    Raises KeyError naming any value the graph has no initializer for and ValueError on a shape mismatch,
    before anything is changed.
    """
    by_name = {init.name: init for init in graph.model.graph.initializer}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise KeyError(f"the graph has no initializer named {', '.join(unknown[:5])}")
    updates = {}
    for name, value in values.items():
        init = by_name[name]
        array = np.asarray(value)
        if tuple(array.shape) != tuple(init.dims):
            raise ValueError(f"initializer {name!r} has shape {tuple(init.dims)}, the new value {array.shape}")
        dtype = helper.tensor_dtype_to_np_dtype(init.data_type)
        updates[name] = numpy_helper.from_array(array.astype(dtype, copy=False), name)
    model = model_shell(graph.model, skip_graph=("initializer",))  # the replaced weights are never copied
    model.graph.initializer.extend(updates.get(init.name, init) for init in graph.model.graph.initializer)
    return graph.replace(model=model)
