"""Models rehydrated from cuts of one export map its weights copy-on-write instead of copying them.

Each model still owns its weights: training one changes neither the others, nor the user's model, nor a later
cut. A graph that was not cut from the export by ``embedding_head`` gets plain copies.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from finetuner import tailor
from tailor_ir import shared_weights
from tailor_ir.backends import torch as torch_backend
from tailor_ir.passes import set_initializers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd and /proc/self/maps: Linux")

STORE_NAME = "tailor_ir-weights"


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(  # 256x256 float32 weights: 256 KiB each, above MIN_SHARED_BYTES
        torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10),
    ).eval()


SAMPLE = torch.randn(4, 32)


def _store_ranges() -> list[tuple[int, int]]:
    """Address ranges of this process mapped from a weight store."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if STORE_NAME in line:
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                ranges.append((start, end))
    return ranges


def _in_store(param: torch.Tensor) -> bool:
    return any(start <= param.data_ptr() < end for start, end in _store_ranges())


def _param(model: torch.nn.Module, initializer: str) -> torch.nn.Parameter:
    return model.weight_names[initializer]


def test_cuts_of_one_export_map_its_weights_and_train_apart() -> None:
    model = _mlp()
    original = model[2].weight.detach().clone()
    first = tailor.to_embedding(model, output_dim=8, sample_input=SAMPLE)
    second = tailor.to_embedding(model, layer_name="4", output_dim=4, sample_input=SAMPLE)
    shared = [name for name in first.weight_names if name in second.weight_names and name.endswith("2.weight")]
    assert shared, sorted(first.weight_names)
    name = shared[0]
    assert _in_store(_param(first, name)) and _in_store(_param(second, name))
    assert _param(first, name).data_ptr() != _param(second, name).data_ptr()  # own mappings of one store
    assert not _in_store(_param(first, "embedding_head.projection.weight"))  # the new head is the model's own

    with torch.no_grad():
        before = first(SAMPLE)
    first.train()
    optimizer = torch.optim.SGD(first.parameters(), lr=0.5)
    first(SAMPLE).pow(2).sum().backward()
    optimizer.step()

    assert not torch.equal(_param(first, name).detach(), original)
    torch.testing.assert_close(_param(second, name).detach(), original, rtol=0, atol=0)
    torch.testing.assert_close(model[2].weight.detach(), original, rtol=0, atol=0)
    third = tailor.to_embedding(model, output_dim=8, sample_input=SAMPLE)
    torch.testing.assert_close(_param(third, name).detach(), original, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(third(SAMPLE), before, rtol=0, atol=0)


def test_a_graph_derived_after_the_cut_gets_plain_copies() -> None:
    from tailor_ir.frontends.torch import export
    from tailor_ir.passes import embedding_head

    embedding = embedding_head(export(_mlp(), SAMPLE), output_dim=8)
    name = next(n for n in embedding.weights if n.endswith("2.weight"))
    value = np.full(embedding.initializer_array(name).shape, 0.25, dtype=np.float32)
    derived = set_initializers(embedding, {name: value})
    model = torch_backend.rehydrate(derived, sample_inputs=SAMPLE.numpy())
    assert not _in_store(_param(model, name))
    np.testing.assert_array_equal(_param(model, name).detach().numpy(), value)


def test_small_weights_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_weights, "MIN_SHARED_BYTES", 1 << 30)
    model = tailor.to_embedding(_mlp(), output_dim=8, sample_input=SAMPLE)
    assert not any(_in_store(p) for p in model.weight_names.values())
