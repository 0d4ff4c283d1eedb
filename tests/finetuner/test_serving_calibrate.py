"""Session options chosen on the serving machine: ``auto`` times every candidate and keeps one; a name forces it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import finetuner
from finetuner.serving.calibrate import SESSION_CHOICES
from finetuner.serving.model import EmbeddingRuntime


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    return finetuner.export(net, tmp_path_factory.mktemp("calibrate") / "mlp.onnx", input_shape=(16,))


def test_auto_times_every_candidate_and_keeps_one_that_computes_the_same(model_path):
    x = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
    quiet = EmbeddingRuntime(model_path, threads=1)
    auto = EmbeddingRuntime(model_path, threads=1, session_choice="auto")
    assert quiet.calibration == {"choice": "quiet", "seconds": {}}
    assert set(auto.calibration["seconds"]) == set(SESSION_CHOICES)
    assert all(s > 0 for s in auto.calibration["seconds"].values())
    seconds = auto.calibration["seconds"]
    assert auto.calibration["choice"] == min(seconds, key=seconds.__getitem__)
    feed = {quiet.inputs[0].name: x}
    np.testing.assert_allclose(auto.run(feed), quiet.run(feed), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "choice, level, spinning",
    [("quiet", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "0"),
     ("spinning", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "1"),
     ("extended", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "0")],
)
def test_a_named_choice_is_what_the_session_runs_with(model_path, choice, level, spinning):
    options = EmbeddingRuntime(model_path, threads=1, session_choice=choice).session.get_session_options()
    assert options.graph_optimization_level == level
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning


def test_an_unknown_choice_is_refused_with_the_names(model_path):
    with pytest.raises(ValueError, match="use 'auto' or one of quiet, spinning, extended"):
        EmbeddingRuntime(model_path, session_choice="fastest")
