"""fp32 or int8 for serving, chosen at export by measuring both on this CPU, never assumed.

Issue 18 measured dynamic int8 quantization of MiniLM at 1.05x the fp32 speed on an AVX2 EPYC and 1.47x on an
AVX-512/VNNI one, and its retrieval quality can move either way. So ``finetuner.export(..., quantize='auto')``
builds the int8 graph beside the fp32 one and keeps int8 only when both hold:

- **quality:** recall@10 on the calibration data loses at most :data:`MAX_RECALL_LOSS` (one point) against fp32;
- **speed:** int8 embeds a calibration batch faster than fp32 here (interleaved medians).

The calibration data is the user's: ``(inputs, labels)`` (recall@10 of same-label neighbours), or, for text
models, a list of texts (each text is searched for with 40% of its words dropped). A text model given none
is calibrated on a held-out sample: sentences of this Python's standard-library docstrings. The choice, both
measurements and the CPU (name and vector flags) are stored in the model's metadata (:data:`PRECISION_KEY`)
and logged by the serving Executor. ``quantize=True`` or ``False`` forces either precision.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

PRECISION_KEY = "finetuner.precision"
MAX_RECALL_LOSS = 0.01
K = 10
CALIBRATION_BATCH = 32
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``quantize='auto'`` chose, why, and what it measured (stored as JSON in the model's metadata)."""

    precision: str
    reason: str
    recall_at_10: dict[str, float] = field(default_factory=dict)
    seconds_per_batch: dict[str, float] = field(default_factory=dict)
    data: str = ""
    cpu: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_model(cls, model: onnx.ModelProto) -> PrecisionChoice | None:
        """The choice recorded in ``model``'s metadata, or None for a model exported without ``quantize='auto'``."""
        stored = next((p.value for p in model.metadata_props if p.key == PRECISION_KEY), None)
        return cls(**json.loads(stored)) if stored else None

    def record(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Store this choice in ``model.metadata_props`` (in place; replaces an older one) and return ``model``."""
        keep = [(p.key, p.value) for p in model.metadata_props if p.key != PRECISION_KEY]
        del model.metadata_props[:]
        for key, value in [*keep, (PRECISION_KEY, self.to_json())]:
            model.metadata_props.add(key=key, value=value)
        return model

    def describe(self) -> str:
        """One line for a log: the precision, the measurements and the CPU they were taken on."""
        recall = ", ".join(f"{k} {v * 100:.1f}" for k, v in self.recall_at_10.items())
        speed = ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in self.seconds_per_batch.items())
        return (f"{self.precision} ({self.reason}; recall@10 {recall or '-'}; per batch {speed or '-'}; "
                f"measured on {self.cpu.get('name', '?')} [{' '.join(self.cpu.get('flags', []))}])")


def cpu_description() -> dict[str, Any]:
    """This CPU's model name and the vector extensions that decide onnxruntime's kernels (from /proc/cpuinfo)."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
        if name and flags:
            break
    return {"name": name or "unknown", "flags": [f for f in VECTOR_FLAGS if f in flags]}


def held_out_texts(n: int = 200, seed: int = 0) -> list[str]:
    """``n`` sentences (8-40 words) of this Python's standard-library docstrings: real English text of real
    lengths that any machine has, for calibrating a text model when the user gives no data."""
    import argparse
    import asyncio
    import email
    import logging
    import os
    import pathlib
    import subprocess

    text = " ".join(inspect.getdoc(obj) or "" for mod in (os, json, logging, pathlib, subprocess, email, asyncio,
                                                           argparse) for obj in vars(mod).values() if callable(obj))
    sentences = sorted({" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", text) if 8 <= len(s.split()) <= 40})
    rng = np.random.default_rng(seed)
    return [sentences[i] for i in rng.choice(len(sentences), min(n, len(sentences)), replace=False)]


def paraphrases(texts: Sequence[str], drop: float = 0.4, seed: int = 0) -> list[str]:
    """Each text with a fraction ``drop`` of its words removed: the query whose one relevant answer is its source."""
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        words = text.split() or [text]
        keep = rng.random(len(words)) > drop
        out.append(" ".join(w for w, k in zip(words, keep) if k) or words[0])
    return out


def recall_at_k(
    queries: np.ndarray, corpus: np.ndarray, relevant: Sequence[set[int]], k: int = K, exclude_self: bool = False,
) -> float:
    """Mean over queries of the share of their relevant corpus rows found among the ``k`` most cosine-similar
    (at most ``k`` can be found, so a query with more relevant rows counts ``k`` of them as all).
    ``exclude_self``: query *i* is corpus row *i* and must not find itself."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    c = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    similarity = q @ c.T
    if exclude_self:
        np.fill_diagonal(similarity, -np.inf)
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    scores = [len(set(row.tolist()) & rel) / min(k, len(rel)) for row, rel in zip(top, relevant) if rel]
    if not scores:
        raise ValueError("No calibration query has a relevant item: give at least two inputs of one label.")
    return float(np.mean(scores))


class Calibration:
    """The calibration data turned into model feeds: queries, a corpus and which corpus rows each query wants."""

    def __init__(
        self, model: onnx.ModelProto, data: Any, tokenize: Callable[[Sequence[str]], Mapping[str, np.ndarray]] | None,
    ) -> None:
        from finetuner.onnx_meta import graph_inputs

        self.specs = graph_inputs(model)
        if data is None:
            if tokenize is None:
                raise ValueError(
                    "quantize='auto' needs calibration_data for a model that does not take text: pass "
                    "calibration_data=(inputs, labels), at least two inputs per label, as the model takes them."
                )
            data = held_out_texts()
            self.source = f"held-out sample: {len(data)} standard-library docstring sentences"
        else:
            self.source = "calibration_data"
        if isinstance(data, tuple) and len(data) == 2:
            inputs, labels = data
            labels = np.asarray(labels)
            if len(labels) != _count(inputs):
                raise ValueError(f"calibration_data has {_count(inputs)} inputs but {len(labels)} labels.")
            self.queries = self.corpus = self._feeds(inputs, tokenize)
            self.relevant = [set(np.flatnonzero(labels == label).tolist()) - {i} for i, label in enumerate(labels)]
            self.self_excluded = True
        elif _is_texts(data):
            if tokenize is None:
                raise ValueError("calibration_data is a list of texts, but this model does not take text.")
            texts = list(data)
            self.corpus = self._feeds(texts, tokenize)
            self.queries = self._feeds(paraphrases(texts), tokenize)
            self.relevant = [{i} for i in range(len(texts))]
            self.self_excluded = False
            self.source += f" ({len(texts)} texts, each searched for with 40% of its words dropped)"
        else:
            raise ValueError(
                "calibration_data must be (inputs, labels) or, for a text model, a list of texts; got "
                f"{type(data).__name__}."
            )

    def _feeds(self, inputs: Any, tokenize: Callable | None) -> list[dict[str, np.ndarray]]:
        """Batches of :data:`CALIBRATION_BATCH` model inputs, cast to the graph's dtypes."""
        n = _count(inputs)
        feeds = []
        for start in range(0, n, CALIBRATION_BATCH):
            if _is_texts(inputs):
                assert tokenize is not None
                raw = dict(tokenize(list(inputs[start : start + CALIBRATION_BATCH])))
            elif isinstance(inputs, Mapping):
                raw = {k: np.asarray(v)[start : start + CALIBRATION_BATCH] for k, v in inputs.items()}
            else:
                raw = {self.specs[0].name: np.asarray(inputs)[start : start + CALIBRATION_BATCH]}
            missing = [s.name for s in self.specs if s.name not in raw]
            if missing:
                raise ValueError(f"calibration_data gives no {', '.join(missing)} for the model's inputs.")
            feeds.append({s.name: np.asarray(raw[s.name]).astype(s.dtype, copy=False) for s in self.specs})
        return feeds

    def recall(self, session: Any) -> float:
        """recall@10 of the model in ``session`` on this data (a query never finds itself)."""
        corpus = _embed(session, self.corpus)
        queries = corpus if self.queries is self.corpus else _embed(session, self.queries)
        return recall_at_k(queries, corpus, self.relevant, exclude_self=self.self_excluded)


def _embed(session: Any, feeds: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    return np.concatenate([session.run(None, dict(feed))[0] for feed in feeds]).astype(np.float64)


def _is_texts(data: Any) -> bool:
    return isinstance(data, list | tuple) and bool(data) and all(isinstance(t, str) for t in data)


def _count(inputs: Any) -> int:
    if isinstance(inputs, Mapping):
        return len(next(iter(inputs.values())))
    return len(inputs)


def choose_precision(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, calibration_data: Any = None,
    tokenize: Callable[[Sequence[str]], Mapping[str, np.ndarray]] | None = None, threads: int = 0,
) -> PrecisionChoice:
    """Measure recall@10 and speed of both graphs on the calibration data here; int8 only where it loses at
    most one point of recall@10 and is faster. ``tokenize``: texts -> the model's token inputs (text models)."""
    import onnxruntime as ort

    from finetuner.optimize import session_options
    from finetuner.serving.calibrate import median_run_seconds

    data = Calibration(fp32, calibration_data, tokenize)
    sessions = {
        name: ort.InferenceSession(graph.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
        for name, graph in (("fp32", fp32), ("int8", int8))
    }
    recall = {name: data.recall(session) for name, session in sessions.items()}
    seconds = median_run_seconds(sessions, max(data.corpus, key=lambda f: next(iter(f.values())).shape[0]))
    loss = recall["fp32"] - recall["int8"]
    if loss > MAX_RECALL_LOSS:
        precision, reason = "fp32", f"int8 loses {loss * 100:.1f} points of recall@10 (> {MAX_RECALL_LOSS * 100:g})"
    elif seconds["int8"] >= seconds["fp32"]:
        precision, reason = "fp32", f"int8 is not faster on this CPU ({seconds['fp32'] / seconds['int8']:.2f}x)"
    else:
        precision = "int8"
        reason = (f"int8 is {seconds['fp32'] / seconds['int8']:.2f}x faster and loses {max(loss, 0.0) * 100:.1f} "
                  f"points of recall@10 (<= {MAX_RECALL_LOSS * 100:g})")
    return PrecisionChoice(precision, reason, recall, seconds, data.source, cpu_description())
