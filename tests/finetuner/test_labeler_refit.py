"""A pretrained encoder is refitted from the weights it was handed at every Labeler fit (on all the labels so far);
a small network from scratch, or a small head on a frozen backbone, keeps training on top of its previous fit. Both
the TunerExecutor (the product) and ``simulate`` (the benchmark) follow the same rule, ``refits_from_start``, which
is ``fit``'s rule for the pretrained recipe (trainable parameters counted).

The train_fn here is a user's own (a public option): it records the weights each fit starts from and moves them
by +1, so which weights a fit started from is read exactly.
"""

from __future__ import annotations

import asyncio
import copy
import time

import numpy as np
import pytest
import torch

from finetuner.labeler.training import get_weights, refits_from_start
from finetuner.tuner.defaults import PRETRAINED_MIN_PARAMETERS, is_pretrained
from tests.finetuner.test_labeler_inputs import text_pool


def _recording_train_fn(seen: list[dict[str, np.ndarray]]):
    def train_fn(model, sessions, epochs):
        seen.append(get_weights(model))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return {}

    return train_fn


def _text_model(kind: str) -> torch.nn.Module:
    vocab = 3 if kind == "scratch" else PRETRAINED_MIN_PARAMETERS // 4  # 4-wide rows: twelve weights or a million
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, 4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    if kind == "frozen backbone":  # a million frozen weights under a small trainable head: not pretrained for fit
        model[0].weight.requires_grad_(False)
    return model


def _fit_once(tuner, pool) -> None:
    assert asyncio.run(tuner.fit(docs=pool.session_docs(), parameters={"epochs": 1}))["started"]
    while asyncio.run(tuner.fit_status())["running"]:
        time.sleep(0.02)
    assert asyncio.run(tuner.fit_status())["error"] is None


@pytest.mark.parametrize("kind", ["pretrained", "scratch", "frozen backbone"])
def test_the_tuner_refits_a_pretrained_model_from_its_starting_weights(tmp_path, kind: str) -> None:
    from finetuner.labeler import Labeler
    from finetuner.labeler.executors import SESSIONS, LabelerObjects, PoolExecutor, TunerExecutor

    model = _text_model(kind)
    handed = copy.deepcopy(model)
    start = get_weights(model)
    pretrained = kind == "pretrained"
    assert refits_from_start(model) is is_pretrained(model) is pretrained
    seen: list[dict[str, np.ndarray]] = []
    labeler = Labeler(model, text_pool(), workdir=tmp_path / "wd", train_fn=_recording_train_fn(seen),
                      collate_fn=lambda texts: torch.tensor([[len(t) % 3] for t in texts]))
    root = str(labeler.workdir.root)
    pool = PoolExecutor(workdir=root)
    ids = list(pool.ids)
    pool.submit(parameters={"labels": [{"query_id": ids[0], "match_id": ids[1], "label": 1},
                                       {"query_id": ids[0], "match_id": ids[2], "label": -1}]})
    try:
        SESSIONS["refit"] = LabelerObjects(model, labeler.embed_fn, labeler.train_fn, inputs=labeler.inputs)
        tuner = TunerExecutor(workdir=root, session="refit")
        _fit_once(tuner, pool)
        _fit_once(tuner, pool)
        # a resumed session (new process, the model as handed in, the workdir's checkpoint loaded): the same rule
        SESSIONS["refit"] = LabelerObjects(handed, labeler.embed_fn, labeler.train_fn, inputs=labeler.inputs)
        _fit_once(TunerExecutor(workdir=root, session="refit"), pool)
    finally:
        SESSIONS.pop("refit", None)
    offsets = [1.0 * i for i in range(3)] if not pretrained else [0.0, 0.0, 0.0]
    for fit, offset in zip(seen, offsets):
        for name, value in start.items():
            np.testing.assert_allclose(fit[name], value + offset, atol=1e-6, err_msg=f"{name}: {offset}")


@pytest.mark.parametrize("pretrained", [True, False], ids=["pretrained", "scratch"])
def test_the_simulation_refits_as_the_labeler_does(pretrained: bool) -> None:
    from finetuner.labeler.simulation import simulate
    from finetuner.labeler.training import default_embed_fn

    width = 1000 if pretrained else 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = np.repeat(np.arange(6), 4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Linear(width, width), torch.nn.Linear(width, 8))
    start = get_weights(model)
    assert refits_from_start(model) is pretrained
    seen: list[dict[str, np.ndarray]] = []
    simulate(lambda: model, x[:16], y[:16], x[16:], y[16:], strategy="random", embed_fn=default_embed_fn,
             train_fn=_recording_train_fn(seen), rounds=3, questions=2, top_k=3, epochs=1)
    assert len(seen) == 3
    for i, fit in enumerate(seen):
        offset = 0.0 if pretrained else float(i)
        for name, value in start.items():
            np.testing.assert_allclose(fit[name], value + offset, atol=1e-5, err_msg=f"round {i}: {name}")
