"""A reference point for active learning on the text Labeler benchmark: questions picked by an oracle that knows
every answer, against ``random`` on the same seeds.

``benchmarks/labeler.py --text`` asks how many labels ``uncertainty`` and ``diversity`` need to reach ``random``'s
quality at its last round (target: at most 60% of random's). This script measures what query selection can do
when it knows the answers, on the same data, model, training and label budget: each round the oracle asks the
questions with the most to teach, by the true synsets: the most relevant matches shown (a question without one
gives the triplet loss nothing) that the model ranks below irrelevant ones (value = relevant matches in the top-k x
(1 - the query's average precision over the pool)), one query per synset per round. No Labeler strategy can know
this. The oracle is greedy, not optimal, so it is a reference point rather than a proof: where it misses the
target, a strategy without the answers is not expected to meet it.

Random's curves are read from ``benchmarks/results/labeler_text.json`` (the same seeds, rounds, training and code
path: ``simulate`` with the Labeler's ``train_fn``, refitting the pretrained encoder every round).

    python benchmarks/labeler_oracle.py --seeds 4    # about 10 minutes a seed on 2 cores

Writes ``benchmarks/results/labeler_text_oracle.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, describe_machine  # noqa: E402
from labeler import TARGET_FRACTION, TEXT_QUESTIONS, TEXT_TOP_K, text_setup, write_results  # noqa: E402

MEASURES = {"labels": "held out (other synsets)", "pool_labels": "search over the pool itself"}


def average_precision_at_r(embeddings: np.ndarray, queries: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each query's AP@R searching the rest of the pool (:func:`finetuner.evaluation.metrics.map_at_r`, R = its
    class's other members; 1.0 when it has none: nothing to learn)."""
    from finetuner.evaluation.metrics import map_at_r

    sims = embeddings[queries] @ embeddings.T
    sims[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")
    relevant = (classes[order] == classes[queries][:, None]) & (order != queries[:, None])  # not itself
    return np.nan_to_num(map_at_r(relevant, relevant.sum(axis=1)), nan=1.0)


def oracle_select(classes: np.ndarray) -> Callable[..., np.ndarray]:
    """A ``select`` for :func:`finetuner.labeler.simulation.simulate` that knows ``classes`` (see the module doc)."""
    from finetuner.labeler.strategies import knn

    def select(embeddings: np.ndarray, n: int, strategy: str, *, k: int = 10, exclude=None, rng=None, **_) -> np.ndarray:
        rng = np.random.default_rng(rng)
        available = np.flatnonzero(~np.asarray(exclude, dtype=bool)) if exclude is not None else np.arange(len(classes))
        neighbours, _ = knn(embeddings, available, k)
        shown_relevant = (classes[neighbours] == classes[available][:, None]).sum(axis=1)
        value = shown_relevant * (1 - average_precision_at_r(embeddings, available, classes))
        value = value + rng.random(len(value)) * 1e-9  # ties broken at random
        picked: list[int] = []
        asked_classes: set[int] = set()
        for i in np.argsort(-value):
            if classes[available[i]] not in asked_classes:
                picked.append(int(available[i]))
                asked_classes.add(int(classes[available[i]]))
                if len(picked) == n:
                    break
        return np.asarray(picked, dtype=np.int64)

    return select


def oracle_curves(seeds: int, rounds: int, pool_synsets: int, test_synsets: int) -> tuple[dict, list[int]]:
    """The oracle's held-out and pool mAP@R curves per seed (the text benchmark's default settings, those random's
    committed curves were measured at: TEXT_QUESTIONS queries x TEXT_TOP_K matches, 2 epochs per fit, the Labeler's
    train_fn)."""
    import torch

    from finetuner.labeler.simulation import simulate
    from finetuner.labeler.training import make_train_fn

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    texts, classes, model_factory, embed_fn, inputs = text_setup(pool_synsets, test_synsets)
    curves: dict[str, list[list[float]]] = {"labels": [], "pool_labels": []}
    counts: list[int] = []
    for seed in range(seeds):
        started = time.perf_counter()
        run = simulate(
            model_factory, texts["pool"], classes["pool"], texts["test"], classes["test"], strategy="oracle",
            embed_fn=embed_fn, train_fn=make_train_fn(inputs=inputs), rounds=rounds, questions=TEXT_QUESTIONS, top_k=TEXT_TOP_K,
            epochs=2, seed=seed, select=oracle_select(classes["pool"]),
        )
        curves["labels"].append([round(v, 4) for v in run.map_at_r])
        curves["pool_labels"].append([round(v, 4) for v in run.pool_map_at_r])
        counts = run.labels
        print(f"oracle seed {seed}: {curves['labels'][-1]} pool {curves['pool_labels'][-1]} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return curves, counts


def summary(oracle: list[list[float]], random: list[list[float]], counts: list[int]) -> dict:
    """Mean curves, labels to reach random's last mean value, and per seed against the same seed's random."""
    from finetuner.labeler.simulation import labels_to_reach

    random = random[: len(oracle)]
    mean_o, mean_r = np.mean(oracle, axis=0), np.mean(random, axis=0)
    needed = labels_to_reach(counts, list(mean_o), float(mean_r[-1]))
    per_seed = [labels_to_reach(counts, o, r[-1]) for o, r in zip(oracle, random)]
    return {
        "oracle": [round(float(v), 4) for v in mean_o],
        "random": [round(float(v), 4) for v in mean_r],
        "oracle_per_seed": oracle,
        "labels_needed": needed,
        "fraction_of_random": None if needed is None else round(needed / counts[-1], 3),
        "labels_needed_per_seed": per_seed,
    }


def markdown(results: dict) -> str:
    lines = [
        "# Labeler benchmark: text, an oracle's questions (what knowing the answers buys)",
        "",
        f"Machine: {results['machine']}. Command: `{results['command']}`.",
        "",
        "The text benchmark's data, model, training and budget (benchmarks/results/labeler_text.md): the oracle "
        "knows every synset and asks, each round, the queries with the most relevant matches in their top 10 that the "
        "model ranks below irrelevant ones (one per synset per round). Random: its per-seed curves in "
        f"labeler_text.json, seeds 0-{results['seeds'] - 1}. Target: at most {TARGET_FRACTION:.0%} of random's "
        f"{results['labels_axis'][-1]} labels to reach random's last-round mAP@R.",
    ]
    for key, title in MEASURES.items():
        s = results[key]
        lines += [
            "", f"## {title[0].upper()}{title[1:]}", "",
            f"Labels to reach random's last mean mAP@R ({s['random'][-1]}): {s['labels_needed']} "
            f"(fraction {s['fraction_of_random']}); per seed, against the same seed's random: "
            f"{s['labels_needed_per_seed']}.", "",
            "| labels | random | oracle |", "|---|---|---|",
            *(f"| {c} | {r} | {o} |" for c, r, o in zip(results["labels_axis"], s["random"], s["oracle"])),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 (random's curves must exist for them)")
    args = parser.parse_args()
    text = json.loads((RESULTS / "labeler_text.json").read_text())
    random = {key: text[key]["map_at_r_per_seed"]["random"] for key in MEASURES}
    if len(random["labels"]) < args.seeds:
        raise SystemExit(f"labeler_text.json has random's curves for {len(random['labels'])} seeds, not {args.seeds}")
    rounds = len(text["labels"]["labels_axis"]) - 1
    curves, counts = oracle_curves(args.seeds, rounds, text["labels"]["pool_synsets"], text["labels"]["test_synsets"])
    if counts != text["labels"]["labels_axis"]:
        raise SystemExit(f"label counts {counts} differ from labeler_text.json's {text['labels']['labels_axis']}")
    results = {
        "machine": describe_machine(),
        "command": "python benchmarks/labeler_oracle.py " + " ".join(sys.argv[1:]),
        "seeds": args.seeds,
        "labels_axis": counts,
        **{key: summary(curves[key], random[key], counts) for key in MEASURES},
    }
    write_results("labeler_text_oracle", results, markdown(results))


if __name__ == "__main__":
    main()
