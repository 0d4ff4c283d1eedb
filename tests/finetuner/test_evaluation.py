"""Retrieval metrics against hand-computed values, and nearest-neighbour evaluation on hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from docarray import Document, DocumentArray

from finetuner.evaluation import (
    Evaluator,
    average_precision,
    evaluate_embeddings,
    hit_at_k,
    map_at_r,
    metric_fn,
    ndcg_at_k,
    pairwise_distances,
    precision_at_k,
    r_precision,
    recall_at_k,
    reciprocal_rank,
)

# query 0: relevant at ranks 1 and 3, 3 relevant in all (one never retrieved)
# query 1: relevant at ranks 4 and 5, 2 relevant in all
# query 2: nothing relevant retrieved, 1 relevant in all
REL = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
NUM = np.array([3, 2, 1])


def test_precision_at_k_counts_relevant_in_top_k_over_k():
    np.testing.assert_allclose(precision_at_k(REL, 1), [1, 0, 0])
    np.testing.assert_allclose(precision_at_k(REL, 3), [2 / 3, 0, 0])
    np.testing.assert_allclose(precision_at_k(REL, 5), [0.4, 0.4, 0])
    # ranks beyond the retrieved list count as not relevant
    np.testing.assert_allclose(precision_at_k(REL, 10), [0.2, 0.2, 0])


def test_recall_at_k_divides_by_all_relevant_items():
    np.testing.assert_allclose(recall_at_k(REL, NUM, 3), [2 / 3, 0, 0])
    np.testing.assert_allclose(recall_at_k(REL, NUM, 5), [2 / 3, 1, 0])


def test_hit_at_k():
    np.testing.assert_allclose(hit_at_k(REL, 1), [1, 0, 0])
    np.testing.assert_allclose(hit_at_k(REL, 4), [1, 1, 0])


def test_average_precision_counts_unretrieved_relevant_as_zero():
    # q0: (1/1 + 2/3) / 3 = 5/9; q1: (1/4 + 2/5) / 2 = 0.325
    np.testing.assert_allclose(average_precision(REL, NUM), [5 / 9, 0.325, 0])


def test_map_at_r_only_looks_at_the_top_r():
    # q0: R=3, relevant at 1 and 3 -> (1 + 2/3) / 3; q1: R=2, nothing in the top 2 -> 0
    np.testing.assert_allclose(map_at_r(REL, NUM), [5 / 9, 0, 0])
    # all relevant first -> 1
    np.testing.assert_allclose(map_at_r(np.array([[1, 1, 0]]), np.array([2])), [1.0])


def test_reciprocal_rank():
    np.testing.assert_allclose(reciprocal_rank(REL), [1, 0.25, 0])


def test_ndcg_with_binary_gains():
    # q0 @3: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG(3) = 1 + 1/log2(3) + 1/2 = 2.1309 -> 0.703918
    # q1 @5: DCG = 1/log2(5) + 1/log2(6) = 0.817530; IDCG(2) = 1 + 1/log2(3) = 1.630930 -> 0.501266
    np.testing.assert_allclose(ndcg_at_k(REL, NUM, 3), [0.7039181, 0, 0], atol=1e-6)
    np.testing.assert_allclose(ndcg_at_k(REL, NUM, 5), [0.7039181, 0.5012658, 0], atol=1e-6)
    np.testing.assert_allclose(ndcg_at_k(np.array([[1, 1, 0]]), np.array([2]), 3), [1.0])


def test_r_precision():
    np.testing.assert_allclose(r_precision(REL, NUM), [2 / 3, 0, 0])


def test_metrics_undefined_without_relevant_items_are_nan():
    rel, num = np.array([[0, 0]], dtype=bool), np.array([0])
    assert np.isnan(average_precision(rel, num)[0]) and np.isnan(recall_at_k(rel, num, 2)[0])
    assert precision_at_k(rel, 2)[0] == 0


def test_metric_names_parse_and_unknown_names_fail():
    np.testing.assert_allclose(metric_fn("precision@3")(REL, NUM), [2 / 3, 0, 0])
    np.testing.assert_allclose(metric_fn("MRR")(REL, NUM), [1, 0.25, 0])
    with pytest.raises(ValueError, match="unknown metric"):
        metric_fn("precision@0")
    with pytest.raises(ValueError, match="unknown metric"):
        metric_fn("F1")


# ---- nearest-neighbour evaluation --------------------------------------------------------------------------
ANGLES = np.deg2rad([0, 20, 50, 85, 33])
EMB = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1) * np.array([[1], [2], [0.5], [3], [1]])
LABELS = np.array([0, 0, 1, 1, 0])
# rankings by angle (self excluded): q0 -> 1,4,2,3 [1,1,0,0]   q1 -> 4,0,2,3 [1,1,0,0]
# q2 -> 4,1,3,0 [0,0,1,0] R=1   q3 -> 2,4,1,0 [1,0,0,0] R=1   q4 -> 1,2,0,3 [1,0,1,0] R=2
EXPECTED = {
    "mAP": (1 + 1 + 1 / 3 + 1 + 5 / 6) / 5,
    "mAP@R": (1 + 1 + 0 + 1 + 0.5) / 5,
    "MRR": (1 + 1 + 1 / 3 + 1 + 1) / 5,
    "R-precision": (1 + 1 + 0 + 1 + 0.5) / 5,
    "precision@1": 0.8,
    "hit@2": 0.8,
    "recall@2": (1 + 1 + 0 + 1 + 0.5) / 5,
}


def test_evaluate_embeddings_closed_set_excludes_the_query_itself():
    got = evaluate_embeddings(EMB, LABELS, metrics=list(EXPECTED))
    assert got == pytest.approx(EXPECTED)
    # the same when the index is passed explicitly with exclude_self, in small chunks, or with a limit
    again = evaluate_embeddings(
        EMB, LABELS, EMB, LABELS, metrics=list(EXPECTED), exclude_self=True, chunk_size=2
    )
    assert again == pytest.approx(EXPECTED)
    limited = evaluate_embeddings(EMB, LABELS, metrics=["precision@1", "hit@2"], limit=2)
    assert limited == pytest.approx({"precision@1": 0.8, "hit@2": 0.8})


def test_evaluate_embeddings_against_a_separate_index():
    query = EMB[[0, 3]]
    # index: item 1 (label 0, 20 deg), item 2 (label 1, 50 deg), item 4 (label 0, 33 deg)
    index, index_labels = EMB[[1, 2, 4]], LABELS[[1, 2, 4]]
    got = evaluate_embeddings(query, LABELS[[0, 3]], index, index_labels, metrics=["mAP", "MRR"])
    # q0 -> 1,4,2 [1,1,0] AP 1; q3 -> 2,4,1 [1,0,0] AP 1
    assert got == pytest.approx({"mAP": 1.0, "MRR": 1.0})


def test_euclidean_distance_changes_the_ranking():
    # by euclidean distance the norms matter: q0 (norm 1 at 0 deg) is nearest to item 4 (norm 1 at 33 deg)
    d = pairwise_distances(EMB[:1], EMB, "euclidean")[0]
    assert np.argsort(d)[1] == 4
    got = evaluate_embeddings(EMB, LABELS, metrics=["MRR"], distance="euclidean")
    assert got["MRR"] != pytest.approx(EXPECTED["MRR"])


def test_session_labels_search_matches_of_all_sessions():
    deg = np.deg2rad([0, 10, 5, 90, 80, 60])
    emb = np.stack([np.cos(deg), np.sin(deg)], axis=1)
    # session 0: query 0 deg, positive 10 deg, negative 5 deg; session 1: query 90, positive 80, negative 60
    labels = np.array([[0, 0], [0, 1], [0, -1], [1, 0], [1, 1], [1, -1]])
    got = evaluate_embeddings(emb, labels, metrics=["MRR", "mAP", "mAP@R", "hit@1"])
    # q0 ranks neg5, pos10, neg60, pos80 -> [0,1,0,0]; q1 ranks pos80, neg60, ... -> [1,0,0,0]
    assert got == pytest.approx({"MRR": 0.75, "mAP": 0.75, "mAP@R": 0.5, "hit@1": 0.5})


def test_chunked_and_limited_search_equals_full_search_on_random_data():
    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(300, 8)), rng.integers(0, 7, 300)
    full = evaluate_embeddings(emb, labels, chunk_size=1000)
    chunked = evaluate_embeddings(emb, labels, chunk_size=7)
    assert full == pytest.approx(chunked)
    top = evaluate_embeddings(emb, labels, metrics=["precision@10", "NDCG@10"], limit=10)
    assert top == pytest.approx({k: full[k] for k in top})


def test_evaluate_embeddings_rejects_bad_input():
    with pytest.raises(ValueError, match="no query has a relevant item"):
        evaluate_embeddings(EMB, np.arange(5))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_embeddings(np.full((3, 2), np.nan), np.zeros(3))
    with pytest.raises(ValueError, match="distance"):
        evaluate_embeddings(EMB, LABELS, distance="manhattan")


def test_evaluator_embeds_documents_with_embed_fn():
    docs = DocumentArray(
        Document(tensor=e.astype(np.float32), tags={"finetuner_label": int(y)}) for e, y in zip(EMB, LABELS)
    )
    calls = []

    def embed(contents):
        calls.append(len(contents))
        return contents

    got = Evaluator(docs, embed_fn=embed, metrics=list(EXPECTED), batch_size=2).evaluate()
    assert got == pytest.approx(EXPECTED)
    assert calls == [2, 2, 1]


def test_evaluator_maps_string_labels_consistently_across_query_and_index():
    def doc(i, label):
        return Document(tensor=EMB[i].astype(np.float32), tags={"finetuner_label": label})

    query = DocumentArray([doc(0, "cat"), doc(3, "dog")])
    # the index lists the labels in another order, so per-set numbering would disagree
    index = DocumentArray([doc(2, "dog"), doc(1, "cat"), doc(4, "cat")])
    got = Evaluator(query, index, embed_fn=lambda x: x, metrics=["mAP", "MRR"]).evaluate()
    assert got == pytest.approx({"mAP": 1.0, "MRR": 1.0})


def test_evaluator_uses_stored_embeddings_of_session_data():
    def doc(angle, label=None):
        emb = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
        return Document(embedding=emb, tags={} if label is None else {"finetuner_label": label})

    q0, q1 = doc(0), doc(90)
    q0.matches.extend([doc(10, 1), doc(5, -1)])
    q1.matches.extend([doc(80, 1), doc(60, -1)])
    for d in [q0, q1, *q0.matches, *q1.matches]:
        d.tensor = np.zeros(2, dtype=np.float32)
    got = Evaluator(DocumentArray([q0, q1]), metrics=["MRR", "mAP@R"]).evaluate()
    assert got == pytest.approx({"MRR": 0.75, "mAP@R": 0.5})
