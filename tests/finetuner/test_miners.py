"""Miners select exactly the pairs/triplets their definitions give, on a hand-built distance matrix."""

from __future__ import annotations

import numpy as np
import pytest

from finetuner.tuner.miners import PairMiner, TripletMiner, relation_masks

# items 0, 1, 2 are class 0; items 3, 4 class 1. No distance lies within 0.01 of a strategy boundary.
LABELS = np.array([0, 0, 0, 1, 1])
D = np.array(
    [
        [0.00, 0.10, 0.50, 0.45, 0.90],
        [0.10, 0.00, 0.35, 0.80, 0.15],
        [0.50, 0.35, 0.00, 0.40, 0.70],
        [0.45, 0.80, 0.40, 0.00, 0.60],
        [0.90, 0.15, 0.70, 0.60, 0.00],
    ]
)
MARGIN = 0.25

ALL_POSITIVES = {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)}
ALL_NEGATIVES = {(a, n) for a in range(5) for n in range(5) if LABELS[a] != LABELS[n]}
POSITIVES = {
    "all": ALL_POSITIVES,
    "hard": {(0, 2), (1, 2), (2, 0), (3, 4), (4, 3)},  # d(a, p) >= nearest negative
    "semihard": {(1, 0), (2, 1)},  # nearest negative - margin < d(a, p) < nearest negative
    "easy": {(0, 1)},  # d(a, p) <= nearest negative - margin
}
PAIR_NEGATIVES = {  # judged against the anchor's farthest positive r
    "all": ALL_NEGATIVES,
    "hard": {(0, 3), (1, 4), (2, 3), (3, 0), (3, 2), (4, 1)},  # d(a, n) <= r
    "semihard": {(2, 4), (3, 1), (4, 2)},  # r < d(a, n) < r + margin
    "easy": {(0, 4), (1, 3), (4, 0)},  # d(a, n) >= r + margin
}
TRIPLETS_BY_NEGATIVE = {  # positive strategy 'all'; negatives judged against d(a, p)
    "hard": {(0, 2, 3), (1, 2, 4), (2, 0, 3), (3, 4, 0), (3, 4, 2), (4, 3, 1)},
    "semihard": {(1, 0, 4), (2, 0, 4), (2, 1, 3), (3, 4, 1), (4, 3, 2)},
    "easy": {(0, 1, 3), (0, 1, 4), (0, 2, 4), (1, 0, 3), (1, 2, 3), (2, 1, 4), (4, 3, 0)},
}
TRIPLETS_BY_NEGATIVE["all"] = set().union(*TRIPLETS_BY_NEGATIVE.values())


def pair_set(result) -> set[tuple[int, int, int]]:
    return {(int(i), int(j), int(t)) for i, j, t in zip(*result)}


def triplet_set(result) -> set[tuple[int, int, int]]:
    return {(int(a), int(p), int(n)) for a, p, n in zip(*result)}


@pytest.mark.parametrize("pos", ["all", "easy", "semihard", "hard"])
@pytest.mark.parametrize("neg", ["all", "easy", "semihard", "hard"])
def test_pair_miner_selects_the_pairs_of_its_strategies(pos: str, neg: str) -> None:
    expected = {(a, p, 1) for a, p in POSITIVES[pos]} | {(a, n, 0) for a, n in PAIR_NEGATIVES[neg]}
    assert pair_set(PairMiner(pos, neg, margin=MARGIN)(LABELS, D)) == expected


@pytest.mark.parametrize("neg", ["all", "easy", "semihard", "hard"])
def test_triplet_miner_negative_strategies_follow_their_definition(neg: str) -> None:
    assert triplet_set(TripletMiner("all", neg, margin=MARGIN)(LABELS, D)) == TRIPLETS_BY_NEGATIVE[neg]


@pytest.mark.parametrize(
    ("pos", "neg", "expected"),
    [
        ("hard", "semihard", {(2, 0, 4), (3, 4, 1), (4, 3, 2)}),
        ("semihard", "all", {(1, 0, 3), (1, 0, 4), (2, 1, 3), (2, 1, 4)}),
        ("easy", "easy", {(0, 1, 3), (0, 1, 4)}),
        ("hard", "hard", {(0, 2, 3), (1, 2, 4), (2, 0, 3), (3, 4, 0), (3, 4, 2), (4, 3, 1)}),
    ],
)
def test_triplet_miner_combines_positive_and_negative_strategies(pos: str, neg: str, expected: set) -> None:
    assert triplet_set(TripletMiner(pos, neg, margin=MARGIN)(LABELS, D)) == expected


def test_triplets_are_sorted_and_int64() -> None:
    a, p, n = TripletMiner("all", "all")(LABELS, D)
    assert a.dtype == p.dtype == n.dtype == np.int64
    assert list(zip(a, p, n)) == sorted(zip(a, p, n))


SESSIONS = np.array([[7, 0], [7, 1], [7, -1], [7, 1], [9, 0], [9, 1], [9, -1]])


def test_session_rows_relate_only_to_their_own_query() -> None:
    d = np.full((7, 7), 0.5)
    assert triplet_set(TripletMiner("all", "all")(SESSIONS, d)) == {(0, 1, 2), (0, 3, 2), (4, 5, 6)}
    assert pair_set(PairMiner("all", "all")(SESSIONS, d)) == {
        (0, 1, 1),
        (0, 2, 0),
        (0, 3, 1),
        (4, 5, 1),
        (4, 6, 0),
    }


def test_in_batch_negatives_add_other_sessions_documents() -> None:
    positive, negative = relation_masks(SESSIONS, in_batch_negatives=True)
    assert set(zip(*np.nonzero(positive))) == {(0, 1), (0, 3), (4, 5)}
    assert set(zip(*np.nonzero(negative))) == {(0, 2), (0, 5), (0, 6), (4, 1), (4, 2), (4, 3), (4, 6)}


def test_instance_ids_make_views_of_one_item_positives() -> None:
    ids = np.array([5, 5, 8, 8, 3])
    positive, negative = relation_masks(ids)
    assert set(zip(*np.nonzero(positive))) == {(0, 1), (1, 0), (2, 3), (3, 2)}
    assert negative[4].sum() == 4 and not negative[0, 1]
    triplets = triplet_set(TripletMiner("all", "all")(ids, np.ones((5, 5))))
    assert {a for a, _, _ in triplets} == {0, 1, 2, 3} and len(triplets) == 4 * 3


def test_batch_without_positives_yields_nothing() -> None:
    result = TripletMiner("hard", "hard")(np.arange(4), np.ones((4, 4)))
    assert all(len(part) == 0 for part in result)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(np.zeros((3, 3)), "shape"), (np.array([[1, 0], [1, 2]]), "type in")],
)
def test_malformed_labels_are_rejected(labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        relation_masks(labels)


def test_unknown_strategy_names_the_choices() -> None:
    with pytest.raises(ValueError, match="semihard"):
        TripletMiner("medium")
