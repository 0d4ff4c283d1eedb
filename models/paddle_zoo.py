"""The PaddlePaddle reference zoo: builders returning ``(model, sample_input)`` with a numpy sample.

Small general models (a CNN with BatchNorm/Dropout, an MLP, LSTM/GRU text classifiers, a
``paddle.nn.TransformerEncoder`` classifier) and real architectures from ``paddle.vision.models`` (resnet18,
mobilenet_v2) with random weights and small inputs. Nothing is downloaded. Every builder is seeded, so two
calls give the same weights. Paddle is imported through ``tailor_ir.imports`` (RTLD_DEEPBIND).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tailor_ir.imports import import_paddle

paddle = import_paddle()
nn = paddle.nn

VOCAB = 100
SEQ_LEN = 12


def sample_tokens(batch: int = 2, seq_len: int = SEQ_LEN, vocab: int = VOCAB, seed: int = 0) -> np.ndarray:
    """Random int64 token ids (batch, seq_len) in ``[1, vocab)``."""
    return np.random.default_rng(seed).integers(1, vocab, size=(batch, seq_len)).astype("int64")


def sample_floats(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Standard-normal float32 samples."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


class SmallCNN(nn.Layer):
    """Conv-BN-ReLU x2, pooling, Dropout and a Linear classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(in_channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2D(width)
        self.conv2 = nn.Conv2D(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2D(2 * width)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: Any) -> Any:
        x = nn.functional.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(x, 2)
        x = nn.functional.relu(self.bn2(self.conv2(x)))
        x = paddle.flatten(self.pool(x), 1)
        return self.fc(self.dropout(x))


class MLP(nn.Layer):
    """64 -> 128 -> 64 -> 10 with ReLU and Dropout (sklearn digits as flat vectors)."""

    def __init__(self, in_features: int = 64, hidden: tuple[int, ...] = (128, 64), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[Any] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.1)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Any) -> Any:
        return self.head(self.body(x))


class RNNClassifier(nn.Layer):
    """Embedding -> nn.LSTM / nn.GRU -> last step -> Linear."""

    def __init__(self, cell: str = "lstm", vocab: int = VOCAB, dim: int = 16, hidden: int = 24,
                 num_classes: int = 5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](dim, hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, input_ids: Any) -> Any:
        out, _ = self.rnn(self.embedding(input_ids))
        return self.fc(out[:, -1])


class TransformerClassifier(nn.Layer):
    """Token + position embeddings -> nn.TransformerEncoder (2 layers) -> mean pool -> Linear."""

    def __init__(self, vocab: int = VOCAB, dim: int = 32, heads: int = 2, layers: int = 2, max_len: int = 64,
                 num_classes: int = 5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.1)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, input_ids: Any) -> Any:
        positions = paddle.arange(paddle.shape(input_ids)[1], dtype="int64").unsqueeze(0)
        x = self.embedding(input_ids) + self.position(positions)
        return self.fc(self.encoder(x).mean(axis=1))


def _seed() -> None:
    paddle.seed(0)
    np.random.seed(0)


def small_cnn(batch: int = 2, in_channels: int = 1, side: int = 8) -> tuple[Any, np.ndarray]:
    """A small CNN for 1x8x8 digits (or 3x32x32 images)."""
    _seed()
    return SmallCNN(in_channels), sample_floats((batch, in_channels, side, side))


def mlp(batch: int = 2) -> tuple[Any, np.ndarray]:
    """An MLP for 64-feature vectors, 10 classes."""
    _seed()
    return MLP(), sample_floats((batch, 64))


def lstm(batch: int = 2) -> tuple[Any, np.ndarray]:
    """Embedding + nn.LSTM text classifier."""
    _seed()
    return RNNClassifier("lstm"), sample_tokens(batch)


def gru(batch: int = 2) -> tuple[Any, np.ndarray]:
    """Embedding + nn.GRU text classifier."""
    _seed()
    return RNNClassifier("gru"), sample_tokens(batch)


def transformer(batch: int = 2) -> tuple[Any, np.ndarray]:
    """A small nn.TransformerEncoder classifier."""
    _seed()
    return TransformerClassifier(), sample_tokens(batch)


def calibrate_batch_norm(model: Any, side: int = 32, batch: int = 8) -> Any:
    """Set every BatchNorm's running statistics to those of one random batch (layer by layer, in one pass).

    Untrained deep CNNs in eval mode otherwise output near-constants (ENVIRONMENT.md), which would make both
    equivalence and gradient tests vacuous. Returns the model in eval mode.
    """
    norms = [m for m in model.sublayers() if isinstance(m, nn.layer.norm._BatchNormBase)]
    momenta = [m._momentum for m in norms]
    for m in norms:
        m._momentum = 0.0
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(sample_floats((batch, 3, side, side), seed=1)))
    for m, momentum in zip(norms, momenta):
        m._momentum = momentum
    model.eval()
    return model


def resnet18(batch: int = 2, side: int = 32) -> tuple[Any, np.ndarray]:
    """paddle.vision resnet18, random weights (BN calibrated), small images."""
    _seed()
    model = calibrate_batch_norm(paddle.vision.models.resnet18(pretrained=False), side)
    return model, sample_floats((batch, 3, side, side))


def mobilenet_v2(batch: int = 2, side: int = 32) -> tuple[Any, np.ndarray]:
    """paddle.vision mobilenet_v2, random weights (BN calibrated), small images."""
    _seed()
    model = calibrate_batch_norm(paddle.vision.models.mobilenet_v2(pretrained=False), side)
    return model, sample_floats((batch, 3, side, side))


ZOO: dict[str, Callable[..., tuple[Any, np.ndarray]]] = {
    "small_cnn": small_cnn,
    "mlp": mlp,
    "lstm": lstm,
    "gru": gru,
    "transformer": transformer,
    "resnet18": resnet18,
    "mobilenet_v2": mobilenet_v2,
}


def build(name: str, batch: int = 2) -> tuple[Any, np.ndarray]:
    """Build a zoo model by name."""
    return ZOO[name](batch=batch)


def sample(name: str, batch: int) -> np.ndarray:
    """Only the sample input of a zoo model at ``batch`` (same seed as the builder)."""
    if name in ("lstm", "gru", "transformer"):
        return sample_tokens(batch)
    shape = {"small_cnn": (1, 8, 8), "mlp": (64,), "resnet18": (3, 32, 32), "mobilenet_v2": (3, 32, 32)}[name]
    return sample_floats((batch, *shape))
