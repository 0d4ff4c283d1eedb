"""``finetuner.tailor.to_embedding`` / ``display`` on real torch models: the public contract of issue 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from finetuner import tailor
from models import torch_zoo
from tailor_ir.errors import TailorError, UnknownLayerError


def _classifier_input(model: torch.nn.Module, head: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    seen = []
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    return seen[0].flatten(1).numpy()


def test_resnet18_default_cut_is_the_classifier_input() -> None:
    resnet, _ = torch_zoo.build("resnet18")
    resnet.eval()
    embedding = tailor.to_embedding(resnet, output_dim=None, normalize=False, input_shape=(3, 32, 32))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = embedding(x).numpy()
    np.testing.assert_allclose(got, _classifier_input(resnet, resnet.fc, x), rtol=1e-4, atol=1e-5)


def test_resnet18_with_output_dim_gives_unit_norm_embeddings() -> None:
    resnet, _ = torch_zoo.build("resnet18")
    embedding = tailor.to_embedding(resnet, output_dim=128, input_shape=(3, 32, 32))
    assert isinstance(embedding, torch.nn.Module) and not embedding.training
    for batch in (1, 4):
        with torch.no_grad():
            out = embedding(torch.randn(batch, 3, 32, 32)).numpy()
        assert out.shape == (batch, 128)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_minilm_with_sample_tokens_just_works() -> None:
    minilm, tokens = torch_zoo.build("minilm", batch=2)
    embedding = tailor.to_embedding(minilm, output_dim=128, sample_input=tokens)
    with torch.no_grad():
        out = embedding(**tokens).numpy()
    assert out.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_freeze_true_leaves_only_the_new_head_trainable() -> None:
    mlp = torch_zoo.MLP()
    embedding = tailor.to_embedding(mlp, output_dim=16, freeze=True, input_shape=(64,))
    trainable = sum(p.numel() for p in embedding.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in embedding.parameters() if not p.requires_grad)
    assert trainable == 64 * 16 + 16  # the projection only
    assert frozen == sum(p.numel() for name, p in mlp.named_parameters() if name.startswith("body"))


def test_freeze_by_layer_name_freezes_exactly_those_layers() -> None:
    mlp = torch_zoo.MLP()
    embedding = tailor.to_embedding(mlp, output_dim=16, freeze=["body.0"], input_shape=(64,))
    frozen = sum(p.numel() for p in embedding.parameters() if not p.requires_grad)
    assert frozen == 64 * 128 + 128


def test_display_lists_layers_and_marks_the_default_cut(capsys: pytest.CaptureFixture[str]) -> None:
    rows = tailor.display(torch_zoo.MLP(), input_shape=(64,))
    names = [row.name for row in rows]
    assert {"body.0", "body.3", "head"} <= set(names)
    default = [row.name for row in rows if row.default_cut]
    assert default and default[-1] == "body.5"
    assert "body.0" in capsys.readouterr().out


def test_unknown_layer_lists_the_closest_names() -> None:
    with pytest.raises(UnknownLayerError, match="'body.3'"):
        tailor.to_embedding(torch_zoo.MLP(), layer_name="body.33", input_shape=(64,))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "64"])
def test_bad_output_dim_is_a_value_error(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="output_dim"):
        tailor.to_embedding(torch_zoo.MLP(), output_dim=bad, input_shape=(64,))


def test_non_model_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tailor.to_embedding([1, 2, 3])


def test_wrong_input_shape_names_the_shape_and_what_to_do() -> None:
    with pytest.raises((TailorError, ValueError)) as info:
        tailor.to_embedding(torch_zoo.MLP(), input_shape=(3, 7))
    assert "input" in str(info.value).lower()


def test_import_finetuner_imports_no_framework() -> None:
    code = (
        "import sys, finetuner, finetuner.tailor, finetuner.data, finetuner.evaluation, finetuner.tuner; "
        "import finetuner.cli; "
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'paddle', 'jax') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
