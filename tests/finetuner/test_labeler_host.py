"""ModelHost.close() returns only when no fit is training the model any more (Finish during a background fit)."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
from docarray import Document, DocumentArray

from finetuner.labeler.host import ModelHost, remote_train_fn
from finetuner.labeler.training import default_embed_fn


def test_close_waits_for_the_running_fit_so_the_returned_model_is_no_longer_trained():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    steps: list[float] = []
    started = threading.Event()

    def slow_train_fn(model, session_docs, epochs):
        """Real optimiser steps, slow enough that close() arrives in the middle of the fit."""
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.as_tensor(np.stack([d.tensor for d in session_docs]))
        for _ in range(epochs):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
            steps.append(time.monotonic())
            started.set()
            time.sleep(0.05)
        return {"loss": 0.0}

    docs = DocumentArray(Document(tensor=np.ones(8, np.float32) * i) for i in range(4))
    host = ModelHost(model, default_embed_fn, slow_train_fn)
    result: dict = {}
    fit = threading.Thread(target=lambda: result.update(remote_train_fn(host.handle("tuner"), docs, 20)))
    fit.start()
    assert started.wait(30)
    host.close()
    closed_at = time.monotonic()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    time.sleep(0.3)
    assert steps and max(steps) < closed_at, "the model was still being trained after close() returned"
    assert len(steps) == 20 and result == {"loss": 0.0}
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    fit.join(timeout=10)

