"""``finetuner.fit`` on pair/triplet data (MNRL by default, no duplicates in a batch), the ``tokenizer`` option,
and the errors that name bad arguments (issue 17, item 8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import finetuner
from finetuner.data import DataError, digits, tokenizer_collate
from finetuner.data.content import Chunks
from finetuner.onnx_meta import tokenizer_dir
from finetuner.tuner.pytorch.tuner import PytorchTuner
from models.torch_zoo import MLP, tiny_bert


def _vector_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(anchor, positive) pairs of 16-d vectors sharing their first 8 dimensions; the other 8 are independent
    noise: an untrained encoder mixes the noise in, a trained one learns to ignore it."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 8))
    anchors = np.concatenate([signal, rng.normal(size=(n, 8))], axis=1)
    positives = np.concatenate([signal, rng.normal(size=(n, 8))], axis=1)
    return [(a.astype(np.float32), p.astype(np.float32)) for a, p in zip(anchors, positives)]


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    return finetuner.tailor.to_embedding(net, output_dim=None, input_shape=(16,))


def test_fit_on_pairs_defaults_to_mnrl_and_improves_on_held_out_pairs() -> None:
    tuned = finetuner.fit(_encoder(), _vector_pairs(320), epochs=5, batch_size=32, progress=False)
    summary = finetuner.summary(tuned)
    assert summary.loss == "MultipleNegativesRankingLoss" and summary.returned == "tuned"
    # held-out pairs of new vectors: a large gain, far from any CPU's rounding
    assert summary.best - summary.start > 0.1, str(summary)  # 0.17 and 0.23 with two data seeds


def test_fit_on_triplets_and_columns() -> None:
    pairs = _vector_pairs(96)
    negatives = [p for _, p in pairs[1:] + pairs[:1]]
    triplets = [(a, p, n) for (a, p), n in zip(pairs, negatives)]
    tuned = finetuner.fit(_encoder(), triplets, epochs=1, batch_size=16, validation="none", progress=False)
    assert finetuner.summary(tuned).loss == "MultipleNegativesRankingLoss"
    columns = {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    tuned = finetuner.fit(_encoder(), columns, epochs=1, batch_size=16, progress=False)
    assert finetuner.history(tuned)["epoch"] == [1]


def _word_tokenizer():  # noqa: ANN202 - a tokenizers.Tokenizer
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]"] + [f"w{i}" for i in range(90)]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def test_tokenizer_is_used_for_training_evaluation_embed_and_export(tmp_path: Path) -> None:
    bert, sample = tiny_bert()
    model = finetuner.tailor.to_embedding(bert, output_dim=None, sample_input=sample)
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(2, 90, size=5)) for _ in range(40)]
    pairs = [(t, " ".join(t.split()[::-1])) for t in texts]
    tokenizer = _word_tokenizer()
    tuned = finetuner.fit(model, pairs, tokenizer=tokenizer, epochs=1, batch_size=8, progress=False)
    assert finetuner.summary(tuned).start is not None  # evaluation tokenised the validation pairs
    embedded = finetuner.embed(texts[:3], tuned)
    assert embedded.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    path = finetuner.export(tuned, tmp_path / "text.onnx")
    assert tokenizer_dir(path).is_dir()  # the tokenizer given to fit went with the export

    # pair batches mix long and short texts: the torch backend runs them as two length groups, same embeddings
    mixed = [t + " " + t + " " + t for t in texts[:32]] + [t.split()[0] for t in texts]
    chunked = tokenizer_collate(tokenizer, input_names=["input_ids", "attention_mask"], chunked=True)(mixed)
    plain = tokenizer_collate(tokenizer, input_names=["input_ids", "attention_mask"])(mixed)
    assert isinstance(chunked, Chunks) and [c["input_ids"].shape for c in chunked] == [(40, 1), (32, 15)]
    tuner = PytorchTuner(tuned)
    np.testing.assert_allclose(tuner._embed_batch(chunked), tuner._embed_batch(plain), atol=1e-5)


@pytest.fixture(scope="module")
def mlp() -> torch.nn.Module:
    """The zoo MLP as an embedding model (the errors below are raised before it is touched)."""
    torch.manual_seed(0)
    return finetuner.tailor.to_embedding(MLP(), output_dim=None, input_shape=(64,))


@pytest.mark.parametrize("validation", ["auto", "items", "classes", "none"])
@pytest.mark.parametrize("rows", [99, 101])
def test_mismatched_x_and_y_are_an_error_whatever_the_validation(
    mlp: torch.nn.Module, validation: str, rows: int
) -> None:
    x = np.random.default_rng(0).random((rows, 64), dtype=np.float32)
    y = np.arange(100) % 5
    with pytest.raises(DataError, match=rf"y has shape \(100,\) but X has {rows} rows"):
        finetuner.fit(mlp, (x, y), validation=validation, progress=False)


def test_bad_arguments_are_named(mlp: torch.nn.Module) -> None:
    with pytest.raises(TypeError, match="train_data is None"):
        finetuner.fit(mlp, None)
    with pytest.raises(ValueError, match="learning_rate must be a positive number .* got 'x'"):
        finetuner.fit(mlp, digits(range(4)), learning_rate="x")
    with pytest.raises(ValueError, match="output_dim must be an integer between 1 and 65,536 .* 1000000000"):
        finetuner.fit(MLP(), digits(range(4)), output_dim=10**9, input_shape=(64,))
    x = np.zeros((40, 10), np.float32)
    with pytest.raises(ValueError, match=r"cannot embed the training data: .*shape \(2, 10\) float32"):
        finetuner.fit(mlp, (x, np.arange(40) % 4), progress=False)


def test_wrong_input_shape_for_tailoring_is_named() -> None:
    with pytest.raises(ValueError, match=r"input_shape=\(10,\)"):
        finetuner.fit(MLP(), digits(range(4)), output_dim=8, input_shape=(10,), progress=False)
