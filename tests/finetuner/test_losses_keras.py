"""What only the Keras losses have: ``tf.function`` compilation and label checks before tracing.

Formulas, PyTorch parity and training for every backend: tests/finetuner/test_losses.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from finetuner.tuner.miners import TripletMiner
from tailor_ir.imports import import_tensorflow

tf = import_tensorflow()
from finetuner.tuner.keras.losses import (  # noqa: E402
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    SiameseLoss,
    TripletLoss,
)

CLASS_LABELS = np.repeat(np.arange(4), 3)


def embeddings(n: int = 12, dim: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("make_loss", [lambda: TripletLoss(miner=TripletMiner("all", "hard")),
                                       lambda: SiameseLoss(),
                                       lambda: MultipleNegativesRankingLoss(),
                                       lambda: ArcFaceLoss(num_classes=4, embedding_dim=6)])
def test_compiled_loss_equals_eager_loss(make_loss) -> None:  # noqa: ANN001
    x, loss = embeddings(), make_loss()
    compiled = tf.function(lambda e, y: loss(e, y), reduce_retracing=True)
    for n in (12, 9):
        eager = float(loss(tf.constant(x[:n]), CLASS_LABELS[:n]))
        assert float(compiled(tf.constant(x[:n]), tf.constant(CLASS_LABELS[:n]))) == pytest.approx(eager, rel=1e-6)


def test_class_centre_loss_checks_labels_before_tracing() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        CosFaceLoss(num_classes=3, embedding_dim=6).validate_labels(CLASS_LABELS)
