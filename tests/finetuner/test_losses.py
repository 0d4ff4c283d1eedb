"""Every backend's losses (PyTorch, Keras, Paddle) equal their numpy formulas (tests/loss_reference.py); the Keras
and Paddle ones equal the PyTorch ones in value, gradient and mined selection on the same embeddings, class weights
and batch (invariant 4); and each trains a small MLP on real data from the same starting weights.

One adapter per framework (:class:`Backend`) turns numpy in and numpy out, so each test is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import loss_reference as ref
import numpy as np
import pytest
from sklearn.datasets import load_digits

from finetuner.tuner.losses import initial_class_weight
from finetuner.tuner.miners import PairMiner, TripletMiner
from tailor_ir.imports import import_torch

torch = import_torch()
torch.set_num_threads(1)

DISTANCES = ["cosine", "euclidean", "sqeuclidean"]
STRATEGIES = ["all", "easy", "semihard", "hard"]
CLASS_LABELS = np.repeat(np.arange(4), 3)
SESSIONS = np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1], [9, -1]])


def embeddings(n: int = 12, dim: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def digits_batch(per_class: int = 8) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return (x[rows] / 16.0).astype(np.float32), y[rows]


def mlp_start() -> list[np.ndarray]:
    """The 64-32-16 MLP's starting weights, as (in, out) matrices and biases (torch's init with seed 0)."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(64, 32), torch.nn.Linear(32, 16)]
    return [a for layer in layers for a in (layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy())]


class Backend:
    """numpy in, numpy out: a loss's value and gradients, its class weight, distances, and a training run."""

    name: str
    losses: ModuleType

    def value(self, loss: Any, x: np.ndarray, labels: np.ndarray) -> float:
        return self.value_and_grads(loss, x, labels)[0]

    def value_and_grads(self, loss: Any, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, Any]:
        """The loss, its gradient w.r.t. ``x`` and w.r.t. the class weight (None without one)."""
        raise NotImplementedError

    def weight(self, loss: Any) -> np.ndarray:
        raise NotImplementedError

    def set_weight(self, loss: Any, value: np.ndarray) -> None:
        raise NotImplementedError

    def trainable(self, loss: Any) -> int:
        raise NotImplementedError

    def distance(self, x: np.ndarray, distance: str) -> np.ndarray:
        raise NotImplementedError

    def train(self, loss_fn: Any, measure: Any, x: np.ndarray, y: np.ndarray, steps: int) -> list[float]:
        """Adam (5e-3) on the 64-32-16 MLP from :func:`mlp_start`; ``measure`` after every step."""
        raise NotImplementedError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self) -> None:
        from finetuner.tuner.pytorch import losses

        self.losses = losses

    def value_and_grads(self, loss, x, labels):  # noqa: ANN001, ANN201
        xt = torch.tensor(x, requires_grad=True)
        value = loss(xt, labels)
        value.backward()
        weight = getattr(loss, "weight", None)
        return float(value.detach()), xt.grad.numpy(), None if weight is None else weight.grad.numpy()

    def weight(self, loss):  # noqa: ANN001, ANN201
        return loss.weight.detach().numpy()

    def set_weight(self, loss, value) -> None:  # noqa: ANN001
        with torch.no_grad():
            loss.weight.copy_(torch.from_numpy(value))

    def trainable(self, loss) -> int:  # noqa: ANN001
        return sum(p.requires_grad for p in loss.parameters())

    def distance(self, x, distance):  # noqa: ANN001, ANN201
        return self.losses.pairwise_distance(torch.tensor(x), distance).numpy()

    def train(self, loss_fn, measure, x, y, steps):  # noqa: ANN001, ANN201
        w1, b1, w2, b2 = mlp_start()
        model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
        with torch.no_grad():
            for layer, w, b in ((model[0], w1, b1), (model[2], w2, b2)):
                layer.weight.copy_(torch.from_numpy(w.T.copy()))
                layer.bias.copy_(torch.from_numpy(b))
        optimizer = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=5e-3)
        inputs, out = torch.from_numpy(x), []
        for _ in range(steps):
            optimizer.zero_grad()
            loss_fn(model(inputs), y).backward()
            optimizer.step()
            with torch.no_grad():
                out.append(float(measure(model(inputs), y)))
        return out


class KerasBackend(Backend):
    name = "keras"

    def __init__(self) -> None:
        from tailor_ir.imports import import_keras, import_tensorflow

        self.tf, self.keras = import_tensorflow(), import_keras()
        from finetuner.tuner.keras import losses

        self.losses = losses

    def value_and_grads(self, loss, x, labels):  # noqa: ANN001, ANN201
        tf = self.tf
        xv = tf.Variable(x)
        weight = getattr(loss, "weight", None)
        with tf.GradientTape() as tape:
            value = loss(xv, labels)
        grads = tape.gradient(value, [xv] if weight is None else [xv, weight])
        grads = [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]
        return float(value), grads[0], None if weight is None else grads[1]

    def weight(self, loss):  # noqa: ANN001, ANN201
        return loss.weight.numpy()

    def set_weight(self, loss, value) -> None:  # noqa: ANN001
        loss.weight.assign(value)

    def trainable(self, loss) -> int:  # noqa: ANN001
        return len(loss.trainable_variables)

    def distance(self, x, distance):  # noqa: ANN001, ANN201
        return self.losses.pairwise_distance(self.tf.constant(x), distance).numpy()

    def train(self, loss_fn, measure, x, y, steps):  # noqa: ANN001, ANN201
        tf, keras = self.tf, self.keras
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(16)])
        model.set_weights(mlp_start())
        variables = [*model.trainable_variables, *loss_fn.trainable_variables]
        optimizer = keras.optimizers.Adam(5e-3)
        inputs, labels, out = tf.constant(x), tf.constant(y), []
        for _ in range(steps):  # eager: the compiled path has its own test, tracing would dominate here
            with tf.GradientTape() as tape:
                loss = loss_fn(model(inputs, training=True), labels)
            optimizer.apply(tape.gradient(loss, variables), variables)
            out.append(float(measure(model(inputs, training=False), labels)))
        return out


class PaddleBackend(Backend):
    name = "paddle"

    def __init__(self) -> None:
        from tailor_ir.imports import import_paddle

        self.paddle = import_paddle()
        from finetuner.tuner.paddle import losses

        self.losses = losses

    def value_and_grads(self, loss, x, labels):  # noqa: ANN001, ANN201
        xp = self.paddle.to_tensor(x, stop_gradient=False)
        value = loss(xp, labels)
        value.backward()
        weight = getattr(loss, "weight", None)
        return float(value), xp.grad.numpy(), None if weight is None else weight.grad.numpy()

    def weight(self, loss):  # noqa: ANN001, ANN201
        return loss.weight.numpy()

    def set_weight(self, loss, value) -> None:  # noqa: ANN001
        loss.weight.set_value(value)

    def trainable(self, loss) -> int:  # noqa: ANN001
        return sum(not p.stop_gradient for p in loss.parameters())

    def distance(self, x, distance):  # noqa: ANN001, ANN201
        return self.losses.pairwise_distance(self.paddle.to_tensor(x), distance).numpy()

    def train(self, loss_fn, measure, x, y, steps):  # noqa: ANN001, ANN201
        paddle = self.paddle
        model = paddle.nn.Sequential(paddle.nn.Linear(64, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 16))
        w1, b1, w2, b2 = mlp_start()
        for layer, w, b in ((model[0], w1, b1), (model[2], w2, b2)):
            layer.weight.set_value(w)
            layer.bias.set_value(b)
        optimizer = paddle.optimizer.Adam(learning_rate=5e-3, parameters=[*model.parameters(),
                                                                           *loss_fn.parameters()])
        inputs, out = paddle.to_tensor(x), []
        for _ in range(steps):
            loss_fn(model(inputs), y).backward()
            optimizer.step()
            optimizer.clear_grad()
            with paddle.no_grad():
                out.append(float(measure(model(inputs), y)))
        return out


BACKENDS: dict[str, Callable[[], Backend]] = {"torch": TorchBackend, "keras": KerasBackend, "paddle": PaddleBackend}
_made: dict[str, Backend] = {}


def _get(name: str) -> Backend:
    """One adapter per framework for the whole module (the framework imports once)."""
    if name not in _made:
        _made[name] = BACKENDS[name]()
    return _made[name]


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return _get(request.param)


# ---- the numpy formulas ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
def test_siamese_loss_matches_contrastive_formula(backend: Backend, distance: str) -> None:
    x = embeddings()
    loss = backend.value(backend.losses.SiameseLoss(distance=distance, margin=1.5), x, CLASS_LABELS)
    assert loss == pytest.approx(ref.siamese_loss(x, CLASS_LABELS, distance, 1.5), rel=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("pos", "neg"), [("all", "all"), ("all", "semihard"), ("hard", "hard"), ("all", "easy")])
def test_triplet_loss_matches_margin_formula_on_mined_triplets(backend: Backend, distance: str, pos: str,
                                                               neg: str) -> None:
    x = embeddings()
    margin = {"cosine": 0.2, "euclidean": 0.5, "sqeuclidean": 1.0}[distance]
    triplets = ref.mine_triplets(CLASS_LABELS, ref.distance_matrix(x, distance), pos, neg, margin)
    assert triplets, "the example must mine something"
    loss = backend.losses.TripletLoss(distance=distance, margin=margin, miner=TripletMiner(pos, neg, margin))
    assert backend.value(loss, x, CLASS_LABELS) == pytest.approx(ref.triplet_loss(x, triplets, distance, margin),
                                                                 rel=1e-5)


def test_triplet_loss_defaults_to_semihard_negatives_with_its_margin(backend: Backend) -> None:
    loss = backend.losses.TripletLoss(margin=0.3)
    assert isinstance(loss.miner, TripletMiner)
    assert (loss.miner.pos_strategy, loss.miner.neg_strategy, loss.miner.margin) == ("all", "semihard", 0.3)
    assert repr(loss).startswith("TripletLoss(distance='cosine', margin=0.3")


def test_triplet_loss_on_session_rows_uses_each_sessions_query(backend: Backend) -> None:
    x = embeddings(7)
    loss = backend.value(backend.losses.TripletLoss(miner=TripletMiner("all", "all")), x, SESSIONS[:7])
    assert loss == pytest.approx(ref.triplet_loss(x, {(0, 1, 2), (0, 3, 2), (4, 5, 6)}, "cosine", 0.2), rel=1e-5)


def test_loss_is_zero_with_gradient_when_nothing_is_mined(backend: Backend) -> None:
    value, grad, _ = backend.value_and_grads(backend.losses.TripletLoss(), embeddings(4), np.arange(4))
    assert value == 0.0 and grad is not None and not np.any(grad)


@pytest.mark.parametrize("labels", [CLASS_LABELS, SESSIONS], ids=["class", "session"])
def test_multiple_negatives_ranking_loss_matches_info_nce(backend: Backend, labels: np.ndarray) -> None:
    x = embeddings(len(labels))
    loss = backend.value(backend.losses.MultipleNegativesRankingLoss(scale=20.0), x, labels)
    assert loss == pytest.approx(ref.multiple_negatives_ranking_loss(x, labels, 20.0), rel=1e-5)


def test_multiple_negatives_ranking_loss_on_triplets_is_the_sentence_transformers_formula(backend: Backend) -> None:
    """Pair/triplet batches (rows anchor, positive, negative per example): for anchor i, cross-entropy of
    ``20 * cos(a_i, [p_1..p_B, n_1..n_B])`` with target p_i, as sentence-transformers' MNRL computes it."""
    rows = np.array([(s, role) for s in range(4) for role in (0, 1, -1)])
    x = embeddings(len(rows), dim=8, seed=5)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    anchors, candidates = unit[rows[:, 1] == 0], np.concatenate([unit[rows[:, 1] == 1], unit[rows[:, 1] == -1]])
    logits = 20.0 * anchors @ candidates.T
    logits -= logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(logits).sum(axis=1)) - np.diag(logits[:, :4]))
    loss = backend.value(backend.losses.MultipleNegativesRankingLoss(), x, rows)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_ntxent_loss_matches_simclr_formula(backend: Backend) -> None:
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3])  # two views per item
    x = embeddings(8)
    loss = backend.value(backend.losses.NTXentLoss(temperature=0.1), x, ids)
    assert loss == pytest.approx(ref.ntxent_loss(x, ids, 0.1), rel=1e-5)


@pytest.mark.parametrize(("name", "reference", "margin"), [("ArcFaceLoss", ref.arcface_loss, 0.5),
                                                           ("CosFaceLoss", ref.cosface_loss, 0.35)])
def test_class_centre_losses_match_their_formula(backend: Backend, name: str, reference, margin: float) -> None:  # noqa: ANN001
    x = embeddings()
    loss = getattr(backend.losses, name)(num_classes=5, embedding_dim=6, margin=margin, scale=16.0, seed=3)
    weight = initial_class_weight(5, 6, seed=3)
    np.testing.assert_array_equal(backend.weight(loss), weight)
    assert backend.trainable(loss) == 1
    expected = reference(x, CLASS_LABELS, weight, margin, 16.0)
    assert backend.value(loss, x, CLASS_LABELS) == pytest.approx(expected, rel=1e-5)


def test_arcface_target_logit_stays_monotonic_past_pi_and_finite_at_theta_zero(backend: Backend) -> None:
    loss = backend.losses.ArcFaceLoss(num_classes=2, embedding_dim=2, margin=0.5, scale=4.0)
    backend.set_weight(loss, np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    x = np.array([[-1.0, 0.0], [0.0, 3.0]], np.float32)  # theta = pi for class 0, theta = 0 for class 1
    labels = np.array([0, 1])
    value, grad, weight_grad = backend.value_and_grads(loss, x, labels)
    assert value == pytest.approx(ref.arcface_loss(x, labels, backend.weight(loss), 0.5, 4.0), rel=1e-5)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(weight_grad))


def test_invalid_arguments_say_what_is_allowed(backend: Backend) -> None:
    losses = backend.losses
    with pytest.raises(ValueError, match="cosine"):
        losses.SiameseLoss(distance="manhattan")
    with pytest.raises(TypeError, match="PairMiner"):
        losses.SiameseLoss(miner=TripletMiner())
    with pytest.raises(ValueError, match="temperature"):
        losses.NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="num_classes"):
        backend.value(losses.CosFaceLoss(num_classes=3, embedding_dim=6), embeddings(), CLASS_LABELS)


# ---- cross-backend parity (invariant 4): same embeddings, class weights and batch -> same value and gradients --
BOTH, CLASS = ("class", "session"), ("class",)
PARITY = [  # (loss, options, label kinds); every case mines something, so equal values and gradients say something
    *[("SiameseLoss", {"distance": d}, BOTH) for d in DISTANCES],
    ("SiameseLoss", {"distance": "euclidean", "margin": 2.0}, BOTH),
    ("SiameseLoss", {"distance": "sqeuclidean", "miner": PairMiner("hard", "hard")}, BOTH),
    *[("TripletLoss", {"distance": d, "margin": 0.5, "miner": TripletMiner("all", "all", 0.5)}, BOTH)
      for d in DISTANCES],
    ("TripletLoss", {}, BOTH),
    ("TripletLoss", {"distance": "euclidean", "miner": TripletMiner("all", "hard")}, BOTH),
    ("TripletLoss", {"distance": "sqeuclidean", "margin": 1.0, "miner": TripletMiner("hard", "semihard", 1.0)}, CLASS),
    ("MultipleNegativesRankingLoss", {"scale": 20.0}, BOTH),
    ("NTXentLoss", {"temperature": 0.1}, CLASS),
    ("ArcFaceLoss", {"num_classes": 4, "embedding_dim": 6, "scale": 16.0, "seed": 2}, CLASS),
    ("CosFaceLoss", {"num_classes": 4, "embedding_dim": 6, "scale": 30.0, "seed": 1}, CLASS),
]
LABELS = {"class": CLASS_LABELS, "session": SESSIONS}
PARITY_CASES = [pytest.param(name, options, LABELS[kind], id=f"{name}-{i}-{kind}")
                for i, (name, options, kinds) in enumerate(PARITY) for kind in kinds]


@pytest.mark.parametrize("name", ["keras", "paddle"])
@pytest.mark.parametrize(("loss_name", "options", "labels"), PARITY_CASES)
def test_backend_and_pytorch_give_the_same_loss_and_gradients(name: str, loss_name: str, options: dict,
                                                              labels: np.ndarray) -> None:
    mine, theirs = _get(name), _get("torch")
    x = embeddings(len(labels), seed=2)
    my_loss, their_loss = getattr(mine.losses, loss_name)(**options), getattr(theirs.losses, loss_name)(**options)
    if hasattr(their_loss, "weight"):
        np.testing.assert_array_equal(mine.weight(my_loss), theirs.weight(their_loss))
    my_value, my_grad, my_weight_grad = mine.value_and_grads(my_loss, x, labels)
    their_value, their_grad, their_weight_grad = theirs.value_and_grads(their_loss, x, labels)
    assert their_value > 0
    assert my_value == pytest.approx(their_value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(my_grad, their_grad, rtol=1e-4, atol=1e-6)
    if their_weight_grad is not None:
        np.testing.assert_allclose(my_weight_grad, their_weight_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["keras", "paddle"])
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("pos", STRATEGIES)
def test_backend_and_pytorch_mine_the_same_pairs_and_triplets(name: str, distance: str, pos: str) -> None:
    x = embeddings(16, seed=5)
    labels = np.repeat(np.arange(4), 4)
    mine, theirs = _get(name).distance(x, distance), _get("torch").distance(x, distance)
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    for neg in STRATEGIES:
        for miner in (TripletMiner(pos, neg, margin=0.3), PairMiner(pos, neg, margin=0.3)):
            for a, b in zip(miner(labels, mine), miner(labels, theirs)):
                np.testing.assert_array_equal(a, b)


# ---- training on real data -------------------------------------------------------------------------------------
TRAINING = [
    ("SiameseLoss", {}, None),
    ("TripletLoss", {"miner": TripletMiner("all", "all")}, None),
    ("TripletLoss", {"distance": "euclidean", "margin": 1.0, "miner": TripletMiner("all", "all", margin=1.0)}, None),
    ("MultipleNegativesRankingLoss", {}, None),
    ("NTXentLoss", {}, None),
    ("ArcFaceLoss", {"num_classes": 10, "embedding_dim": 16, "scale": 16.0}, None),
    ("CosFaceLoss", {"num_classes": 10, "embedding_dim": 16, "scale": 16.0}, None),
    # the mean over the hardest pairs need not fall while they get fewer: watch the all-pairs objective
    ("SiameseLoss", {"distance": "sqeuclidean", "miner": PairMiner("hard", "hard")}, {"distance": "sqeuclidean"}),
]


@pytest.mark.parametrize(("name", "options", "probe"), TRAINING,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(TRAINING)])
def test_loss_decreases_when_training_a_small_mlp_on_digits(backend: Backend, name: str, options: dict,
                                                            probe: dict | None) -> None:
    x, y = digits_batch()
    loss_fn = getattr(backend.losses, name)(**options)
    measure = loss_fn if probe is None else getattr(backend.losses, name)(**probe)
    losses = backend.train(loss_fn, measure, x, y, steps=15)
    assert losses[-1] < 0.8 * losses[0], losses
