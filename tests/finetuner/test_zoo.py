"""The zoo sweep's representative subset per framework (``models/<framework>_sweep.py``'s FAST).

``benchmarks/tailor_zoo.py`` runs every model of each library; this runs the subset the sweep modules name, with
every check of ``models.sweep.check_model``: default-cut equivalence, a unit-norm head, and a training step that
moves the weights.
"""

from __future__ import annotations

import importlib.util

import pytest

from models import sweep

FRAMEWORKS = [f for f in ("torch", "keras", "paddle") if importlib.util.find_spec(f"models.{f}_sweep")]


def _cases() -> list[tuple[str, str]]:
    return [(framework, name) for framework in FRAMEWORKS for name in sweep.fast_subset(framework)]


@pytest.mark.parametrize(("framework", "name"), _cases())
def test_the_tailor_passes_every_check_on_the_sweep_subset(framework: str, name: str) -> None:
    row = sweep.check_model(framework, name, sweep.entries(framework)[name])
    assert row["ok"], f"{framework} {name}: {row.get('error')}\n{row.get('traceback', '')}"
    assert row["trainable_params"] > 0


def test_the_sweep_checks_a_small_model_and_rejects_a_wrong_reference() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    sample = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    with torch.no_grad():
        features = model[1](model[0](torch.from_numpy(sample))).numpy()  # the classifier's input

    row = sweep.check_model("torch", "mlp", lambda: (model, sample, features))
    assert row["ok"], row
    assert row["shape"] == [3, 16] and row["moved_tensors"] == row["trainable_tensors"] == 4

    wrong = sweep.check_model("torch", "mlp", lambda: (model, sample, features + 1e-2))
    assert not wrong["ok"] and not wrong["equivalent"] and wrong["rel_error"] > 1e-4


def test_the_keras_sweep_and_its_results_list_every_keras_application() -> None:
    """100% of ``keras.applications``: every model builder of the pinned keras is in the sweep and has a row in
    the committed results (names only; ``benchmarks/tailor_zoo.py --framework keras`` runs them)."""
    import json
    from pathlib import Path

    keras = pytest.importorskip("keras")
    builders = {n for n, v in vars(keras.applications).items() if n[:1].isupper() and callable(v)}
    assert len(builders) >= 40, sorted(builders)
    assert builders <= set(sweep.entries("keras")), builders - set(sweep.entries("keras"))
    results = Path(__file__).parents[2] / "benchmarks" / "results" / "tailor_zoo_keras.json"
    rows = {r["model"] for r in json.loads(results.read_text())["rows"]}
    assert builders <= rows, builders - rows


def test_the_torch_sweep_lists_every_torchvision_classification_video_and_segmentation_builder() -> None:
    torchvision = pytest.importorskip("torchvision")
    from models import torch_sweep

    names = set(torch_sweep.entries())
    models = torchvision.models
    # told apart by the builder's module, not by list_models(module=...), which the sweep itself uses
    by_module: dict[str, set[str]] = {}
    for name in models.list_models():
        by_module.setdefault(models.get_model_builder(name).__module__.split(".")[2], set()).add(name)
    classification = {n for module, group in by_module.items() for n in group
                      if module not in ("video", "segmentation", "detection", "optical_flow", "quantization")}
    assert len(classification) >= 80  # resnet ... vit: the pinned torchvision's classification builders
    assert classification <= names
    assert {f"video_{n}" for n in by_module["video"]} <= names
    assert {f"seg_{n}" for n in by_module["segmentation"]} <= names
