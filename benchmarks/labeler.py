"""Benchmark the Labeler: round latency on a 10,000-item pool, and labels saved by active learning.

1. Latency: a real Labeler Flow over 10,000 digit-like items (sklearn digits, jittered copies) with a small MLP.
   Each round submits the answers (simulated from the true digit) and asks for the next questions; the time
   from sending the submit to having the next questions is recorded, first with no fit, then while a fit runs
   in the background. Target: p50 < 300 ms without a fit; the background fit must not block the rounds.
2. Labels: simulated labelling of digits (no Flow): the labels that ``uncertainty`` (and ``diversity``) need to
   reach the held-out mAP@R that ``random`` reaches with 500 labels, averaged over seeds. Target: <= 60%.
   The model is a small MLP (64 -> 64 -> 32), trained by the Labeler's default ``train_fn`` (the project's
   Tuner, TripletLoss on the session data) after every round. ``--recipe fit`` trains with ``fit``'s optimiser
   for a small network instead (the obvious alternative; written to labeler_recipe_fit.json/.md, no latency).

3. Text (``--text``): WordNet noun synsets (Debian ``wordnet-base``), each synset's definition and lemmas one
   class; the packaged pretrained all-MiniLM-L6-v2 tailored with ``to_embedding`` (mean pooling, no projection),
   tokenised by ``tokenizer_collate``. Simulated answers from synset membership; the labels ``uncertainty`` and
   ``diversity`` need to reach ``random``'s held-out mAP@R at its last round, and every strategy's mAP@R after N
   labels against the zero-shot model; then submit -> next questions on a 10,000-text pool on a real Flow.

Run: ``python benchmarks/labeler.py`` (about 2 minutes on 2 cores; writes benchmarks/results/labeler.json and
labeler.md);
``python benchmarks/labeler.py --text`` writes labeler_text.json and labeler_text.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_machine, write_json_and_markdown  # noqa: E402

os.environ.setdefault("JINA_OPTOUT_TELEMETRY", "1")


TOKEN = "labeler-benchmark-token"


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Finetuner-Token", TOKEN)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _get(url: str) -> dict:
    request = urllib.request.Request(url)
    request.add_header("X-Finetuner-Token", TOKEN)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def big_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digit images: the 1,797 sklearn digits repeated with small pixel noise, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = np.arange(n) % len(x)
    images = np.clip(x[idx] / 16 + rng.normal(scale=0.05, size=(n, 64)), 0, 1).astype(np.float32)
    return images, y[idx]


def latency(pool_size: int, rounds: int, questions: int, top_k: int) -> dict:
    """Submit-to-next-questions times (ms) on a real Flow of digits, without and during a background fit."""
    import torch
    from docarray import Document, DocumentArray

    images, labels = big_digits(pool_size)
    truth = {f"item-{i}": int(c) for i, c in enumerate(labels)}
    docs = DocumentArray(Document(id=f"item-{i}", tensor=x) for i, x in enumerate(images))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    return flow_latency(model, docs, truth, rounds, questions, top_k, epochs=20)


def flow_latency(
    model, docs, truth: dict, rounds: int, questions: int, top_k: int, epochs: int, **options
) -> dict:
    """Submit-to-next-questions times (ms) on a real Labeler Flow, without and during a background fit."""
    from finetuner.labeler import Labeler

    out: dict = {"pool": len(docs), "questions": questions, "top_k": top_k}
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        with Labeler(model, docs, workdir=workdir, questions=questions, top_k=top_k, epochs=epochs,
                     token=TOKEN, **options) as labeler:
            out["start_s"] = round(time.perf_counter() - start, 2)
            base = f"http://127.0.0.1:{labeler.port}"
            current = _get(f"{base}/api/questions?client=bench")

            def one_round() -> float:
                nonlocal current
                answers = [
                    {"query_id": q["query_id"], "match_id": m["id"],
                     "label": 1 if truth[m["id"]] == truth[q["query_id"]] else -1}
                    for q in current["questions"]
                    for m in q["matches"]
                ]
                t0 = time.perf_counter()
                _post(f"{base}/api/labels", {"labels": answers, "client": "bench"})
                current = _get(f"{base}/api/questions?client=bench")
                return (time.perf_counter() - t0) * 1000

            idle = [one_round() for _ in range(rounds)]
            fit = _post(f"{base}/api/fit", {})
            during, fit_running = [], []
            for _ in range(rounds):
                during.append(one_round())
                fit_running.append(bool(_get(f"{base}/api/progress")["fit"]["running"]))
            deadline = time.time() + 300
            while _get(f"{base}/api/progress")["fit"]["running"] and time.time() < deadline:
                time.sleep(0.5)
            progress = _get(f"{base}/api/progress")
    out.update(
        idle_p50_ms=round(float(np.percentile(idle, 50)), 1),
        idle_p95_ms=round(float(np.percentile(idle, 95)), 1),
        during_fit_p50_ms=round(float(np.percentile(during, 50)), 1),
        during_fit_p95_ms=round(float(np.percentile(during, 95)), 1),
        rounds_while_fit_running=int(sum(fit_running)),
        fit_started=bool(fit.get("started")),
        fit_error=progress["fit"]["error"],
        labels=progress["labelled"],
    )
    return out


RECIPES = {
    "labeler": "the Labeler's default train_fn (the project's Tuner, TripletLoss on session data; Adam 1e-3, constant)",
    "fit": "a train_fn with fit's from-scratch optimiser (Adam 3e-3, cosine decay within each fit; "
           "finetuner.tuner.defaults.SCRATCH)",
}
"""The training a digits run uses (``--recipe``): the Labeler's default, or ``fit``'s recipe for a small network."""


def label_efficiency(seeds: int, rounds: int, questions: int, top_k: int, epochs: int, recipe: str = "labeler") -> dict:
    """Learning curves per strategy (mean and spread over seeds) and the labels each needs to match random at its
    budget (:func:`curve_summary`, as the text run reports them)."""
    import torch
    from sklearn.datasets import load_digits

    from finetuner.labeler.simulation import simulate
    from finetuner.labeler.training import default_embed_fn, default_train_fn, make_train_fn
    from finetuner.tuner.defaults import SCRATCH

    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    pool, test = order[:1200], order[1200:]

    def model_factory():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))

    train_fn = default_train_fn if recipe == "labeler" else make_train_fn(
        optimizer=SCRATCH.optimizer, learning_rate=SCRATCH.learning_rate, scheduler=SCRATCH.scheduler)
    curves: dict[str, list[list[float]]] = {}
    counts: list[int] = []
    select_ms: list[float] = []
    for strategy in ("random", "uncertainty", "diversity"):
        for seed in range(seeds):
            run = simulate(
                model_factory, x[pool], y[pool], x[test], y[test], strategy=strategy, embed_fn=default_embed_fn,
                train_fn=train_fn, rounds=rounds, questions=questions, top_k=top_k, epochs=epochs, seed=seed,
            )
            curves.setdefault(strategy, []).append(run.map_at_r)
            counts = run.labels
            select_ms += run.select_ms
    return curve_summary(curves, counts, {"recipe": recipe, "select_ms_p50_pool_1200": round(float(np.median(select_ms)), 2)})


def wordnet_synsets(limit: int, path: str = "/usr/share/wordnet/data.noun") -> list[list[str]]:
    """Up to ``limit`` noun synsets with at least two lemmas, in file order: ``[definition, lemma, lemma...]``."""
    if not Path(path).is_file():
        raise SystemExit(f"{path} is missing: apt-get install wordnet-base")
    synsets = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition("| ")
            parts = head.split()
            count = int(parts[3], 16)
            lemmas = list(dict.fromkeys(parts[4 + 2 * i].replace("_", " ").lower() for i in range(count)))
            definition = gloss.split(";")[0].strip()
            if len(lemmas) >= 2 and definition:
                synsets.append([definition, *lemmas])
                if len(synsets) >= limit:
                    break
    return synsets


def minilm_embedding(output_dim: int | None = None):
    """The packaged pretrained all-MiniLM-L6-v2 tailored (mean pooling, L2-normalised) and its ModelInputs."""
    import finetuner
    from finetuner.data import tokenizer_collate
    from finetuner.labeler.inputs import ModelInputs
    from models.torch_zoo import minilm, minilm_tokenizer

    model, sample = minilm(batch=2)
    embedding = finetuner.tailor.to_embedding(model, output_dim=output_dim, sample_input=sample)
    return embedding, ModelInputs.for_model(embedding, collate_fn=tokenizer_collate(minilm_tokenizer()))


TEXT_QUESTIONS, TEXT_TOP_K = 5, 10
"""The text run's questions per round and matches per question unless given (``--text-questions`` /
``--text-top-k``); results recorded before they were options were all measured at these."""


def text_split(pool_synsets: int, test_synsets: int) -> tuple[dict, dict]:
    """``(texts, classes)``, each ``{"pool": array, "test": array}``: disjoint synsets, shuffled with seed 0."""
    synsets = wordnet_synsets(pool_synsets + test_synsets)
    order = np.random.default_rng(0).permutation(len(synsets))
    split = {"pool": order[:pool_synsets], "test": order[pool_synsets:]}
    texts = {k: np.asarray([t for i in idx for t in synsets[i]]) for k, idx in split.items()}
    classes = {k: np.asarray([i for i in idx for _ in synsets[i]]) for k, idx in split.items()}
    return texts, classes


def _text_meta(texts: dict, pool_synsets: int, test_synsets: int, questions: int, top_k: int, epochs: int,
               learning_rate: float | None) -> dict:
    """The sizes, questions and training settings a text run's results record beside its curves."""
    return {
        "pool_items": len(texts["pool"]), "test_items": len(texts["test"]), "pool_synsets": pool_synsets,
        "test_synsets": test_synsets, "questions": questions, "top_k": top_k, "learning_rate": learning_rate,
        "epochs": epochs,
    }


def text_summary_from_log(path: str, pool_synsets: int, test_synsets: int, questions: int, top_k: int, epochs: int,
                          learning_rate: float | None) -> dict:
    """:func:`text_summaries` of the per-seed curves a text run printed (``<strategy> seed <n>: [...] pool [...]
    (<t> s)``), for a run stopped before it wrote its results: only the seeds every strategy finished count."""
    import ast
    import re

    curves: dict[str, dict[str, list[list[float]]]] = {"held_out": {}, "pool": {}}
    for line in Path(path).read_text().splitlines():
        found = re.match(r"^(random|uncertainty|diversity) seed (\d+): (\[.*?\])(?: pool (\[.*?\]))? \(", line)
        if found:
            curves["held_out"].setdefault(found.group(1), []).append(ast.literal_eval(found.group(3)))
            if found.group(4):
                curves["pool"].setdefault(found.group(1), []).append(ast.literal_eval(found.group(4)))
    texts, _ = text_split(pool_synsets, test_synsets)
    counts = [i * questions * top_k for i in range(len(curves["held_out"]["random"][0]))]
    meta = _text_meta(texts, pool_synsets, test_synsets, questions, top_k, epochs, learning_rate)
    return text_summaries(curves, counts, meta)


def text_setup(pool_synsets: int, test_synsets: int):
    """What a text simulation runs on: ``(texts, classes, model_factory, embed_fn, inputs)``, the :func:`text_split`
    and a factory of fresh copies of the tailored pretrained MiniLM with its tokenising ``embed_fn``."""
    from finetuner.labeler.training import clone_model, default_embed_fn, get_weights, set_weights

    texts, classes = text_split(pool_synsets, test_synsets)
    embedding, inputs = minilm_embedding()
    initial = get_weights(embedding)

    def embed_fn(model, contents):
        return default_embed_fn(model, inputs.collate([str(t) for t in contents]))

    def model_factory():
        model = clone_model(embedding)
        set_weights(model, initial)
        return model

    return texts, classes, model_factory, embed_fn, inputs


def text_efficiency(
    pool_synsets: int, test_synsets: int, seeds: int, rounds: int, questions: int, top_k: int, epochs: int,
    learning_rate: float | None,
) -> dict:
    """WordNet learning curves per strategy with the pretrained MiniLM (mean over seeds), against zero-shot."""
    import torch

    from finetuner.labeler.simulation import simulate
    from finetuner.labeler.training import make_train_fn

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    texts, classes, model_factory, embed_fn, inputs = text_setup(pool_synsets, test_synsets)
    train_fn = make_train_fn(inputs=inputs, **({} if learning_rate is None else {"learning_rate": learning_rate}))
    curves: dict[str, dict[str, list[list[float]]]] = {"held_out": {}, "pool": {}}
    counts: list[int] = []
    for seed in range(seeds):  # seed by seed: a run cut short still has every strategy's curves for its seeds
        for strategy in ("random", "uncertainty", "diversity"):
            started = time.perf_counter()
            run = simulate(
                model_factory, texts["pool"], classes["pool"], texts["test"], classes["test"], strategy=strategy,
                embed_fn=embed_fn, train_fn=train_fn, rounds=rounds, questions=questions, top_k=top_k,
                epochs=epochs, seed=seed,
            )
            held_out, pool = ([round(v, 4) for v in c] for c in (run.map_at_r, run.pool_map_at_r))
            print(f"{strategy} seed {seed}: {held_out} pool {pool} ({time.perf_counter() - started:.0f} s)", flush=True)
            curves["held_out"].setdefault(strategy, []).append(held_out)
            curves["pool"].setdefault(strategy, []).append(pool)
            counts = run.labels
    meta = _text_meta(texts, pool_synsets, test_synsets, questions, top_k, epochs, learning_rate)
    return text_summaries(curves, counts, meta)


def text_summaries(curves: dict[str, dict[str, list[list[float]]]], counts: list[int], meta: dict) -> dict:
    """:func:`curve_summary` of the held-out curves (``labels``) and, where recorded, of the pool's own search
    (``pool_labels``)."""
    summaries = {"labels": curve_summary(curves["held_out"], counts, meta)}
    if curves.get("pool"):
        summaries["pool_labels"] = curve_summary(curves["pool"], counts, meta)
    return summaries


def curve_summary(curves: dict[str, list[list[float]]], counts: list[int], meta: dict) -> dict:
    """Mean and spread of the per-seed curves, and the labels each strategy needs to reach random's last round."""
    from finetuner.labeler.simulation import labels_to_reach

    curves = {s: c[: min(len(v) for v in curves.values())] for s, c in curves.items()}  # complete seeds only
    mean = {s: np.mean(c, axis=0) for s, c in curves.items()}
    budget, target = counts[-1], float(mean["random"][-1])
    result = {
        **meta,
        "labels_axis": counts,
        "map_at_r": {s: [round(float(v), 4) for v in c] for s, c in mean.items()},
        "map_at_r_sd": {s: [round(float(v), 4) for v in np.std(c, axis=0, ddof=1 if len(c) > 1 else 0)]
                        for s, c in curves.items()},
        "map_at_r_per_seed": {s: [[round(float(v), 4) for v in run] for run in c] for s, c in curves.items()},
        "zero_shot_map_at_r": round(float(mean["random"][0]), 4),
        "random_budget": budget,
        "target_map_at_r": round(target, 4),
        "seeds": len(curves["random"]),
    }
    for strategy in ("uncertainty", "diversity"):
        n = labels_to_reach(counts, mean[strategy], target)
        result[f"{strategy}_labels_needed"] = n
        result[f"{strategy}_fraction_of_random"] = None if n is None else round(n / budget, 3)
        # per seed, against that seed's own random run (same test set, same training): the spread of the verdict
        result[f"{strategy}_labels_needed_per_seed"] = [
            labels_to_reach(counts, own, rand[-1]) for own, rand in zip(curves[strategy], curves["random"])
        ]
        # label efficiency: random's labels to match each round of the strategy's mean curve
        result[f"{strategy}_random_labels_to_match"] = [
            random_labels_to_match(counts, mean["random"], value) for value in mean[strategy][1:]
        ]
        # the whole curve, paired by seed: mean mAP@R over the rounds after zero-shot, minus random's
        diffs = [float(np.mean(np.subtract(own[1:], rand[1:]))) for own, rand in zip(curves[strategy], curves["random"])]
        result[f"{strategy}_area_over_random"] = round(float(np.mean(diffs)), 4)
        result[f"{strategy}_area_over_random_se"] = round(
            float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan"), 4)
    result["random_area_over_zero_shot"] = round(float(np.mean(mean["random"][1:]) - mean["random"][0]), 4)
    return result


def random_labels_to_match(counts: list[int], random_curve: Sequence[float], value: float) -> int | None:
    """The labels random's curve needs to reach ``value``: linear between its rounds, on its running maximum (a
    round below an earlier one does not undo it); 0 at or below zero-shot, None beyond its last round."""
    best = np.maximum.accumulate(np.asarray(random_curve, dtype=float))
    if value <= best[0]:
        return 0
    if value > best[-1]:
        return None
    i = int(np.argmax(best >= value))
    share = (value - best[i - 1]) / (best[i] - best[i - 1])
    return round(counts[i - 1] + share * (counts[i] - counts[i - 1]))


def text_latency(pool_size: int, rounds: int, questions: int, top_k: int) -> dict:
    """Submit-to-next-questions on a real Flow over ``pool_size`` WordNet texts with the pretrained MiniLM."""
    from docarray import Document, DocumentArray

    synsets = wordnet_synsets(pool_size)
    items = [(i, t) for i, synset in enumerate(synsets) for t in synset][:pool_size]
    docs = DocumentArray(Document(id=f"t{n}", text=t) for n, (_, t) in enumerate(items))
    truth = {f"t{n}": i for n, (i, _) in enumerate(items)}
    embedding, inputs = minilm_embedding()
    return flow_latency(embedding, docs, truth, rounds, questions, top_k, epochs=1, collate_fn=inputs.collate_fn)


def _latency_rows(lat: dict, noun: str) -> list[str]:
    return [
        f"## Submit -> next questions ({lat['pool']:,}-{noun} pool, {lat['questions']} queries x top-{lat['top_k']})",
        "",
        "| phase | p50 ms | p95 ms |",
        "|---|---|---|",
        f"| no fit | {lat['idle_p50_ms']} | {lat['idle_p95_ms']} |",
        f"| fit running in the background | {lat['during_fit_p50_ms']} | {lat['during_fit_p95_ms']} |",
        "",
        f"Target p50 < 300 ms without a fit: **{'met' if lat['idle_p50_ms'] < 300 else 'missed'}**. "
        f"Rounds answered while the fit was still running: {lat['rounds_while_fit_running']}; "
        f"Flow start (embedding the pool) {lat['start_s']} s.",
    ]


def _curve_rows(eff: dict) -> list[str]:
    rows = [
        f"| {strategy} | {eff[f'{strategy}_labels_needed']} | {eff[f'{strategy}_fraction_of_random']} |"
        for strategy in ("uncertainty", "diversity")
    ]
    rows += ["", "| labels | " + " | ".join(eff["map_at_r"]) + " |", "|---" * (1 + len(eff["map_at_r"])) + "|"]
    sd = eff.get("map_at_r_sd")
    for i, count in enumerate(eff["labels_axis"]):
        cells = [f"{c[i]} ± {sd[s][i]}" if sd else str(c[i]) for s, c in eff["map_at_r"].items()]
        rows.append(f"| {count} | " + " | ".join(cells) + " |")
    if sd:
        rows += ["", "(mean ± sd across seeds)"]
    if "random_area_over_zero_shot" in eff:
        rows += ["", "Whole curves, paired by seed (mean mAP@R over the rounds after the start, minus the same seed's "
                 f"random; mean ± standard error over {eff['seeds']} seeds; random's own gain over the starting model on that "
                 f"measure is {eff['random_area_over_zero_shot']}): "
                 + ", ".join(f"{s} {eff[f'{s}_area_over_random']:+} ± {eff[f'{s}_area_over_random_se']}"
                             for s in ("uncertainty", "diversity")) + "."]
    if "diversity_random_labels_to_match" in eff:
        rows += ["", f"Label efficiency (mean curves): random's labels to match each round, linear between its rounds "
                 f"('>{eff['random_budget']}': beyond its budget):", "",
                 "| labels | " + " | ".join(("uncertainty", "diversity")) + " |", "|---|---|---|"]
        for i, count in enumerate(eff["labels_axis"][1:]):
            cells = [eff[f"{s}_random_labels_to_match"][i] for s in ("uncertainty", "diversity")]
            rows.append(f"| {count} | " + " | ".join(f">{eff['random_budget']}" if c is None else str(c)
                                                      for c in cells) + " |")
    for strategy in ("uncertainty", "diversity"):
        if f"{strategy}_labels_needed_per_seed" in eff:
            rows.append(f"\n{strategy}, labels to reach the same seed's random at its last round, per seed: "
                        f"{eff[f'{strategy}_labels_needed_per_seed']}")
    return rows


TARGET_FRACTION = 0.6
"""The issue's target: an active strategy reaches random's last-round quality with at most this share of its labels."""


def _resolution_line(eff: dict) -> str:
    """How far random's own mean curve still climbs between the target's label count and its last round: what
    the labels-needed verdict resolves (a strategy level with random at that count meets the target)."""
    counts, curve = eff["labels_axis"], eff["map_at_r"]["random"]
    within = max(i for i, c in enumerate(counts) if c <= TARGET_FRACTION * eff["random_budget"])
    sd = eff.get("map_at_r_sd", {}).get("random")
    spread = f" (sd across seeds {sd[within]})" if sd else ""
    line = (f"Random's own mean at {counts[within]} labels (the last round within {TARGET_FRACTION:.0%} of its budget): "
            f"{curve[within]}{spread}; it gains {curve[-1] - curve[within]:+.4f} more by its last round, so meeting "
            f"the target means being that much above random's mean at {counts[within]} labels.")
    peak = int(np.argmax(curve))
    if curve[-1] <= curve[within] or peak < len(curve) - 1 and curve[peak] - curve[-1] > (sd[-1] if sd else 0):
        line += (f" Random's mean curve is not rising at its budget (it peaks at {counts[peak]} labels, "
                 f"{curve[peak]}): reaching its last round is no test of a strategy on this measure; read the "
                 "whole-curve figures below.")
    return line


def _text_section(eff: dict, title: str, intro: str = "") -> list[str]:
    """One measure's part of the text results: zero-shot and random's last value, labels needed, the curves."""
    return [
        f"## {title}",
        "",
        f"{intro}Zero-shot mAP@R {eff['zero_shot_map_at_r']}; random's at {eff['random_budget']} labels "
        f"{eff['target_map_at_r']}.",
        "",
        _resolution_line(eff),
        "",
        "| strategy | labels to reach random's last mAP@R | fraction of random's |",
        "|---|---|---|",
        *_curve_rows(eff),
    ]


def text_markdown(results: dict) -> str:
    eff, lat = results["labels"], results.get("latency")
    lines = [
        "# Labeler benchmark: text (WordNet nouns, pretrained all-MiniLM-L6-v2)",
        "",
        f"Machine: {results['machine']}. Command: `{results['command']}`.",
        "",
        f"Pool: {eff['pool_items']} texts of {eff['pool_synsets']} synsets (definition + lemmas, one class each); "
        f"held out: {eff['test_items']} texts of {eff['test_synsets']} other synsets. Answers simulated from synset "
        f"membership; each round asks {eff.get('questions', TEXT_QUESTIONS)} queries x {eff.get('top_k', TEXT_TOP_K)} matches, then "
        f"the Labeler's train_fn fits {eff['epochs']} epoch(s) on all the labels so "
        f"far, from the pretrained weights as the Labeler refits a pretrained encoder (TripletLoss, "
        f"lr {eff['learning_rate'] or 'default'}); mean of {eff['seeds']} seed(s).",
        "",
    ]
    lines += _text_section(eff, "Other synsets, held out (does the tuning generalise?)")
    pool = results.get("pool_labels")
    if pool:
        lines += ["", *_text_section(
            pool, "Search over the pool itself (the user's own collection)",
            "The same runs, measured on what a Labeler user labels for: each pool text searches the rest of the pool "
            "(the labelled ones included). ",
        )]
    if lat:
        lines += ["", *_latency_rows(lat, "text")]
    return "\n".join(lines) + "\n"


def latency_markdown(results: dict) -> str:
    lat = results["latency"]
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(results["load_before"], results["load_after"]))
    return "\n".join([
        "# Labeler benchmark: next questions on a 10,000-text pool (WordNet, pretrained all-MiniLM-L6-v2)",
        "",
        f"Machine: {results['machine']}. Command: `{results['command']}`. Load average (1/5/15 min) before/after: "
        f"{load} (the 'after' figures include this run's own Flow and fits; other work on the machine shows in the "
        "'before' ones and makes the times noisy).",
        "",
        *_latency_rows(lat, "text"),
        "",
        "The pool's embedding is not in these times: it happens once, in the Flow start above (the index "
        "Executor embeds every text with 1 torch thread), and again in the background after each fit.",
    ]) + "\n"


def write_results(name: str, results: dict, text: str) -> None:
    """``benchmarks/results/<name>.json`` and ``.md`` (:func:`_common.write_json_and_markdown`); prints the
    Markdown."""
    write_json_and_markdown(name, results, text)
    print(text)


def markdown(results: dict) -> str:
    lat, eff = results["latency"], results["labels"]
    lines = [
        "# Labeler benchmark" + ("" if eff.get("recipe", "labeler") == "labeler" else f": digits, {eff['recipe']} recipe"),
        "",
        f"Machine: {results['machine']}. Command: `{results['command']}`.",
        "",
        *(_latency_rows(lat, "item") + [""] if lat else []),
        f"## Labels to reach random's mAP@R at {eff['random_budget']} labels (digits, mean of {eff['seeds']} seeds)",
        "",
        f"Target mAP@R {eff['target_map_at_r']} (random's mean curve at its last round; held-out digits, 597 items, "
        "the pool 1,200 others); model: MLP 64-64-32 from random weights, fitted after each round of 50 labels for 5 "
        f"epochs on all the labels so far, on top of its previous fit, by {RECIPES[eff.get('recipe', 'labeler')]}.",
        "",
        _resolution_line(eff),
        "",
        "| strategy | labels needed | fraction of random's |",
        "|---|---|---|",
    ]
    lines += _curve_rows(eff)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per strategy (default: 8 for digits, about a minute; 3 for text, about 30 minutes "
                             "a seed on 2 cores)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="labeler",
                        help="digits run: the Labeler's default training, or fit's from-scratch optimiser")
    parser.add_argument("--text", action="store_true", help="the WordNet text run instead of the digits run")
    parser.add_argument("--pool-synsets", type=int, default=300, help="text run: synsets in the pool")
    parser.add_argument("--test-synsets", type=int, default=200, help="text run: other synsets, held out")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="text run: the train_fn's learning rate (default: the Labeler's, AdamW 5e-5 here)")
    parser.add_argument("--text-rounds", type=int, default=12,
                        help="text run: rounds of labelling, each of --text-questions queries x --text-top-k matches; "
                             "at 12 rounds of 50 labels (600) random's search over the pool is still rising at its "
                             "last round, at 6 it is level from 200 labels")
    parser.add_argument("--text-questions", type=int, default=TEXT_QUESTIONS, help="text run: queries asked per round")
    parser.add_argument("--text-top-k", type=int, default=TEXT_TOP_K, help="text run: matches shown (labelled) per query")
    parser.add_argument("--no-latency", action="store_true", help="text run: skip the 10,000-text Flow")
    parser.add_argument("--from-log", default=None,
                        help="text run: write the results from the per-seed curves a stopped run printed to this log")
    parser.add_argument("--latency-only", action="store_true",
                        help="text run: only the 10,000-text Flow (timing: run it on an otherwise idle machine), written to "
                             "labeler_text_latency.json/.md")
    args = parser.parse_args()
    machine = describe_machine()
    if args.text and args.latency_only:
        results = {
            "machine": machine,
            "command": "python benchmarks/labeler.py " + " ".join(sys.argv[1:]),
            "load_before": os.getloadavg(),
            "latency": text_latency(args.pool, rounds=args.rounds, questions=3, top_k=8),
            "load_after": os.getloadavg(),
        }
        write_results("labeler_text_latency", results, latency_markdown(results))
        return
    if args.text:
        results = {
            "machine": machine,
            "command": "python benchmarks/labeler.py " + " ".join(sys.argv[1:]),
            **(text_summary_from_log(args.from_log, args.pool_synsets, args.test_synsets, args.text_questions,
                                     args.text_top_k, epochs=2, learning_rate=args.learning_rate) if args.from_log else
               text_efficiency(args.pool_synsets, args.test_synsets, args.seeds or 3, args.text_rounds,
                               questions=args.text_questions, top_k=args.text_top_k, epochs=2,
                               learning_rate=args.learning_rate)),
        }
        if not args.no_latency:
            results["latency"] = text_latency(args.pool, rounds=10, questions=3, top_k=8)
        write_results("labeler_text", results, text_markdown(results))
        return
    results = {
        "machine": machine,
        "command": "python benchmarks/labeler.py " + " ".join(sys.argv[1:]),
        "latency": latency(args.pool, args.rounds, questions=3, top_k=8) if args.recipe == "labeler" else None,
        "labels": label_efficiency(args.seeds or 8, rounds=10, questions=5, top_k=10, epochs=5, recipe=args.recipe),
    }
    write_results("labeler" if args.recipe == "labeler" else f"labeler_recipe_{args.recipe}", results, markdown(results))


if __name__ == "__main__":
    main()
