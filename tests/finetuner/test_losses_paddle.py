"""Paddle losses equal their numpy formulas (tests/loss_reference.py), equal the PyTorch losses (values, gradients,
mined pairs/triplets) on the same embeddings and class weights, and train a small model on real data."""

from __future__ import annotations

import loss_reference as ref
import numpy as np
import pytest
from sklearn.datasets import load_digits

from finetuner.tuner.losses import initial_class_weight
from finetuner.tuner.miners import PairMiner, TripletMiner
from tailor_ir.imports import import_paddle, import_torch

paddle = import_paddle()
torch = import_torch()
from finetuner.tuner.paddle import losses as pd_losses  # noqa: E402
from finetuner.tuner.paddle.losses import (  # noqa: E402
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
)
from finetuner.tuner.pytorch import losses as torch_losses  # noqa: E402

torch.set_num_threads(1)
DISTANCES = ["cosine", "euclidean", "sqeuclidean"]
CLASS_LABELS = np.repeat(np.arange(4), 3)
SESSIONS = np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1], [9, -1]])


def embeddings(n: int = 12, dim: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 100).normal(size=(n, dim)).astype(np.float32)


def tensor(x: np.ndarray, grad: bool = False):
    return paddle.to_tensor(x, stop_gradient=not grad)


# ---- numpy formulas -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("distance", DISTANCES)
def test_siamese_loss_matches_contrastive_formula(distance: str) -> None:
    x = embeddings()
    loss = SiameseLoss(distance=distance, margin=1.5)(tensor(x), CLASS_LABELS)
    assert float(loss) == pytest.approx(ref.siamese_loss(x, CLASS_LABELS, distance, 1.5), rel=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(("pos", "neg"), [("all", "all"), ("all", "semihard"), ("hard", "hard"), ("all", "easy")])
def test_triplet_loss_matches_margin_formula_on_mined_triplets(distance: str, pos: str, neg: str) -> None:
    x = embeddings()
    margin = {"cosine": 0.2, "euclidean": 0.5, "sqeuclidean": 1.0}[distance]
    triplets = ref.mine_triplets(CLASS_LABELS, ref.distance_matrix(x, distance), pos, neg, margin)
    assert triplets, "the example must mine something"
    loss = TripletLoss(distance=distance, margin=margin, miner=TripletMiner(pos, neg, margin))(tensor(x), CLASS_LABELS)
    assert float(loss) == pytest.approx(ref.triplet_loss(x, triplets, distance, margin), rel=1e-5)


def test_triplet_loss_on_session_rows_uses_each_sessions_query() -> None:
    x = embeddings(7)
    loss = TripletLoss(miner=TripletMiner("all", "all"))(tensor(x), SESSIONS[:7])
    expected = ref.triplet_loss(x, {(0, 1, 2), (0, 3, 2), (4, 5, 6)}, "cosine", 0.2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_loss_is_zero_with_gradient_when_nothing_is_mined() -> None:
    x = tensor(embeddings(4), grad=True)
    loss = TripletLoss()(x, np.arange(4))
    loss.backward()
    assert float(loss) == 0.0 and x.grad is not None and not np.any(x.grad.numpy())


@pytest.mark.parametrize("labels", [CLASS_LABELS, SESSIONS])
def test_multiple_negatives_ranking_loss_matches_info_nce(labels: np.ndarray) -> None:
    x = embeddings(len(labels))
    loss = MultipleNegativesRankingLoss(scale=20.0)(tensor(x), labels)
    assert float(loss) == pytest.approx(ref.multiple_negatives_ranking_loss(x, labels, 20.0), rel=1e-5)


def test_ntxent_loss_matches_simclr_formula() -> None:
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    x = embeddings(8)
    assert float(NTXentLoss(temperature=0.1)(tensor(x), ids)) == pytest.approx(ref.ntxent_loss(x, ids, 0.1), rel=1e-5)


@pytest.mark.parametrize(
    ("cls", "reference", "margin"), [(ArcFaceLoss, ref.arcface_loss, 0.5), (CosFaceLoss, ref.cosface_loss, 0.35)]
)
def test_class_centre_losses_match_their_formula(cls, reference, margin: float) -> None:
    x = embeddings()
    loss = cls(num_classes=5, embedding_dim=6, margin=margin, scale=16.0, seed=3)
    weight = initial_class_weight(5, 6, seed=3)
    np.testing.assert_array_equal(loss.weight.numpy(), weight)
    assert not loss.weight.stop_gradient and len(loss.parameters()) == 1
    assert float(loss(tensor(x), CLASS_LABELS)) == pytest.approx(
        reference(x, CLASS_LABELS, weight, margin, 16.0), rel=1e-5)


def test_arcface_target_logit_stays_monotonic_past_pi_and_finite_at_theta_zero() -> None:
    loss = ArcFaceLoss(num_classes=2, embedding_dim=2, margin=0.5, scale=4.0)
    loss.weight.set_value(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    x = np.array([[-1.0, 0.0], [0.0, 3.0]], np.float32)  # theta = pi for class 0, theta = 0 for class 1
    labels = np.array([0, 1])
    xt = tensor(x, grad=True)
    value = loss(xt, labels)
    value.backward()
    assert float(value) == pytest.approx(ref.arcface_loss(x, labels, loss.weight.numpy(), 0.5, 4.0), rel=1e-5)
    assert np.all(np.isfinite(xt.grad.numpy())) and np.all(np.isfinite(loss.weight.grad.numpy()))


def test_invalid_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="cosine"):
        SiameseLoss(distance="manhattan")
    with pytest.raises(TypeError, match="PairMiner"):
        SiameseLoss(miner=TripletMiner())
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
    with pytest.raises(ValueError, match="num_classes"):
        CosFaceLoss(num_classes=3, embedding_dim=6)(tensor(embeddings()), CLASS_LABELS)
    assert repr(TripletLoss(margin=0.3)).startswith("TripletLoss(distance='cosine', margin=0.3")


# ---- cross-backend parity: same embeddings, class weights and batch -> same value, gradient and selection --------
PARITY_CASES = [
    *[("SiameseLoss", {"distance": d}) for d in DISTANCES],
    ("SiameseLoss", {"distance": "euclidean", "miner": PairMiner("hard", "hard")}),
    *[("TripletLoss", {"distance": d, "margin": 0.5, "miner": TripletMiner("all", "all", 0.5)}) for d in DISTANCES],
    ("TripletLoss", {}),
    ("TripletLoss", {"distance": "euclidean", "miner": TripletMiner("semihard", "hard")}),
    ("MultipleNegativesRankingLoss", {"scale": 20.0}),
    ("NTXentLoss", {"temperature": 0.1}),
    ("ArcFaceLoss", {"num_classes": 4, "embedding_dim": 6, "scale": 16.0, "seed": 2}),
    ("CosFaceLoss", {"num_classes": 4, "embedding_dim": 6, "scale": 16.0, "seed": 2}),
]


@pytest.mark.parametrize(("name", "options"), PARITY_CASES, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("labels", [CLASS_LABELS, SESSIONS], ids=["class", "session"])
def test_paddle_and_pytorch_give_the_same_loss_and_gradient(name: str, options: dict, labels: np.ndarray) -> None:
    if name in ("ArcFaceLoss", "CosFaceLoss", "NTXentLoss") and labels.ndim == 2:
        pytest.skip(f"{name} takes class or instance ids")
    x = embeddings(len(labels), seed=len(labels))
    pd_loss, th_loss = getattr(pd_losses, name)(**options), getattr(torch_losses, name)(**options)
    xp, xt = tensor(x, grad=True), torch.tensor(x, requires_grad=True)
    value_pd, value_th = pd_loss(xp, labels), th_loss(xt, labels)
    value_pd.backward()
    value_th.backward()
    assert float(value_pd) == pytest.approx(float(value_th.detach()), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(xp.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    if hasattr(th_loss, "weight"):
        np.testing.assert_allclose(pd_loss.weight.grad.numpy(), th_loss.weight.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("pos", ["all", "easy", "semihard", "hard"])
@pytest.mark.parametrize("neg", ["all", "easy", "semihard", "hard"])
def test_both_backends_mine_the_same_pairs_and_triplets(distance: str, pos: str, neg: str) -> None:
    x = embeddings(16, seed=5)
    labels = np.repeat(np.arange(4), 4)
    d_pd = pd_losses.pairwise_distance(tensor(x), distance).numpy()
    d_th = torch_losses.pairwise_distance(torch.tensor(x), distance).numpy()
    np.testing.assert_allclose(d_pd, d_th, rtol=1e-5, atol=1e-6)
    for miner in (TripletMiner(pos, neg, margin=0.3), PairMiner(pos, neg, margin=0.3)):
        for a, b in zip(miner(labels, d_pd), miner(labels, d_th)):
            np.testing.assert_array_equal(a, b)


# ---- training ------------------------------------------------------------------------------------------------
def digits_batch(per_class: int = 8) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return (x[rows] / 16.0).astype(np.float32), y[rows]


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: SiameseLoss(),
        lambda: TripletLoss(miner=TripletMiner("all", "all")),
        lambda: TripletLoss(distance="euclidean", margin=1.0, miner=TripletMiner("all", "all", margin=1.0)),
        lambda: MultipleNegativesRankingLoss(),
        lambda: NTXentLoss(),
        lambda: ArcFaceLoss(num_classes=10, embedding_dim=16, scale=16.0),
        lambda: CosFaceLoss(num_classes=10, embedding_dim=16, scale=16.0),
        lambda: SiameseLoss(distance="sqeuclidean", miner=PairMiner("hard", "hard")),
    ],
)
def test_loss_decreases_when_training_a_small_mlp_on_digits(make_loss) -> None:
    x, y = digits_batch()
    model = paddle.nn.Sequential(paddle.nn.Linear(64, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 16))
    torch.manual_seed(0)  # start from the PyTorch loss test's weights (paddle's default init differs)
    reference = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    for mine, theirs in ((model[0], reference[0]), (model[2], reference[2])):
        mine.weight.set_value(theirs.weight.detach().numpy().T.copy())
        mine.bias.set_value(theirs.bias.detach().numpy())
    loss_fn = make_loss()
    optimizer = paddle.optimizer.Adam(learning_rate=5e-3, parameters=[*model.parameters(), *loss_fn.parameters()])
    inputs = tensor(x)
    losses = []
    for _ in range(15):
        loss = loss_fn(model(inputs), y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses
