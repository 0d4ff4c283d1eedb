"""Numpy reference implementations of the tuner's losses and miners, written as plain loops over the formulas.

Every backend's loss tests compare against these (float64), so the three backends compute the same thing.
"""

from __future__ import annotations

import math

import numpy as np


def distance_matrix(x: np.ndarray, distance: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if distance == "cosine":
                d[i, j] = 1 - x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            else:
                squared = float(((x[i] - x[j]) ** 2).sum())
                d[i, j] = squared if distance == "sqeuclidean" else math.sqrt(max(squared, 1e-12))
    return d


def cosine_similarity(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T


def relations(labels: np.ndarray) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(positive pairs, negative pairs) as ordered (anchor, other) sets, written out case by case."""
    labels = np.asarray(labels)
    positives, negatives = set(), set()
    for a in range(len(labels)):
        for j in range(len(labels)):
            if labels.ndim == 1:
                if a != j and labels[a] == labels[j]:
                    positives.add((a, j))
                elif labels[a] != labels[j]:
                    negatives.add((a, j))
            elif labels[a, 1] == 0 and labels[a, 0] == labels[j, 0]:
                if labels[j, 1] == 1:
                    positives.add((a, j))
                elif labels[j, 1] == -1:
                    negatives.add((a, j))
    return positives, negatives


def mine_triplets(
    labels: np.ndarray, d: np.ndarray, pos: str, neg: str, margin: float
) -> set[tuple[int, int, int]]:
    positives, negatives = relations(labels)
    triplets = set()
    for a, p in sorted(positives):
        nearest = min((d[a, n] for b, n in negatives if b == a), default=math.inf)
        if pos == "hard" and not d[a, p] >= nearest:
            continue
        if pos == "semihard" and not nearest - margin < d[a, p] < nearest:
            continue
        if pos == "easy" and not d[a, p] <= nearest - margin:
            continue
        for b, n in sorted(negatives):
            if b != a:
                continue
            if neg == "hard" and not d[a, n] <= d[a, p]:
                continue
            if neg == "semihard" and not d[a, p] < d[a, n] < d[a, p] + margin:
                continue
            if neg == "easy" and not d[a, n] >= d[a, p] + margin:
                continue
            triplets.add((a, p, n))
    return triplets


def siamese_loss(x: np.ndarray, labels: np.ndarray, distance: str, margin: float) -> float:
    """Contrastive loss over every ordered pair (the 'all'/'all' pair miner)."""
    d = distance_matrix(x, distance)
    positives, negatives = relations(labels)
    terms = [d[i, j] ** 2 for i, j in positives] + [max(0.0, margin - d[i, j]) ** 2 for i, j in negatives]
    return float(np.mean(terms))


def triplet_loss(x: np.ndarray, triplets: set[tuple[int, int, int]], distance: str, margin: float) -> float:
    d = distance_matrix(x, distance)
    return float(np.mean([max(0.0, d[a, p] - d[a, n] + margin) for a, p, n in triplets]))


def multiple_negatives_ranking_loss(x: np.ndarray, labels: np.ndarray, scale: float) -> float:
    """For each positive (a, p): softmax over p and a's in-batch negatives (session data: any non-query row)."""
    labels = np.asarray(labels)
    s = scale * cosine_similarity(x)
    positives, _ = relations(labels)
    terms = []
    for a, p in sorted(positives):
        if labels.ndim == 1:
            others = [n for n in range(len(labels)) if labels[n] != labels[a]]
        else:
            others = [n for n in range(len(labels)) if labels[n, 1] != 0 and (a, n) not in positives]
        logits = np.array([s[a, p]] + [s[a, n] for n in others])
        terms.append(-(logits[0] - math.log(np.exp(logits).sum())))
    return float(np.mean(terms))


def ntxent_loss(x: np.ndarray, ids: np.ndarray, temperature: float) -> float:
    s = cosine_similarity(x) / temperature
    n = len(ids)
    terms = []
    for i in range(n):
        for p in range(n):
            if p != i and ids[p] == ids[i]:
                denominator = sum(math.exp(s[i, k]) for k in range(n) if k != i)
                terms.append(-(s[i, p] - math.log(denominator)))
    return float(np.mean(terms))


def _margin_softmax_loss(
    x: np.ndarray, labels: np.ndarray, weight: np.ndarray, scale: float, target_fn
) -> float:
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    terms = []
    for i, y in enumerate(labels):
        logits = scale * cos[i].copy()
        logits[y] = scale * target_fn(cos[i, y])
        terms.append(-(logits[y] - math.log(np.exp(logits).sum())))
    return float(np.mean(terms))


def arcface_loss(x: np.ndarray, labels: np.ndarray, weight: np.ndarray, margin: float, scale: float) -> float:
    def target(c: float) -> float:
        theta = math.acos(min(1.0, max(-1.0, c)))
        return math.cos(theta + margin) if theta + margin < math.pi else c - margin * math.sin(margin)

    return _margin_softmax_loss(x, labels, weight, scale, target)


def cosface_loss(x: np.ndarray, labels: np.ndarray, weight: np.ndarray, margin: float, scale: float) -> float:
    return _margin_softmax_loss(x, labels, weight, scale, lambda c: c - margin)
