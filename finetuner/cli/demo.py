"""``finetuner demo``: the whole path on an embedded default, in about a minute on two cores.

A small MLP digit classifier (:class:`finetuner.demo_model.MLP`, untrained) is tailored into an embedding model,
fine-tuned on scikit-learn's digits (a closed-set split: 70% of every class to train, 30% to search), measured
before and after, plotted, exported to ONNX, and a query is answered with onnxruntime alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "demo"
HELP = "Tailor, fine-tune, evaluate, plot and export a digits model, then search with onnxruntime (~1 min)."
METRICS = ("mAP@R", "recall@10", "precision@1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="finetuner-demo", help="folder for the plot, metrics and ONNX model")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--output-dim", type=int, default=32, help="embedding width (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    classifier = _classifier(args.seed)
    import finetuner
    from finetuner.data import digits, split_items

    console.rule("1. the general model: an untrained digit classifier (64 -> 128 -> 64 -> 10)")
    finetuner.tailor.display(classifier, input_shape=(64,))
    train, test = split_items(digits(), val_fraction=0.3, seed=args.seed)
    console.print(f"digits: {len(train)} to train, {len(test)} to search (every class in both)")

    console.rule(f"2. tailor: cut before the classifier, project to {args.output_dim}, L2-normalise")
    model = finetuner.tailor.to_embedding(classifier, output_dim=args.output_dim, input_shape=(64,))
    before = _evaluate(model, test)

    console.rule("3. fine-tune (TripletLoss, semihard negatives; best epoch on held-out items)")
    model = finetuner.fit(
        model, train, epochs=args.epochs, validation="items", seed=args.seed, logdir=out,
        progress=not args.no_progress,
    )
    after = _evaluate(model, test)
    _print_metrics(console, before, after)

    console.rule("4. export to ONNX and search with onnxruntime only")
    path = finetuner.export(model, out / "digits-embedding.onnx")
    hits = _search_with_onnxruntime(path, test)
    console.print(f"exported {path} ({path.stat().st_size / 1024:.0f} KB), checked against the model within 1e-4")
    console.print(f"query: a '{hits['query']}'; the 5 nearest digits: {hits['labels']}")
    console.print(f"plot of loss and metrics per epoch: {out / 'training.png'}")
    console.print(f"done in {time.perf_counter() - start:.0f} s")
    return 0 if after["mAP@R"] > before["mAP@R"] else 1


def _classifier(seed: int) -> Any:
    from finetuner.demo_model import MLP, torch

    torch.manual_seed(seed)
    return MLP()


def _evaluate(model: Any, docs: Any) -> dict[str, float]:
    from finetuner.api import embed
    from finetuner.evaluation import Evaluator

    return Evaluator(docs, metrics=list(METRICS)).evaluate(lambda contents: embed(contents, model))


def _print_metrics(console: Any, before: dict[str, float], after: dict[str, float]) -> None:
    from rich.table import Table

    table = Table(title="retrieval on the 30% search split (cosine)")
    for column in ("metric", "untrained", "fine-tuned", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in METRICS:
        table.add_row(name, f"{before[name]:.3f}", f"{after[name]:.3f}", f"{after[name] - before[name]:+.3f}")
    console.print(table)


def _search_with_onnxruntime(path: Path, docs: Any) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.stack([doc.tensor for doc in docs]).astype(np.float32)
    labels = [doc.tags["finetuner_label"] for doc in docs]
    index = session.run(None, {name: x})[0]
    query = index[0]
    order = np.argsort(-(index @ query))[1:6]
    return {"query": labels[0], "labels": [labels[i] for i in order]}
