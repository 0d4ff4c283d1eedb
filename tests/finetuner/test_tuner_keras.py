"""KerasTuner: digits quality on par with PytorchTuner, exact resumption, options, schedules, rehydrated models
(trained by KerasTuner and by ``model.fit``), and ``current_initializers`` written back into ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper
from sklearn.datasets import load_digits

from finetuner.evaluation import evaluate_embeddings
from finetuner.tuner import optim, tuner_class
from finetuner.tuner.callbacks import BestModelCheckpoint, Callback, EarlyStopping, TrainingCheckpoint
from finetuner.tuner.miners import TripletMiner
from tailor_ir.imports import import_keras, import_tensorflow

tf = import_tensorflow()
keras = import_keras()
from finetuner.tuner.keras import ArcFaceLoss, KerasTuner, TripletLoss  # noqa: E402

DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
_ORDER = np.random.default_rng(0).permutation(len(DIGITS_Y))
DIGITS_X, DIGITS_Y = (DIGITS_X[_ORDER] / 16.0).astype(np.float32), DIGITS_Y[_ORDER]
TRAIN, TEST = slice(0, 1200), slice(1200, None)


def keras_mlp(dropout: float = 0.0, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(dropout),
        keras.layers.Dense(32),
    ])


def torch_mlp(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))


def map_at_r(tuner) -> float:
    return evaluate_embeddings(tuner.embed(DIGITS_X[TEST]), DIGITS_Y[TEST], metrics=["mAP@R"])["mAP@R"]


def train_data(size: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    return DIGITS_X[:size], DIGITS_Y[:size]


class KillAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, tuner) -> None:
        if tuner.state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


# ---- quality: the same run in Keras and in PyTorch --------------------------------------------------------------
def test_digits_map_at_r_is_within_the_seed_spread_of_pytorch() -> None:
    import torch

    torch.set_num_threads(1)
    config = {"loss": "TripletLoss", "learning_rate": 1e-2, "scheduler": "cosine"}
    fit = {"epochs": 3, "batch_size": 80, "num_items_per_class": 8}
    scores: dict[str, list[float]] = {"keras": [], "torch": []}
    for seed in (0, 1):
        keras_tuner = tuner_class("keras")(keras_mlp(seed=seed), seed=seed, **config)
        before = map_at_r(keras_tuner)
        keras_tuner.fit(train_data(), **fit)
        scores["keras"].append(map_at_r(keras_tuner))
        torch_tuner = tuner_class("torch")(torch_mlp(seed), seed=seed, **config)
        torch_tuner.fit(train_data(), **fit)
        scores["torch"].append(map_at_r(torch_tuner))
    k, t = np.array(scores["keras"]), np.array(scores["torch"])
    spread = max(0.02, np.ptp(k) + np.ptp(t))
    assert min(k.min(), t.min()) >= 0.8 > before, scores
    assert abs(k.mean() - t.mean()) <= spread, scores


# ---- exact resumption -------------------------------------------------------------------------------------------
def _resumable_run(tmp, kill_at: int | None, resume: bool) -> KerasTuner:
    tuner = KerasTuner(
        keras_mlp(dropout=0.2),
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
    tuner.fit(train_data(480), epochs=3, batch_size=80, num_items_per_class=8, callbacks=callbacks,
              resume_from=tmp if resume else None)
    return tuner


# 7 batches per epoch, checkpoints after steps 4, 7 (epoch end), 8, 12, 14 (epoch end): kill at step 10 resumes
# from step 8 (mid-epoch 2), kill at step 15 from the end of epoch 2
@pytest.mark.parametrize("kill_at", [10, 15])
def test_killed_run_resumed_from_checkpoint_ends_with_identical_weights(tmp_path, kill_at: int) -> None:
    reference = _resumable_run(tmp_path / "reference", kill_at=None, resume=False)
    with pytest.raises(KeyboardInterrupt):
        _resumable_run(tmp_path / "run", kill_at=kill_at, resume=False)
    assert not list((tmp_path / "run").glob("*.tmp")), "no temp file may be left behind"
    resumed = _resumable_run(tmp_path / "run", kill_at=None, resume=True)
    # two model instances: Keras numbers their auto-named layers apart (dense_2 vs dense_4), the order is the same
    expected, actual = reference.get_weights(), resumed.get_weights()
    assert len(expected) == len(actual) and any("seed_generator" in k for k in expected)
    for (name, want), got in zip(expected.items(), actual.values()):
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert resumed.state.global_step == reference.state.global_step == 21
    assert resumed.history["loss"] == reference.history["loss"]
    assert resumed.current_learning_rate == reference.current_learning_rate
    opt_ref, opt_res = reference.optimizer.variables, resumed.optimizer.variables
    for a, b in zip(opt_ref, opt_res):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_resuming_with_different_data_shape_is_refused(tmp_path) -> None:
    KerasTuner(keras_mlp()).fit(train_data(480), epochs=1, batch_size=80, callbacks=[TrainingCheckpoint(tmp_path)])
    assert (tmp_path / "training_checkpoint.npz").is_file()
    with pytest.raises(ValueError, match="same data, batch_size and epochs"):
        KerasTuner(keras_mlp()).fit(train_data(480), epochs=2, batch_size=80, resume_from=tmp_path)


# ---- options ----------------------------------------------------------------------------------------------------
def test_options_are_validated_with_the_same_errors_as_pytorch() -> None:
    with pytest.raises(ValueError, match="adamw"):
        KerasTuner(keras_mlp(), optimizer="adagrad")
    with pytest.raises(ValueError, match="cosine"):
        KerasTuner(keras_mlp(), scheduler="step")
    with pytest.raises(ValueError, match="num_classes"):
        KerasTuner(keras_mlp(), loss="ArcFaceLoss")
    with pytest.raises(ValueError, match="device"):
        KerasTuner(keras_mlp(), device="tpu")
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(RuntimeError, match="device='cpu'"):
            KerasTuner(keras_mlp(), device="cuda")
        with pytest.warns(UserWarning, match="mixed_precision"):
            assert KerasTuner(keras_mlp(), mixed_precision=True).mixed_precision is False


@pytest.mark.parametrize(("optimizer", "scheduler"), [("adam", "linear"), ("sgd", "cosine"), ("rmsprop", "constant"),
                                                      ("adamw", "linear")])
def test_every_optimizer_and_schedule_trains_with_the_shared_learning_rates(optimizer, scheduler) -> None:
    rates = []

    class Rates(Callback):
        def on_train_batch_begin(self, tuner) -> None:
            rates.append(tuner.current_learning_rate)

    tuner = KerasTuner(keras_mlp(), optimizer=optimizer, scheduler=scheduler, warmup_steps=2, learning_rate=1e-2,
                       weight_decay=1e-4 if optimizer == "sgd" else None, max_grad_norm=5.0)
    before = tuner.get_weights()
    state = tuner.fit(train_data(480), epochs=1, batch_size=80, callbacks=[Rates()])
    total = state.num_batches
    expected = [1e-2 * optim.lr_multiplier(scheduler, s, 2, total) for s in range(total)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    after = tuner.get_weights()
    assert all(not np.array_equal(before[k], after[k]) for k in before if k.endswith(("kernel", "bias")))
    assert np.isfinite(state.history["loss"][0])


def test_custom_loss_and_optimizer_callables_run_eagerly() -> None:
    seen = []

    def loss(embeddings, labels):
        seen.append(type(labels))
        return tf.reduce_mean(tf.square(embeddings - 1.0))

    tuner = KerasTuner(keras_mlp(), loss=loss, optimizer=lambda params, lr: keras.optimizers.SGD(lr))
    state = tuner.fit(train_data(160), epochs=2, batch_size=80)
    assert seen and seen[0] is np.ndarray and state.history["loss"][1] < state.history["loss"][0]


def test_arcface_class_centres_are_trained_and_checkpointed(tmp_path) -> None:
    loss = ArcFaceLoss(num_classes=10, embedding_dim=32, scale=16.0)
    before = loss.weight.numpy().copy()
    tuner = KerasTuner(keras_mlp(), loss=loss, learning_rate=3e-3)
    state = tuner.fit(train_data(480), epochs=2, batch_size=80,
                      callbacks=[BestModelCheckpoint(tmp_path, monitor="loss", mode="min")])
    assert not np.array_equal(loss.weight.numpy(), before)
    assert state.history["loss"][1] < state.history["loss"][0]
    assert len(tuner.backend_state_dict()["loss"]) == 1
    assert (tmp_path / "best_model.npz").is_file()


# ---- rehydrated models ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tailored_mlp():
    from finetuner.tailor import to_embedding
    from models import keras_zoo

    model, sample = keras_zoo.mlp()
    return to_embedding(model, output_dim=16, sample_input=sample)


def test_rehydrated_model_trains_with_keras_tuner(tailored_mlp) -> None:
    tuner = KerasTuner(tailored_mlp, learning_rate=3e-3)
    before = map_at_r(tuner)
    weights = tuner.get_weights()
    state = tuner.fit(train_data(), epochs=2, batch_size=80, num_items_per_class=8)
    assert state.history["loss"][-1] < state.history["loss"][0]
    assert map_at_r(tuner) > before
    after = tuner.get_weights()
    assert all(not np.array_equal(weights[k], after[k]) for k in weights)


def test_rehydrated_model_trains_with_keras_fit(tailored_mlp) -> None:
    tailored = tailored_mlp
    targets = np.eye(16, dtype=np.float32)[DIGITS_Y[:480]]
    tailored.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    history = tailored.fit(DIGITS_X[:480], targets, batch_size=80, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_current_initializers_written_back_to_onnx_give_the_trained_model() -> None:
    from finetuner.tailor import graph_of, to_embedding
    from models import keras_zoo
    from tailor_ir import runtime
    from tailor_ir.backends.keras import current_initializers

    model, sample = keras_zoo.functional_cnn(batch=8)
    tailored = to_embedding(model, output_dim=8, sample_input=sample)
    graph = graph_of(tailored)
    images = np.random.default_rng(1).standard_normal((24, 16, 16, 3)).astype(np.float32)
    tuner = KerasTuner(tailored, loss=TripletLoss(miner=TripletMiner("all", "all")), learning_rate=1e-2)
    tuner.fit((images, np.arange(24) % 3), epochs=1, batch_size=12)
    values = current_initializers(tailored)
    bn_stats = {n.input[i] for n in graph.onnx_graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    assert set(values) == set(graph.weights) | bn_stats
    changed = {n for n, v in values.items() if not np.array_equal(v, graph.initializer_array(n))}
    assert changed == set(values), "a training step changes every weight and BN statistic"
    proto = graph.to_model_proto()
    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(numpy_helper.to_array(init).dtype),
                                                  init.name))
    trained = graph.replace(model=proto)
    for n in (1, 5):
        (expected,) = runtime.run(trained, [images[:n]])
        runtime.assert_close(np.asarray(tailored(images[:n], training=False)), expected, rtol=1e-4)
    with pytest.raises(TypeError, match="rehydrate"):
        current_initializers(model)
