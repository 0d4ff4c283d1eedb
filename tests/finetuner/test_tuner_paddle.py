"""PaddleTuner: digits quality against PytorchTuner, exact resumption, tailored models, options, TF + Paddle."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from finetuner.tuner import tuner_class
from finetuner.tuner.callbacks import Callback, EarlyStopping, EvaluationCallback, TrainingCheckpoint
from finetuner.tuner.miners import TripletMiner
from tailor_ir.imports import import_paddle

paddle = import_paddle()
from finetuner.tuner.paddle import ArcFaceLoss, PaddleTuner, TripletLoss  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
_ORDER = np.random.default_rng(0).permutation(len(DIGITS_Y))
DIGITS_X, DIGITS_Y = (DIGITS_X[_ORDER] / 16.0).astype(np.float32), DIGITS_Y[_ORDER]


def mlp(dropout: float = 0.0, seed: int = 0) -> paddle.nn.Layer:
    paddle.seed(seed)
    return paddle.nn.Sequential(
        paddle.nn.Linear(64, 128), paddle.nn.ReLU(), paddle.nn.Dropout(dropout), paddle.nn.Linear(128, 32)
    )


class KillAt(Callback):
    """Raise after the train step of global step ``step``, like a killed process."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, tuner) -> None:
        if tuner.state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


# ---- quality: the same config reaches the same mAP@R as PyTorch ------------------------------------------------
def _digits_map_at_r(framework: str, seed: int) -> float:
    """Closed set (the same ten classes on both sides): train on 1,200 digits, evaluate on the other 597."""
    from finetuner.data import digits

    docs = digits()
    order = np.random.default_rng(0).permutation(len(docs))
    train, held_out = docs[[int(i) for i in order[:1200]]], docs[[int(i) for i in order[1200:]]]
    if framework == "paddle":
        model = mlp(seed=seed)
    else:
        import torch

        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    tuner = tuner_class(framework)(model, loss="TripletLoss", learning_rate=1e-2, scheduler="cosine", seed=seed)
    # evaluate_fn left at its default: finetuner.evaluation.evaluate_embeddings
    state = tuner.fit(train, epochs=4, batch_size=80, callbacks=[EvaluationCallback(held_out, metrics=["mAP@R"])])
    assert state.history["loss"][-1] < state.history["loss"][0]
    return state.records[-1]["mAP@R"]


def test_digits_map_at_r_is_within_the_seed_spread_of_pytorch() -> None:
    import torch

    torch.set_num_threads(1)
    seeds = (0, 1)
    torch_scores = [_digits_map_at_r("torch", s) for s in seeds]
    paddle_scores = [_digits_map_at_r("paddle", s) for s in seeds]
    spread = max(torch_scores) - min(torch_scores)
    print("mAP@R paddle", paddle_scores, "torch", torch_scores)
    assert min(paddle_scores) >= 0.8 and min(torch_scores) >= 0.8, (paddle_scores, torch_scores)
    assert abs(np.mean(paddle_scores) - np.mean(torch_scores)) <= max(2 * spread, 0.03), (
        paddle_scores, torch_scores)


# ---- exact resumption ------------------------------------------------------------------------------------------
TRAIN = (DIGITS_X[:480], DIGITS_Y[:480])  # 7 batches of 80 (8 per class, 10 classes) per epoch


def _resumable_run(tmp: Path, kill_at: int | None, resume: bool) -> PaddleTuner:
    tuner = PaddleTuner(
        mlp(dropout=0.2),
        loss=TripletLoss(miner=TripletMiner("all", "hard")),
        optimizer="adamw",
        learning_rate=2e-3,
        scheduler="cosine",
        warmup_steps=4,
        max_grad_norm=1.0,
        seed=7,
    )
    callbacks = [EarlyStopping(monitor="loss", patience=5), TrainingCheckpoint(tmp, every_n_batches=4)]
    if kill_at is not None:
        callbacks.insert(0, KillAt(kill_at))
    tuner.fit(TRAIN, epochs=3, batch_size=80, callbacks=callbacks, resume_from=tmp if resume else None)
    return tuner


# checkpoints after steps 4, 7 (epoch end), 8, 12, 14 (epoch end), 16, ...: killed at 11 it resumes from step 8,
# in the middle of epoch 2 (optimiser moments, schedule and dropout's RNG mid-flight); killed at 15 from the end
# of epoch 2
@pytest.mark.parametrize("kill_at", [11, 15])
def test_killed_run_resumed_from_checkpoint_ends_with_identical_weights(tmp_path: Path, kill_at: int) -> None:
    reference = _resumable_run(tmp_path / "reference", kill_at=None, resume=False)
    per_epoch = reference.state.num_batches
    assert per_epoch == 7
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "run", kill_at=kill_at, resume=False)
    assert not list((tmp_path / "run").glob("*.tmp")), "no temp file may be left behind"
    resumed = _resumable_run(tmp_path / "run", kill_at=None, resume=True)
    expected, actual = reference.get_weights(), resumed.get_weights()
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert resumed.state.global_step == reference.state.global_step == 3 * per_epoch
    assert resumed.history["loss"] == reference.history["loss"]
    assert resumed.optimizer.get_lr() == reference.optimizer.get_lr()


def test_resuming_with_a_torch_checkpoint_or_other_data_shape_is_refused(tmp_path: Path) -> None:
    PaddleTuner(mlp()).fit(TRAIN, epochs=1, batch_size=80, callbacks=[TrainingCheckpoint(tmp_path)])
    assert (tmp_path / "training_checkpoint.npz").is_file()
    with pytest.raises(ValueError, match="same data, batch_size and epochs"):
        PaddleTuner(mlp()).fit(TRAIN, epochs=2, batch_size=80, resume_from=tmp_path)


# ---- tailored models, loss parameters, weights -----------------------------------------------------------------
def test_a_tailored_paddle_model_trains_with_the_paddle_tuner() -> None:
    from finetuner.tailor import to_embedding
    from models import paddle_zoo

    model, sample = paddle_zoo.mlp()
    embedder = to_embedding(model, output_dim=16, sample_input=sample)
    tuner = PaddleTuner(embedder, loss=TripletLoss(miner=TripletMiner("all", "all")), learning_rate=3e-3)
    before = {name: p.numpy().copy() for name, p in embedder.weight_names.items()}
    state = tuner.fit(TRAIN, epochs=2, batch_size=80)
    assert state.history["loss"][1] < state.history["loss"][0]
    assert len(before) == 6 and "embedding_head.projection.weight" in before
    for name, param in embedder.weight_names.items():
        assert not np.array_equal(before[name], param.numpy()), f"{name} did not train"
    embeddings = tuner.embed(DIGITS_X[:5])
    assert embeddings.shape == (5, 16) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)


def test_arcface_class_centres_train_and_weights_round_trip(tmp_path: Path) -> None:
    loss = ArcFaceLoss(num_classes=10, embedding_dim=32, scale=16.0)
    before = loss.weight.numpy().copy()
    tuner = PaddleTuner(mlp(), loss=loss, learning_rate=3e-3, optimizer="sgd")
    state = tuner.fit(TRAIN, epochs=2, batch_size=80)
    assert not np.array_equal(loss.weight.numpy(), before)
    assert state.history["loss"][1] < state.history["loss"][0]
    weights = tuner.get_weights()
    other = PaddleTuner(mlp(seed=5))
    other.set_weights(weights)
    np.testing.assert_array_equal(other.embed(DIGITS_X[:4]), tuner.embed(DIGITS_X[:4]))
    tuner.save_model(str(tmp_path / "model.pdparams"))
    assert set(paddle.load(str(tmp_path / "model.pdparams"))) == set(weights)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", lambda params, lr: paddle.optimizer.SGD(lr, parameters=params)])
def test_every_optimizer_and_schedule_lowers_the_loss(optimizer) -> None:
    tuner = PaddleTuner(mlp(), loss=TripletLoss(miner=TripletMiner("all", "all")), optimizer=optimizer,
                        learning_rate=1e-2 if callable(optimizer) else 2e-3, scheduler="linear", warmup_steps=2)
    state = tuner.fit(TRAIN, epochs=2, batch_size=80)
    assert state.history["loss"][1] < state.history["loss"][0]
    assert tuner.scheduler.last_epoch == 14 and tuner.optimizer.get_lr() == pytest.approx(0.0, abs=1e-12)


def test_options_are_validated_with_helpful_errors() -> None:
    with pytest.raises(ValueError, match="adamw"):
        PaddleTuner(mlp(), optimizer="adagrad")
    with pytest.raises(ValueError, match="cosine"):
        PaddleTuner(mlp(), scheduler="step")
    with pytest.raises(ValueError, match="num_classes"):
        PaddleTuner(mlp(), loss="ArcFaceLoss")
    with pytest.raises(ValueError, match="'gpu'"):
        PaddleTuner(mlp(), device="tpu")
    if not paddle.device.is_compiled_with_cuda():
        with pytest.raises(RuntimeError, match="device='cpu'"):
            PaddleTuner(mlp(), device="cuda")
        with pytest.raises(RuntimeError, match="device='cpu'"):
            PaddleTuner(mlp(), device="gpu:0")
    with pytest.warns(UserWarning, match="mixed_precision"):
        assert PaddleTuner(mlp(), mixed_precision=True).mixed_precision is False
    with pytest.raises(ValueError, match="no trainable parameter"):
        frozen = mlp()
        for p in frozen.parameters():
            p.stop_gradient = True
        PaddleTuner(frozen).fit(TRAIN, epochs=1, batch_size=80)


def test_tuner_class_dispatches_to_paddle() -> None:
    assert tuner_class("paddle") is PaddleTuner


# ---- isolation: TensorFlow first, then Paddle and Keras in one process -----------------------------------------
def test_tensorflow_first_then_tailoring_paddle_and_keras_in_one_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import tensorflow as tf  # first, on purpose
        import numpy as np
        from finetuner.tailor import to_embedding
        from models import paddle_zoo, keras_zoo

        pd_model, pd_sample = paddle_zoo.small_cnn()
        pd_emb = to_embedding(pd_model, output_dim=8, sample_input=pd_sample)
        ks_model, ks_sample = keras_zoo.mlp()
        ks_emb = to_embedding(ks_model, output_dim=8, sample_input=ks_sample)
        import paddle
        a = pd_emb(paddle.to_tensor(pd_sample)).numpy()
        b = np.asarray(ks_emb(ks_sample))
        print(type(pd_emb).__name__, a.shape, b.shape, round(float(np.linalg.norm(a[0])), 4))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path), "KERAS_HOME": str(tmp_path / ".keras"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, env=env,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "RehydratedLayer (2, 8) (2, 8) 1.0"
