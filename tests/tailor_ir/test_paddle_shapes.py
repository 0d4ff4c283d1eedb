"""paddle2onnx patterns the paddle frontend repairs: adaptive pools whose output size does not divide their
input size (VGG's 7x7 pool on a small image), and ``F.interpolate(scale_factor=...)`` which paddle2onnx cannot
export. After the repair every value keeps its rank, and the default cut equals the classifier's input."""

from __future__ import annotations

import numpy as np
import pytest

from finetuner import tailor
from tailor_ir.frontends import paddle as paddle_frontend
from tailor_ir.frontends.paddle_pools import averaging_matrix
from tailor_ir.imports import import_paddle

paddle = import_paddle()
F = paddle.nn.functional


class SmallVgg(paddle.nn.Layer):
    """VGG's head on a 2x2 feature map: AdaptiveAvgPool2D(3) upsamples, then Linear, ReLU, Dropout, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1), paddle.nn.MaxPool2D(4))
        self.avgpool = paddle.nn.AdaptiveAvgPool2D((3, 3))
        self.classifier = paddle.nn.Sequential(
            paddle.nn.Linear(36, 16), paddle.nn.ReLU(), paddle.nn.Dropout(), paddle.nn.Linear(16, 10)
        )

    def forward(self, x):
        return self.classifier(paddle.flatten(self.avgpool(self.features(x)), 1))


class Interpolating(paddle.nn.Layer):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.up = paddle.nn.Upsample(scale_factor=1.5, mode=mode)
        self.head = paddle.nn.Linear(4 * 12 * 12, 10)

    def forward(self, x):
        y = F.interpolate(self.conv(x), scale_factor=2, mode=self.mode)
        return self.head(paddle.flatten(self.up(y), 1))


def classifier_input(model: paddle.nn.Layer, head: paddle.nn.Layer, x: np.ndarray) -> np.ndarray:
    seen: dict[str, np.ndarray] = {}
    handle = head.register_forward_pre_hook(lambda layer, inputs: seen.update(x=inputs[0].numpy()))
    model.eval()
    with paddle.no_grad():
        model(paddle.to_tensor(x))
    handle.remove()
    return seen["x"]


@pytest.mark.parametrize(("n_in", "n_out"), [(1, 7), (2, 3), (5, 3), (8, 7), (6, 3)])
def test_averaging_matrix_is_paddles_adaptive_pool(n_in: int, n_out: int) -> None:
    x = np.random.default_rng(0).standard_normal((1, 2, n_in, n_in)).astype(np.float32)
    expected = F.adaptive_avg_pool2d(paddle.to_tensor(x), n_out).numpy()
    m = averaging_matrix(n_in, n_out)
    np.testing.assert_allclose(m @ x @ m.T, expected, rtol=1e-5, atol=1e-6)


def test_an_upsampling_adaptive_pool_keeps_every_rank_and_the_default_cut_works() -> None:
    model = SmallVgg()
    x = np.random.default_rng(1).random((3, 3, 8, 8)).astype(np.float32)
    graph = paddle_frontend.export(model, x)
    for node in graph.model.graph.node:
        assert graph.shape_of(node.output[0]) is not None, f"{node.op_type} {node.output[0]} lost its shape"
    embedding = tailor.to_embedding(model, output_dim=None, normalize=False, sample_input=x)
    embedding.eval()
    got = embedding(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, classifier_input(model, model.classifier[3], x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_interpolate_with_a_scale_factor_exports_and_the_default_cut_matches(mode: str) -> None:
    model = Interpolating(mode)
    x = np.random.default_rng(2).random((2, 3, 4, 4)).astype(np.float32)
    embedding = tailor.to_embedding(model, output_dim=None, normalize=False, sample_input=x)
    embedding.eval()
    got = embedding(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, classifier_input(model, model.head, x), rtol=1e-4, atol=1e-5)
