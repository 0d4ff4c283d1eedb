"""PytorchTuner: training on sklearn digits, evaluation, callbacks, exact resumption and early stopping."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from finetuner.tuner.callbacks import (
    BestModelCheckpoint,
    Callback,
    EarlyStopping,
    EvaluationCallback,
    MetricsLogger,
    ProgressBar,
    TrainingCheckpoint,
    TrainingPlot,
)
from finetuner.tuner.miners import TripletMiner
from finetuner.tuner.pytorch import ArcFaceLoss, PytorchTuner, TripletLoss

torch.set_num_threads(1)

# ---- minimal local stand-ins for finetuner.data's loader and finetuner.evaluation (not written yet) ----------
Batch = namedtuple("Batch", ["contents", "labels", "kind"])


class ClassLoader:
    """Class data in batches; with ``per_class``, each batch holds ``batch_size // per_class`` classes.

    The order of an epoch depends only on ``seed`` and ``set_epoch``.
    """

    def __init__(
        self, x: np.ndarray, y: np.ndarray, batch_size: int, per_class: int | None = None, seed: int = 0
    ):
        self.x, self.y, self.batch_size, self.per_class, self.seed = x, y, batch_size, per_class, seed
        self.epoch = 0
        self._batches = self._plan(0)

    def _plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.per_class is None:
            order = rng.permutation(len(self.y))
            return [
                order[i : i + self.batch_size]
                for i in range(0, len(order) - self.batch_size + 1, self.batch_size)
            ]
        groups = []
        for c in np.unique(self.y):
            members = rng.permutation(np.flatnonzero(self.y == c))
            groups += [
                members[i : i + self.per_class]
                for i in range(0, len(members) - self.per_class + 1, self.per_class)
            ]
        groups = [groups[i] for i in rng.permutation(len(groups))]
        k = self.batch_size // self.per_class
        return [np.concatenate(groups[i : i + k]) for i in range(0, len(groups) - k + 1, k)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._batches = epoch, self._plan(epoch)

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self):
        for rows in self._batches:
            yield Batch(self.x[rows], self.y[rows], "class")


class EvalLoader(ClassLoader):
    def _plan(self, epoch: int) -> list[np.ndarray]:
        return np.array_split(np.arange(len(self.y)), max(1, len(self.y) // self.batch_size))


def map_at_r(
    query_emb, query_labels, index_emb, index_labels, exclude_self: bool = False
) -> dict[str, float]:
    """Closed-set mAP@R with cosine similarity."""
    q = query_emb / np.linalg.norm(query_emb, axis=1, keepdims=True)
    i = index_emb / np.linalg.norm(index_emb, axis=1, keepdims=True)
    sims = q @ i.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    scores = []
    for row, label in enumerate(query_labels):
        relevant = index_labels == label
        if exclude_self:
            relevant[row] = False
        r = int(relevant.sum())
        hits = relevant[np.argsort(-sims[row], kind="stable")[:r]]
        scores.append(float((np.cumsum(hits) / np.arange(1, r + 1) * hits).sum() / r))
    return {"mAP@R": float(np.mean(scores))}


# ---- fixtures ------------------------------------------------------------------------------------------------
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
# a random split: the same ten classes on both sides
_ORDER = np.random.default_rng(0).permutation(len(DIGITS_Y))
DIGITS_X, DIGITS_Y = (DIGITS_X[_ORDER] / 16.0).astype(np.float32), DIGITS_Y[_ORDER]
TEST = slice(1200, None)


def mlp(dropout: float = 0.0, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(128, 32)
    )


def train_loader(size: int = 1200, batch_size: int = 80, per_class: int | None = 8) -> ClassLoader:
    return ClassLoader(DIGITS_X[:size], DIGITS_Y[:size], batch_size, per_class, seed=1)


def evaluation() -> EvaluationCallback:
    return EvaluationCallback(EvalLoader(DIGITS_X[TEST], DIGITS_Y[TEST], 256), evaluate_fn=map_at_r)


class KillAt(Callback):
    """Raise after the train step of global step ``step``, like a killed process."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, tuner) -> None:
        if tuner.state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


class WeightsPerEpoch(Callback):
    def __init__(self):
        self.weights: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, tuner) -> None:
        self.weights.append(tuner.get_weights())


# ---- tests ---------------------------------------------------------------------------------------------------
def test_triplet_semihard_reaches_map_at_r_on_digits() -> None:
    tuner = PytorchTuner(mlp(), loss=TripletLoss(), learning_rate=1e-2, scheduler="cosine")
    untrained = tuner.embed(DIGITS_X[TEST])
    before = map_at_r(untrained, DIGITS_Y[TEST], untrained, DIGITS_Y[TEST], exclude_self=True)["mAP@R"]
    state = tuner.fit(train_loader(), epochs=6, callbacks=[evaluation()])
    assert state.history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert state.records[-1]["mAP@R"] >= 0.85 > before
    assert state.history["loss"][-1] < state.history["loss"][0]


def _resumable_run(tmp: Path, kill_at: int | None, resume: bool, **options) -> PytorchTuner:
    tuner = PytorchTuner(
        mlp(dropout=0.2),
        loss=TripletLoss(miner=TripletMiner("all", "hard")),
        optimizer="adamw",
        learning_rate=2e-3,
        scheduler="cosine",
        warmup_steps=4,
        max_grad_norm=1.0,
        seed=7,
        **options,
    )
    callbacks = [EarlyStopping(monitor="mAP@R", patience=5), TrainingCheckpoint(tmp, every_n_batches=4)]
    if kill_at is not None:
        callbacks.insert(0, KillAt(kill_at))
    # the product's own path: arrays through finetuner.data's class sampler, the Evaluator on eval_data
    tuner.fit((DIGITS_X[:480], DIGITS_Y[:480]), eval_data=(DIGITS_X[TEST][:300], DIGITS_Y[TEST][:300]),
              epochs=3, batch_size=80, num_items_per_class=8, callbacks=callbacks,
              resume_from=tmp if resume else None)
    return tuner


# 7 batches per epoch, checkpoints after steps 4, 7 (epoch end), 8, 12, 14 (epoch end): kill at step 10 resumes
# from step 8 (mid-epoch 2), kill at step 15 from the end of epoch 2
@pytest.mark.parametrize("kill_at", [10, 15])
def test_killed_run_resumed_from_checkpoint_ends_with_identical_weights(tmp_path: Path, kill_at: int) -> None:
    reference = _resumable_run(tmp_path / "reference", kill_at=None, resume=False)
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "run", kill_at=kill_at, resume=False)
    assert not list((tmp_path / "run").glob("*.tmp")), "no temp file may be left behind"
    resumed = _resumable_run(tmp_path / "run", kill_at=None, resume=True)
    expected, actual = reference.get_weights(), resumed.get_weights()
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert resumed.state.global_step == reference.state.global_step == 21
    assert resumed.history == reference.history and len(resumed.history["mAP@R"]) == 3
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_on_cuda_trains_and_resumes_exactly(tmp_path: Path) -> None:
    torch.use_deterministic_algorithms(True)  # index_put's accumulate is atomic (unordered) on CUDA otherwise
    try:
        options = {"device": "cuda", "mixed_precision": True}
        reference = _resumable_run(tmp_path / "reference", kill_at=None, resume=False, **options)
        with pytest.raises(KeyboardInterrupt):
            _resumable_run(tmp_path / "run", kill_at=10, resume=False, **options)
        resumed = _resumable_run(tmp_path / "run", kill_at=None, resume=True, **options)
    finally:
        torch.use_deterministic_algorithms(False)
    assert reference.mixed_precision and reference.scaler.is_enabled()
    assert next(reference.model.parameters()).is_cuda
    assert reference.history["loss"][-1] < reference.history["loss"][0]
    expected, actual = reference.get_weights(), resumed.get_weights()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    embeddings = resumed.embed(DIGITS_X[:10])
    assert embeddings.dtype == np.float32 and embeddings.shape == (10, 32)


def test_resuming_with_different_data_shape_is_refused(tmp_path: Path) -> None:
    PytorchTuner(mlp()).fit(train_loader(size=480), epochs=1, callbacks=[TrainingCheckpoint(tmp_path)])
    with pytest.raises(ValueError, match="same data, batch_size and epochs"):
        PytorchTuner(mlp()).fit(train_loader(size=480), epochs=2, resume_from=tmp_path)


def test_early_stopping_stops_and_restores_best_weights() -> None:
    snapshots = WeightsPerEpoch()
    # the train loss falls every epoch, so with mode='max' epoch 1 stays best and patience 1 stops after epoch 3
    stopper = EarlyStopping(monitor="loss", mode="max", patience=1, restore_best=True)
    tuner = PytorchTuner(mlp(), loss=TripletLoss(miner=TripletMiner("all", "all")), learning_rate=3e-3)
    state = tuner.fit(train_loader(size=480), epochs=10, callbacks=[snapshots, stopper])
    assert state.history["epoch"] == [1, 2, 3] and stopper.best_epoch == 1
    final = tuner.get_weights()
    for name, value in snapshots.weights[0].items():
        np.testing.assert_array_equal(final[name], value)
    assert any(not np.array_equal(final[k], snapshots.weights[-1][k]) for k in final)


def test_early_stopping_without_patience_runs_every_epoch_and_still_restores_the_best() -> None:
    snapshots = WeightsPerEpoch()
    keeper = EarlyStopping(monitor="loss", mode="max", patience=None, restore_best=True)  # epoch 1 stays best
    tuner = PytorchTuner(mlp(), loss=TripletLoss(miner=TripletMiner("all", "all")), learning_rate=3e-3)
    state = tuner.fit(train_loader(size=480), epochs=4, callbacks=[snapshots, keeper])
    assert state.history["epoch"] == [1, 2, 3, 4] and keeper.best_epoch == 1 and keeper.stopped_epoch is None
    final = tuner.get_weights()
    for name, value in snapshots.weights[0].items():
        np.testing.assert_array_equal(final[name], value)
    with pytest.raises(ValueError, match="patience must be >= 0 or None"):
        EarlyStopping(patience=-1)


def test_metrics_logger_plot_and_best_model_files_hold_every_epoch(tmp_path: Path) -> None:
    callbacks = [
        evaluation(),
        MetricsLogger(tmp_path / "metrics"),
        TrainingPlot(tmp_path / "plot.png"),
        BestModelCheckpoint(tmp_path / "best", monitor="mAP@R"),
    ]
    state = PytorchTuner(mlp()).fit(train_loader(size=480), epochs=2, callbacks=callbacks)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and {"loss", "mAP@R"} <= rows[0].keys()
    assert float(rows[1]["mAP@R"]) == pytest.approx(state.records[1]["mAP@R"])
    assert [r["epoch"] for r in json.loads((tmp_path / "metrics.json").read_text())] == [1, 2]
    png = (tmp_path / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    best = json.loads((tmp_path / "best" / "best_model.json").read_text())
    assert best["epoch"] == 1 + int(np.argmax(state.history["mAP@R"]))
    assert set(torch.load(tmp_path / "best" / "best_model.pt")) == set(mlp().state_dict())


def test_progress_bar_shows_epoch_loss_and_metrics() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=150, force_terminal=False)
    PytorchTuner(mlp()).fit(train_loader(size=160), epochs=2, callbacks=[ProgressBar(console), evaluation()])
    text = console.file.getvalue()
    assert "epoch 2/2" in text and "loss " in text and "mAP@R " in text


def test_arcface_class_centres_are_trained_with_the_model() -> None:
    loss = ArcFaceLoss(num_classes=10, embedding_dim=32, scale=16.0)
    before = loss.weight.detach().clone()
    state = PytorchTuner(mlp(), loss=loss, learning_rate=3e-3).fit(train_loader(size=480), epochs=2)
    assert not torch.equal(loss.weight.detach(), before)
    assert state.history["loss"][1] < state.history["loss"][0]


def test_callbacks_see_hooks_in_order_and_exceptions() -> None:
    class Recorder(Callback):
        def __init__(self):
            self.events: list[str] = []

        def __getattribute__(self, name: str):
            if name.startswith("on_") and name != "on_exception":
                return lambda tuner: object.__getattribute__(self, "events").append(name)
            return object.__getattribute__(self, name)

        def on_exception(self, tuner, exception) -> None:
            self.events.append(f"on_exception:{type(exception).__name__}")

    recorder = Recorder()
    PytorchTuner(mlp()).fit(train_loader(size=160), epochs=1, callbacks=[recorder, evaluation()])
    batches = ["on_train_batch_begin", "on_train_batch_end"] * len(train_loader(size=160))
    assert recorder.events == [
        "on_fit_begin",
        "on_epoch_begin",
        *batches,
        "on_val_begin",
        "on_val_end",
        "on_epoch_end",
        "on_fit_end",
    ]
    crashing = Recorder()
    with pytest.raises(KeyboardInterrupt):
        PytorchTuner(mlp()).fit(train_loader(size=160), epochs=1, callbacks=[crashing, KillAt(1)])
    assert crashing.events[-1] == "on_exception:KeyboardInterrupt"


def test_options_are_validated_with_helpful_errors() -> None:
    with pytest.raises(ValueError, match="adamw"):
        PytorchTuner(mlp(), optimizer="adagrad")
    with pytest.raises(ValueError, match="cosine"):
        PytorchTuner(mlp(), scheduler="step")
    with pytest.raises(ValueError, match="num_classes"):
        PytorchTuner(mlp(), loss="ArcFaceLoss")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device='cpu'"):
            PytorchTuner(mlp(), device="cuda")
        with pytest.warns(UserWarning, match="mixed_precision"):
            assert PytorchTuner(mlp(), mixed_precision=True).mixed_precision is False


def test_importing_the_tuner_package_imports_no_framework() -> None:
    code = "import sys, finetuner.tuner, finetuner.tuner.callbacks; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "False\n"
    )
