"""The torch tuner runs Adam/AdamW as torch's fused kernel (as Hugging Face's Trainer does): the same steps as
the per-parameter loop, to float rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetuner.data.loader import Batch
from finetuner.tuner.pytorch.tuner import PytorchTuner


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_optimiser_takes_the_steps_of_the_unfused_one(name: str) -> None:
    rng = np.random.default_rng(0)
    batches = [
        Batch(rng.normal(size=(16, 8)).astype(np.float32), np.repeat(np.arange(4), 4), "class")
        for _ in range(3)
    ]
    fused = PytorchTuner(_net(), loss="TripletLoss", optimizer=name, learning_rate=1e-2, device="cpu")
    fused._setup(total_steps=3)
    assert fused.optimizer.defaults["fused"] is True

    reference = _net()
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    weight_decay = 0.01 if name == "adamw" else 0.0
    loop = cls(reference.parameters(), lr=1e-2, weight_decay=weight_decay, foreach=False, fused=False)
    for batch in batches:
        fused.train_step(batch)
        loop.zero_grad()
        fused.loss(reference(torch.as_tensor(batch.contents)), np.asarray(batch.labels)).backward()
        loop.step()
    for got, want in zip(fused.model.parameters(), reference.parameters()):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-6)
