"""PyTorch losses equal their numpy formulas (tests/loss_reference.py) and train a small model on real data."""

from __future__ import annotations

import loss_reference as ref
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from finetuner.tuner.losses import initial_class_weight
from finetuner.tuner.miners import PairMiner, TripletMiner
from finetuner.tuner.pytorch.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SiameseLoss,
    TripletLoss,
)

torch.set_num_threads(1)
DISTANCES = ["cosine", "euclidean", "sqeuclidean"]
CLASS_LABELS = np.repeat(np.arange(4), 3)


def embeddings(n: int = 12, dim: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(n, dim)), dtype=torch.float32)


@pytest.mark.parametrize("distance", DISTANCES)
def test_siamese_loss_matches_contrastive_formula(distance: str) -> None:
    x = embeddings()
    loss = SiameseLoss(distance=distance, margin=1.5)(x, CLASS_LABELS)
    assert loss.item() == pytest.approx(ref.siamese_loss(x.numpy(), CLASS_LABELS, distance, 1.5), rel=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize(
    ("pos", "neg"), [("all", "all"), ("all", "semihard"), ("hard", "hard"), ("all", "easy")]
)
def test_triplet_loss_matches_margin_formula_on_mined_triplets(distance: str, pos: str, neg: str) -> None:
    x = embeddings()
    margin = {"cosine": 0.2, "euclidean": 0.5, "sqeuclidean": 1.0}[distance]
    triplets = ref.mine_triplets(CLASS_LABELS, ref.distance_matrix(x.numpy(), distance), pos, neg, margin)
    assert triplets, "the example must mine something"
    loss = TripletLoss(distance=distance, margin=margin, miner=TripletMiner(pos, neg, margin))(
        x, CLASS_LABELS
    )
    assert loss.item() == pytest.approx(ref.triplet_loss(x.numpy(), triplets, distance, margin), rel=1e-5)


def test_triplet_loss_defaults_to_semihard_negatives_with_its_margin() -> None:
    loss = TripletLoss(margin=0.3)
    assert isinstance(loss.miner, TripletMiner)
    assert (loss.miner.pos_strategy, loss.miner.neg_strategy, loss.miner.margin) == ("all", "semihard", 0.3)


def test_triplet_loss_on_session_rows_uses_each_sessions_query() -> None:
    sessions = np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1]])
    x = embeddings(7)
    loss = TripletLoss(miner=TripletMiner("all", "all"))(x, sessions)
    expected = ref.triplet_loss(x.numpy(), {(0, 1, 2), (0, 3, 2), (4, 5, 6)}, "cosine", 0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_loss_is_zero_with_gradient_when_nothing_is_mined() -> None:
    x = embeddings(4).requires_grad_()
    loss = TripletLoss()(x, np.arange(4))
    loss.backward()
    assert loss.item() == 0.0 and x.grad is not None and torch.all(x.grad == 0)


@pytest.mark.parametrize(
    "labels", [CLASS_LABELS, np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1], [9, -1]])]
)
def test_multiple_negatives_ranking_loss_matches_info_nce(labels: np.ndarray) -> None:
    x = embeddings(len(labels))
    loss = MultipleNegativesRankingLoss(scale=20.0)(x, labels)
    assert loss.item() == pytest.approx(
        ref.multiple_negatives_ranking_loss(x.numpy(), labels, 20.0), rel=1e-5
    )


def test_ntxent_loss_matches_simclr_formula() -> None:
    ids = np.array([0, 1, 2, 3, 0, 1, 2, 3])  # two views per item
    x = embeddings(8)
    assert NTXentLoss(temperature=0.1)(x, ids).item() == pytest.approx(
        ref.ntxent_loss(x.numpy(), ids, 0.1), rel=1e-5
    )


@pytest.mark.parametrize(
    ("cls", "reference", "margin"),
    [(ArcFaceLoss, ref.arcface_loss, 0.5), (CosFaceLoss, ref.cosface_loss, 0.35)],
)
def test_class_centre_losses_match_their_formula(cls, reference, margin: float) -> None:
    x = embeddings()
    loss = cls(num_classes=5, embedding_dim=6, margin=margin, scale=16.0, seed=3)
    weight = initial_class_weight(5, 6, seed=3)
    np.testing.assert_array_equal(loss.weight.detach().numpy(), weight)
    assert loss(x, CLASS_LABELS).item() == pytest.approx(
        reference(x.numpy(), CLASS_LABELS, weight, margin, 16.0), rel=1e-5
    )


def test_arcface_target_logit_stays_monotonic_past_pi() -> None:
    # one embedding pointing exactly away from its class centre: theta = pi, so theta + m > pi
    loss = ArcFaceLoss(num_classes=2, embedding_dim=2, margin=0.5, scale=4.0)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[-1.0, 0.0]])
    expected = ref.arcface_loss(x.numpy(), np.array([0]), loss.weight.detach().numpy(), 0.5, 4.0)
    assert loss(x, np.array([0])).item() == pytest.approx(expected, rel=1e-5)


def test_class_centre_loss_rejects_out_of_range_labels() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        CosFaceLoss(num_classes=3, embedding_dim=6)(embeddings(), CLASS_LABELS)


def test_invalid_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="cosine"):
        SiameseLoss(distance="manhattan")
    with pytest.raises(TypeError, match="PairMiner"):
        SiameseLoss(miner=TripletMiner())
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)


def digits_batch(per_class: int = 8) -> tuple[torch.Tensor, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    return torch.as_tensor(x[rows] / 16.0, dtype=torch.float32), y[rows]


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
    torch.manual_seed(0)
    x, y = digits_batch()
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    loss_fn = make_loss()
    optimizer = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=5e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
