"""The equivalence check's float32-noise allowance (``tailor_ir.runtime.NOISE_FACTOR``): beyond ``rtol`` a rehydrated
model may differ from onnxruntime by a few times onnxruntime's own float32 noise (deep random-weight nets), and on
a well-conditioned graph, where that noise is ~0, ``rtol`` stays in force."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import cnn_graph

from tailor_ir import runtime
from tailor_ir.errors import EquivalenceError
from tailor_ir.samples import random_inputs


def test_float32_noise_of_a_small_graph_is_far_below_rtol() -> None:
    graph = cnn_graph()
    noise = runtime.float32_noise(graph, random_inputs(graph))
    assert len(noise) == len(graph.output_names)
    assert all(0.0 <= n < 1e-4 / runtime.NOISE_FACTOR for n in noise)


def test_a_difference_beyond_rtol_on_a_well_conditioned_graph_is_still_refused() -> None:
    graph = cnn_graph()

    def off_by_1e3(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [o + 1e-3 * np.max(np.abs(o)) + 1e-4 for o in runtime.run(graph, feed)]

    with pytest.raises(EquivalenceError, match="onnxruntime's own float32 noise"):
        runtime.check_against_runtime(off_by_1e3, graph, framework="test")
    runtime.check_against_runtime(lambda feed: runtime.run(graph, feed), graph, framework="test")
