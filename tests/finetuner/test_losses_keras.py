"""Keras losses equal their numpy formulas (tests/loss_reference.py), equal the PyTorch losses on the same
embeddings, weights and batch (invariant 4: within 1e-5), mine the same pairs/triplets, work inside
``tf.function``, and train a small model on real data."""

from __future__ import annotations

import loss_reference as ref
import numpy as np
import pytest
from sklearn.datasets import load_digits

from finetuner.tuner.keras.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
    pairwise_distance,
)
from finetuner.tuner.losses import initial_class_weight
from finetuner.tuner.miners import PairMiner, TripletMiner
from tailor_ir.imports import import_keras, import_tensorflow, import_torch

tf = import_tensorflow()
keras = import_keras()
torch = import_torch()
torch_losses = pytest.importorskip("finetuner.tuner.pytorch.losses")
torch.set_num_threads(1)

DISTANCES = ["cosine", "euclidean", "sqeuclidean"]
CLASS_LABELS = np.repeat(np.arange(4), 3)
SESSIONS = np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1], [9, -1]])


def embeddings(n: int = 12, dim: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def value(loss, x: np.ndarray, labels: np.ndarray) -> float:
    return float(loss(tf.constant(x), labels))


# ---- the numpy formulas ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
def test_siamese_loss_matches_contrastive_formula(distance: str) -> None:
    x = embeddings()
    loss = value(SiameseLoss(distance=distance, margin=1.5), x, CLASS_LABELS)
    assert loss == pytest.approx(ref.siamese_loss(x, CLASS_LABELS, distance, 1.5), rel=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("pos", "neg"), [("all", "all"), ("all", "semihard"), ("hard", "hard"), ("all", "easy")])
def test_triplet_loss_matches_margin_formula_on_mined_triplets(distance: str, pos: str, neg: str) -> None:
    x = embeddings()
    margin = {"cosine": 0.2, "euclidean": 0.5, "sqeuclidean": 1.0}[distance]
    triplets = ref.mine_triplets(CLASS_LABELS, ref.distance_matrix(x, distance), pos, neg, margin)
    assert triplets, "the example must mine something"
    loss = TripletLoss(distance=distance, margin=margin, miner=TripletMiner(pos, neg, margin))
    assert value(loss, x, CLASS_LABELS) == pytest.approx(ref.triplet_loss(x, triplets, distance, margin), rel=1e-5)


def test_triplet_loss_on_session_rows_uses_each_sessions_query() -> None:
    x = embeddings(7)
    loss = value(TripletLoss(miner=TripletMiner("all", "all")), x, SESSIONS[:7])
    assert loss == pytest.approx(ref.triplet_loss(x, {(0, 1, 2), (0, 3, 2), (4, 5, 6)}, "cosine", 0.2), rel=1e-5)


def test_loss_is_zero_with_gradient_when_nothing_is_mined() -> None:
    x = tf.Variable(embeddings(4))
    with tf.GradientTape() as tape:
        loss = TripletLoss()(x, np.arange(4))
    grad = tf.convert_to_tensor(tape.gradient(loss, x))
    assert float(loss) == 0.0 and grad is not None and not np.any(grad.numpy())


@pytest.mark.parametrize("labels", [CLASS_LABELS, SESSIONS])
def test_multiple_negatives_ranking_loss_matches_info_nce(labels: np.ndarray) -> None:
    x = embeddings(len(labels))
    loss = value(MultipleNegativesRankingLoss(scale=20.0), x, labels)
    assert loss == pytest.approx(ref.multiple_negatives_ranking_loss(x, labels, 20.0), rel=1e-5)


def test_ntxent_loss_matches_simclr_formula() -> None:
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    x = embeddings(8)
    assert value(NTXentLoss(temperature=0.1), x, ids) == pytest.approx(ref.ntxent_loss(x, ids, 0.1), rel=1e-5)


@pytest.mark.parametrize(("cls", "reference", "margin"), [(ArcFaceLoss, ref.arcface_loss, 0.5),
                                                          (CosFaceLoss, ref.cosface_loss, 0.35)])
def test_class_centre_losses_match_their_formula(cls, reference, margin: float) -> None:
    x = embeddings()
    loss = cls(num_classes=5, embedding_dim=6, margin=margin, scale=16.0, seed=3)
    weight = initial_class_weight(5, 6, seed=3)
    np.testing.assert_array_equal(loss.weight.numpy(), weight)
    assert [v.path for v in loss.trainable_variables] == [loss.weight.path]
    assert value(loss, x, CLASS_LABELS) == pytest.approx(reference(x, CLASS_LABELS, weight, margin, 16.0), rel=1e-5)


def test_arcface_target_logit_stays_monotonic_past_pi() -> None:
    loss = ArcFaceLoss(num_classes=2, embedding_dim=2, margin=0.5, scale=4.0)
    loss.weight.assign([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[-1.0, 0.0]], dtype=np.float32)
    expected = ref.arcface_loss(x, np.array([0]), loss.weight.numpy(), 0.5, 4.0)
    assert value(loss, x, np.array([0])) == pytest.approx(expected, rel=1e-5)


def test_class_centre_loss_rejects_out_of_range_labels() -> None:
    loss = CosFaceLoss(num_classes=3, embedding_dim=6)
    with pytest.raises(ValueError, match="num_classes"):
        loss(embeddings(), CLASS_LABELS)
    with pytest.raises(ValueError, match="num_classes"):
        loss.validate_labels(CLASS_LABELS)


def test_invalid_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="cosine"):
        SiameseLoss(distance="manhattan")
    with pytest.raises(TypeError, match="PairMiner"):
        SiameseLoss(miner=TripletMiner())
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
    assert repr(TripletLoss(margin=0.3)).startswith("TripletLoss(distance='cosine', margin=0.3")


# ---- cross-backend parity (invariant 4) -------------------------------------------------------------------------
PARITY = [
    ("SiameseLoss", {"distance": "cosine"}, CLASS_LABELS),
    ("SiameseLoss", {"distance": "euclidean", "margin": 2.0}, CLASS_LABELS),
    ("SiameseLoss", {"distance": "sqeuclidean", "miner": PairMiner("hard", "hard")}, CLASS_LABELS),
    ("TripletLoss", {}, CLASS_LABELS),
    ("TripletLoss", {"distance": "euclidean", "margin": 0.5, "miner": TripletMiner("all", "all", 0.5)}, CLASS_LABELS),
    ("TripletLoss", {"distance": "sqeuclidean", "margin": 1.0, "miner": TripletMiner("hard", "semihard", 1.0)},
     CLASS_LABELS),
    ("TripletLoss", {"miner": TripletMiner("all", "all")}, SESSIONS),
    ("MultipleNegativesRankingLoss", {}, CLASS_LABELS),
    ("MultipleNegativesRankingLoss", {"scale": 10.0}, SESSIONS),
    ("NTXentLoss", {}, np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])),
    ("ArcFaceLoss", {"num_classes": 4, "embedding_dim": 6, "seed": 1}, CLASS_LABELS),
    ("CosFaceLoss", {"num_classes": 4, "embedding_dim": 6, "scale": 30.0}, CLASS_LABELS),
]


@pytest.mark.parametrize(("name", "kwargs", "labels"), PARITY, ids=[f"{p[0]}-{i}" for i, p in enumerate(PARITY)])
def test_keras_and_pytorch_losses_and_gradients_agree(name: str, kwargs: dict, labels: np.ndarray) -> None:
    import finetuner.tuner.keras.losses as keras_losses

    x = embeddings(len(labels), seed=len(name))
    k_loss, t_loss = getattr(keras_losses, name)(**kwargs), getattr(torch_losses, name)(**kwargs)
    if hasattr(k_loss, "weight"):
        np.testing.assert_array_equal(k_loss.weight.numpy(), t_loss.weight.detach().numpy())
    kx = tf.Variable(x)
    with tf.GradientTape() as tape:
        k_value = k_loss(kx, labels)
    k_grad = tf.convert_to_tensor(tape.gradient(k_value, kx)).numpy()
    tx = torch.tensor(x, requires_grad=True)
    t_value = t_loss(tx, labels)
    t_value.backward()
    t_value = float(t_value.detach())
    assert t_value > 0
    assert abs(float(k_value) - t_value) <= 1e-5 * max(1.0, abs(t_value))
    np.testing.assert_allclose(k_grad, tx.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", [TripletMiner("all", "semihard", 0.3), TripletMiner("hard", "hard"),
                                   PairMiner("hard", "easy", 0.5), PairMiner("semihard", "hard", 0.5)])
def test_both_backends_mine_the_same_selection(distance: str, miner) -> None:
    x = embeddings(16, seed=5)
    labels = np.repeat(np.arange(4), 4)
    k_dist = pairwise_distance(tf.constant(x), distance).numpy()
    t_dist = torch_losses.pairwise_distance(torch.tensor(x), distance).numpy()
    np.testing.assert_allclose(k_dist, t_dist, rtol=1e-5, atol=1e-6)
    k_sel, t_sel = miner(labels, k_dist), miner(labels, t_dist)
    assert len(k_sel[0]) > 0
    for k, t in zip(k_sel, t_sel):
        np.testing.assert_array_equal(k, t)


@pytest.mark.parametrize("make_loss", [lambda: TripletLoss(miner=TripletMiner("all", "hard")),
                                       lambda: SiameseLoss(),
                                       lambda: MultipleNegativesRankingLoss(),
                                       lambda: ArcFaceLoss(num_classes=4, embedding_dim=6)])
def test_compiled_loss_equals_eager_loss(make_loss) -> None:
    x, loss = embeddings(), make_loss()
    compiled = tf.function(lambda e, y: loss(e, y), reduce_retracing=True)
    for n in (12, 9):
        eager = float(loss(tf.constant(x[:n]), CLASS_LABELS[:n]))
        assert float(compiled(tf.constant(x[:n]), tf.constant(CLASS_LABELS[:n]))) == pytest.approx(eager, rel=1e-6)


# ---- training on real data -------------------------------------------------------------------------------------
def digits_batch(per_class: int = 8) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return (x[rows] / 16.0).astype(np.float32), y[rows]


@pytest.mark.parametrize(
    ("make_loss", "probe"),
    [
        (lambda: SiameseLoss(), None),
        (lambda: TripletLoss(miner=TripletMiner("all", "all")), None),
        (lambda: TripletLoss(distance="euclidean", margin=1.0, miner=TripletMiner("all", "all", margin=1.0)), None),
        (lambda: MultipleNegativesRankingLoss(), None),
        (lambda: NTXentLoss(), None),
        (lambda: ArcFaceLoss(num_classes=10, embedding_dim=16, scale=16.0), None),
        (lambda: CosFaceLoss(num_classes=10, embedding_dim=16, scale=16.0), None),
        # the mean over the hardest pairs need not fall while they get fewer: watch the all-pairs objective
        (lambda: SiameseLoss(distance="sqeuclidean", miner=PairMiner("hard", "hard")),
         lambda: SiameseLoss(distance="sqeuclidean")),
    ],
)
def test_loss_decreases_when_training_a_small_mlp_on_digits(make_loss, probe) -> None:
    keras.utils.set_random_seed(0)
    x, y = digits_batch()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16)])
    loss_fn = make_loss()
    measure = loss_fn if probe is None else probe()
    variables = [*model.trainable_variables, *loss_fn.trainable_variables]
    optimizer = keras.optimizers.Adam(5e-3)

    def step(inputs, labels):  # eager: the compiled path is tested above, tracing would dominate here
        with tf.GradientTape() as tape:
            loss = loss_fn(model(inputs, training=True), labels)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return measure(model(inputs, training=False), labels)

    losses = [float(step(tf.constant(x), tf.constant(y))) for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0], losses
