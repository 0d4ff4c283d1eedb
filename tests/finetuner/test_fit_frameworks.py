"""The same public path for Keras and Paddle models: to_embedding -> fit -> export -> save/load."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import finetuner
from finetuner.data import digits, split_items
from finetuner.evaluation import Evaluator
from finetuner.onnx_meta import EmbeddingModelMeta


def _map_at_r(model: object, docs: object) -> float:
    return Evaluator(docs, metrics=["mAP@R"]).evaluate(lambda x: finetuner.embed(x, model))["mAP@R"]


@pytest.mark.parametrize("framework", ["keras", "paddle"])
def test_fit_export_save_load(framework: str, tmp_path: Path) -> None:
    zoo = importlib.import_module(f"models.{framework}_zoo")
    general, _ = zoo.build("mlp")
    train, test = split_items(digits(), 0.3, seed=0)
    model = finetuner.tailor.to_embedding(general, output_dim=32, input_shape=(64,))
    before = _map_at_r(model, test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = finetuner.fit(model, train, epochs=8, validation="items", progress=False)
    after = _map_at_r(tuned, test)
    assert after >= 0.85 and after > before + 0.3, (before, after)

    path = finetuner.export(tuned, tmp_path / "model.onnx")
    meta = EmbeddingModelMeta.from_file(path)
    assert (meta.framework, meta.output_dim, meta.normalized) == (framework, 32, True)
    x = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {meta.input_names[0]: x})[0], finetuner.embed(x, tuned), atol=1e-4)

    finetuner.save(tuned, tmp_path / "tuned.onnx")
    loaded = finetuner.load(tmp_path / "tuned.onnx")
    np.testing.assert_allclose(finetuner.embed(x, loaded), finetuner.embed(x, tuned), atol=1e-6)
