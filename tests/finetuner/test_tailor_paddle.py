"""finetuner.tailor on Paddle zoo models: to_embedding (shape, norm, equivalence at the cut, freezing) and display."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from finetuner.tailor import display, graph_of, to_embedding
from models import paddle_zoo
from tailor_ir.errors import ModelTypeError, UnknownLayerError
from tailor_ir.imports import import_paddle

paddle = import_paddle()

# name -> (default cut: the sublayer whose forward-post output gives the cut activation, how to reduce it)
MODELS = {
    "mlp": ("body", lambda out: out),
    "small_cnn": ("pool", lambda out: out.reshape([out.shape[0], -1])),
    "lstm": ("rnn", lambda out: out[0][:, -1]),
    "resnet18": ("avgpool", lambda out: out.reshape([out.shape[0], -1])),
    "transformer": ("encoder", lambda out: out.mean(axis=1)),
}


@functools.cache
def built(name: str) -> tuple[object, np.ndarray]:
    model, sample = paddle_zoo.build(name, batch=3)
    model.eval()
    return model, sample


def activation(model: object, layer: str, sample: np.ndarray) -> object:
    """The output of sublayer ``layer`` when ``model`` runs on ``sample`` (a forward-post hook)."""
    seen = []
    handle = dict(model.named_sublayers())[layer].register_forward_post_hook(lambda _, __, out: seen.append(out))
    try:
        with paddle.no_grad():
            model(paddle.to_tensor(sample))
    finally:
        handle.remove()
    return seen[0]


def unique_params(model: object) -> list[object]:
    """Each parameter once (a rehydrated layer's real sublayers share the weight tree's parameters)."""
    return list({id(p): p for p in model.parameters()}.values())


def trainable_count(model: object) -> int:
    return sum(int(np.prod(p.shape)) for p in unique_params(model) if not p.stop_gradient)


@pytest.mark.parametrize("name", list(MODELS))
def test_embeddings_have_the_output_dim_and_unit_norm(name: str) -> None:
    model, sample = built(name)
    embedder = to_embedding(model, output_dim=16, sample_input=sample)
    with paddle.no_grad():
        out = embedder(paddle.to_tensor(sample)).numpy()
    assert out.shape == (len(sample), 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert graph_of(embedder) is not None and graph_of(embedder).framework == "paddle"
    head = int(np.prod(embedder.weight("embedding_head.projection.weight").shape)) + 16
    cut_weights = set(graph_of(embedder).weights) - {"embedding_head.projection.weight", "embedding_head.projection.bias"}
    kept = sum(int(np.prod(p.shape)) for n, p in model.named_parameters() if n in cut_weights)
    assert trainable_count(embedder) == kept + head
    classifier = {"mlp": "head", "small_cnn": "fc", "lstm": "fc", "resnet18": "fc", "transformer": "fc"}[name]
    assert not any(w.startswith(classifier + ".") for w in cut_weights), "the classifier must be cut away"


@pytest.mark.parametrize("name", list(MODELS))
def test_without_projection_and_normalisation_it_is_the_original_activation_at_the_cut(name: str) -> None:
    model, sample = built(name)
    layer, reduce = MODELS[name]
    embedder = to_embedding(model, output_dim=None, normalize=False, sample_input=sample)
    with paddle.no_grad():
        got = embedder(paddle.to_tensor(sample)).numpy()
    expected = reduce(activation(model, layer, sample)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_named_layer_is_cut_and_pooled() -> None:
    model, sample = built("resnet18")
    embedder = to_embedding(model, output_dim=None, normalize=False, layer_name="layer3", sample_input=sample)
    with paddle.no_grad():
        got = embedder(paddle.to_tensor(sample)).numpy()
    expected = activation(model, "layer3", sample).mean(axis=[2, 3]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not any(w.startswith("layer4.") for w in graph_of(embedder).weights)


@pytest.mark.parametrize("name", ["small_cnn", "transformer"])
def test_freeze_true_leaves_only_the_new_head_trainable(name: str) -> None:
    model, sample = built(name)
    embedder = to_embedding(model, output_dim=8, freeze=True, sample_input=sample)
    trainable = [n for n, p in embedder.weight_names.items() if not p.stop_gradient]
    assert sorted(trainable) == ["embedding_head.projection.bias", "embedding_head.projection.weight"]
    assert trainable_count(embedder) == int(np.prod(embedder.weight("embedding_head.projection.weight").shape)) + 8
    assert sum(int(np.prod(p.shape)) for p in unique_params(embedder) if p.stop_gradient) > 0


def test_freeze_a_list_of_layers_freezes_exactly_their_weights() -> None:
    model, sample = built("small_cnn")
    embedder = to_embedding(model, output_dim=8, freeze=["conv1", "bn1"], sample_input=sample)
    frozen = sorted(n for n, p in embedder.weight_names.items() if p.stop_gradient)
    assert frozen == ["bn1.bias", "bn1.weight", "conv1.bias", "conv1.weight"]


def test_unknown_layer_name_lists_the_closest_names() -> None:
    model, sample = built("small_cnn")
    with pytest.raises(UnknownLayerError, match="'conv2'") as info:
        to_embedding(model, layer_name="conv22", sample_input=sample)
    assert "conv2" in info.value.closest and "display" in str(info.value)


def test_invalid_output_dim_and_non_models_are_refused() -> None:
    model, sample = built("mlp")
    for bad in (0, -3):
        with pytest.raises(ValueError, match="output_dim"):
            to_embedding(model, output_dim=bad, sample_input=sample)
    with pytest.raises(TypeError, match="output_dim"):
        to_embedding(model, output_dim=2.5, sample_input=sample)
    with pytest.raises(ModelTypeError, match="paddle"):
        to_embedding(object())
    with pytest.raises(ModelTypeError):
        display(np.zeros(3))


def test_display_lists_and_prints_the_sublayers(capsys) -> None:
    model, sample = built("small_cnn")
    rows = display(model, sample_input=sample)
    names = [row.name for row in rows]
    assert names == ["conv1", "bn1", "conv2", "bn2", "pool", "dropout", "fc"]
    conv1 = rows[names.index("conv1")]
    assert conv1.params == 8 * 1 * 3 * 3 + 8 and conv1.trainable == "yes" and conv1.output_shape[1:] == (8, 8, 8)
    printed = capsys.readouterr().out
    assert "conv1" in printed and "paddle model: 7 layers" in printed and "1,466 trainable parameters" in printed


def test_display_guesses_the_input_of_an_mlp_without_a_sample() -> None:
    model, _ = built("mlp")
    rows = display(model, show=False)
    assert [r.output_shape for r in rows if r.name == "body.0"] == [("batch", 128)]


def test_display_marks_the_default_cut_on_a_layer_row() -> None:
    model, sample = built("small_cnn")
    rows = display(model, sample_input=sample, show=False)
    assert [row.name for row in rows if row.default_cut] == ["dropout"]
