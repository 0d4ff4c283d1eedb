"""The shared reference of the equivalence check: one backbone run per export and feed serves every cut.

Each cut's reference (its head run on the cached cut value) must equal a whole-graph onnxruntime run of the
embedding graph, a later cut must not run the backbone again, and anything that cannot be matched to the
export falls back to the whole-graph run.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import cnn_graph, token_graph

from tailor_ir import reference as reference_module
from tailor_ir import runtime
from tailor_ir.errors import EquivalenceError
from tailor_ir.passes import CUT, embedding_head, set_initializers
from tailor_ir.reference import cut_points, reference_outputs

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
TOKENS = {"input_ids": RNG.integers(0, 10, size=(2, 5)).astype(np.int64),
          "attention_mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)}

CNN_CUTS = [
    {},
    {"layer_name": "block.conv2", "output_dim": 3},
    {"layer_name": "conv", "pooling": "flatten", "output_dim": None},
    {"layer_name": "block", "pooling": "mean", "normalize": False},
    {"layer_name": "fc", "output_dim": 7},
]


class RunCounter:
    """Counts onnxruntime runs of a given model proto (the backbone)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, model: object) -> None:
        self.model, self.count, real = model, 0, runtime.run

        def counting(graph, *args, **kwargs):
            proto = graph.model if hasattr(graph, "model") else graph
            self.count += proto is self.model
            return real(graph, *args, **kwargs)

        monkeypatch.setattr(reference_module.runtime, "run", counting)


@pytest.mark.parametrize("cut", CNN_CUTS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_a_cuts_reference_equals_a_whole_graph_run(cut: dict) -> None:
    source = cnn_graph()
    embedding = embedding_head(source, **cut)
    expected = runtime.run(embedding, {"x": X})
    got = reference_outputs(embedding, {"x": X})
    assert len(got) == len(expected) == 1
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-7)


def test_masked_mean_reads_the_mask_input_beside_the_cached_cut() -> None:
    source = token_graph()
    embedding = embedding_head(source, output_dim=3)
    expected = runtime.run(embedding, TOKENS)[0]
    np.testing.assert_allclose(reference_outputs(embedding, TOKENS)[0], expected, rtol=1e-6, atol=1e-7)


def test_the_backbone_runs_once_per_export_and_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    source = cnn_graph()
    runs = RunCounter(monkeypatch, source.model)
    for cut in CNN_CUTS:
        reference_outputs(embedding_head(source, **cut), {"x": X})
    assert runs.count == 1
    reference_outputs(embedding_head(source), {"x": X + 1.0})  # another feed: computed again
    assert runs.count == 2


def test_only_the_graph_embedding_head_returned_is_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    source = cnn_graph()
    embedding = embedding_head(source, layer_name="block.conv2", output_dim=4)
    reference_outputs(embedding, {"x": X})  # caches the backbone values of ``source``
    runs = RunCounter(monkeypatch, source.model)
    retrained = set_initializers(embedding, {"conv.weight": np.zeros((4, 3, 3, 3), np.float32)})
    assert retrained.extra[CUT] == "c2"
    np.testing.assert_allclose(reference_outputs(retrained, {"x": X})[0], runtime.run(retrained, {"x": X})[0],
                               rtol=1e-6)
    lookalike = embedding_head(cnn_graph(seed=1), layer_name="block.conv2", output_dim=4)  # same names and nodes
    np.testing.assert_allclose(reference_outputs(lookalike, {"x": X})[0], runtime.run(lookalike, {"x": X})[0],
                               rtol=1e-6)
    assert runs.count == 0


def test_a_wrong_model_is_still_caught_with_the_shared_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    source = cnn_graph()
    reference_outputs(embedding_head(source), {"x": X})  # another cut, checked first: caches the backbone values
    embedding = embedding_head(source, layer_name="block.conv2", output_dim=4)
    right = runtime.run(embedding, {"x": X})
    runs = RunCounter(monkeypatch, source.model)

    def wrong(feed):
        return [right[0] * 1.01]

    runtime.check_against_runtime(lambda feed: right, embedding, {"x": X})
    with pytest.raises(EquivalenceError, match="differs from onnxruntime"):
        runtime.check_against_runtime(wrong, embedding, {"x": X})
    assert runs.count == 0  # both checks used the cached backbone value


def test_cut_points_fit_the_budget_shallow_layers_first() -> None:
    source = cnn_graph()
    every = cut_points(source, {"x": X}, budget=1 << 30)
    assert set(every) >= {"r1", "c2", "r2", "flat", "logits"}
    assert every.index("r2") < every.index("c2")  # 'block' before 'block.conv2'
    one_map = 2 * 4 * 8 * 8 * 4  # bytes of r1 at batch 2
    assert cut_points(source, {"x": X}, budget=one_map) == [every[0]]
    assert cut_points(source, {"x": X}, budget=0) == []
