"""Cutting real torch models at three layers: the embedding graph computes the original's activation there.

For every zoo model and three cut candidates spread over its depth (where it has them), at two batch sizes:
the rehydrated embedding model (no pooling, projection or normalisation) equals the original module's output
at that layer (a forward hook) and onnxruntime on the same graph, within 1e-4 relative.
"""

from __future__ import annotations

import pytest
import torch
from torch_cases import ZOO_NAMES, exported, numpy_feed

from models import torch_zoo
from tailor_ir import runtime
from tailor_ir.backends import torch as torch_backend
from tailor_ir.inspection import layer_table
from tailor_ir.passes import embedding_head

RTOL = 1e-4


def _module_outputs(model: torch.nn.Module, sample: object, names: list[str]) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def keep(name: str, out: object) -> None:  # clone: a later in-place activation would change the tensor
        seen.setdefault(name, out.clone() if isinstance(out, torch.Tensor) else out)

    hooks = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: keep(name, out)) for name in names
    ]
    try:
        with torch.no_grad():
            model(**sample) if isinstance(sample, dict) else model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _three_cuts(name: str) -> list[str]:
    """Three cut candidates (first third, middle, last) whose module returns one tensor."""
    model, graph = exported(name)
    modules = dict(model.named_modules())
    _, sample = torch_zoo.build(name, batch=2)
    rows = [r.name for r in layer_table(graph) if r.cut_candidate and r.name in modules and r.name]
    outputs = _module_outputs(model, sample, rows)
    tensors = [r for r in rows if isinstance(outputs.get(r), torch.Tensor)]
    if len(tensors) < 3:
        return tensors
    picks = [tensors[len(tensors) // 3], tensors[(2 * len(tensors)) // 3], tensors[-1]]
    return list(dict.fromkeys(picks))


CASES = [(name, layer) for name in ZOO_NAMES for layer in _three_cuts(name)]


def test_every_zoo_model_has_three_cuts() -> None:
    per_model = {name: sum(1 for n, _ in CASES if n == name) for name in ZOO_NAMES}
    assert all(count >= 2 for count in per_model.values()), per_model
    assert sum(count == 3 for count in per_model.values()) >= 6, per_model


@pytest.mark.parametrize(("name", "layer"), CASES, ids=[f"{n}:{layer}" for n, layer in CASES])
def test_cut_equals_hooked_activation_and_onnxruntime(name: str, layer: str) -> None:
    model, graph = exported(name)
    cut = embedding_head(graph, layer_name=layer, pooling="none", output_dim=None, normalize=False)
    rehydrated = torch_backend.rehydrate(cut, check=False).eval()
    for batch in (2, 5):
        _, sample = torch_zoo.build(name, batch=batch)
        expected = _module_outputs(model, sample, [layer])[layer].numpy()
        with torch.no_grad():
            got = (rehydrated(**sample) if isinstance(sample, dict) else rehydrated(sample)).numpy()
        runtime.assert_close(got, expected, rtol=RTOL, what=f"{name} at {layer} vs torch (batch {batch})")
        ort = runtime.run(cut.model, numpy_feed(sample, cut.input_names))[0]
        runtime.assert_close(ort, expected, rtol=RTOL, what=f"onnxruntime at {layer} vs torch (batch {batch})")
