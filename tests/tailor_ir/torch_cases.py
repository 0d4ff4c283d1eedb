"""Shared, cached exports of the torch zoo for the torch frontend/backend tests (one export per model)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from models import torch_zoo
from tailor_ir.backends import torch as torch_backend
from tailor_ir.frontends import torch as torch_frontend
from tailor_ir.graph import Graph

ZOO_NAMES = list(torch_zoo.ZOO)


@functools.cache
def exported(name: str) -> tuple[torch.nn.Module, Graph]:
    """(original model in eval mode, exported Graph); the sample batch is 2."""
    model, sample = torch_zoo.build(name, batch=2)
    graph = torch_frontend.export(model, sample)
    model.eval()
    return model, graph


@functools.cache
def rehydrated(name: str) -> torch_backend.RehydratedModule:
    _, graph = exported(name)
    return torch_backend.rehydrate(graph)


def call(model: torch.nn.Module, sample: Any) -> list[torch.Tensor]:
    """Run a model on a sample and return its outputs as a list of tensors."""
    out = model(**sample) if isinstance(sample, dict) else model(sample)
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return [o for o in out if isinstance(o, torch.Tensor)]


def numpy_feed(sample: Any, names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(sample, dict):
        return {n: sample[n].numpy() for n in names}
    return {names[0]: sample.numpy()}
