"""How the Labeler embeds the pool and trains the model: two small callables, framework-specific only here.

- ``embed_fn(model, contents) -> np.ndarray`` turns a batch of document contents into (B, D) embeddings;
- ``train_fn(model, session_docs, epochs) -> dict`` fine-tunes ``model`` in place on session-shaped data (query
  Documents whose ``.matches`` carry ``tags['finetuner_label']`` = +1/-1) and returns metrics (e.g. ``loss``).

The defaults use the project's Tuner (``finetuner.tuner``) once its PyTorch backend can be imported; until
then :func:`_session_triplet_fit` is the stand-in (triplets within each session, cosine distance), so the
Labeler works end to end. Users can pass their own callables to :func:`finetuner.labeler.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LABEL_TAG = "finetuner_label"

EmbedFn = Callable[[Any, np.ndarray], np.ndarray]
TrainFn = Callable[[Any, Any, int], dict]


def framework_of(model: Any) -> str:
    """``'torch'``, ``'keras'`` or ``'paddle'``, judged by the model's class hierarchy without importing anything."""
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if module.startswith("torch"):
            return "torch"
        if module.startswith(("keras", "tensorflow", "tf_keras")):
            return "keras"
        if module.startswith("paddle"):
            return "paddle"
    raise TypeError(
        f"the Labeler cannot tell the framework of {type(model).__name__}: pass a torch.nn.Module, a Keras "
        "model or a paddle.nn.Layer, or give embed_fn= and train_fn= yourself"
    )


def stack_contents(docs: Sequence[Any]) -> np.ndarray:
    """The ``.tensor`` of each Document stacked into one float32 array; names the first document without one."""
    tensors = []
    for doc in docs:
        if doc.tensor is None:
            raise ValueError(
                f"document {doc.id} has no .tensor: the default embed_fn feeds tensors to the model; load or "
                "preprocess the content into .tensor first, or pass embed_fn= that reads .text/.uri/.blob"
            )
        tensors.append(np.asarray(doc.tensor, dtype=np.float32))
    return np.stack(tensors) if tensors else np.empty((0,), dtype=np.float32)


def torch_embed(model: Any, contents: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Embed ``contents`` with a torch model in eval mode, without gradients; returns float32 (B, D)."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(contents), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(contents[start : start + batch_size]))
            out.append(model(batch).detach().float().reshape(len(batch), -1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def session_triplets(
    session_docs: Any, positives_as_anchors: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten session docs into contents plus (anchor, positive, negative) index triplets within each session.

    The query is the anchor; with ``positives_as_anchors`` the relevant matches are anchors too (relevance is
    then taken as symmetric and transitive within a session, as with class labels).
    """
    contents, anchors, positives, negatives = [], [], [], []
    for query in session_docs:
        q = len(contents)
        contents.append(np.asarray(query.tensor, dtype=np.float32))
        pos, neg = [], []
        for match in query.matches:
            (pos if match.tags[LABEL_TAG] > 0 else neg).append(len(contents))
            contents.append(np.asarray(match.tensor, dtype=np.float32))
        group = [q, *pos] if positives_as_anchors else [q]
        for a in group:
            for p in [q, *pos]:
                if p == a:
                    continue
                for n in neg:
                    anchors.append(a)
                    positives.append(p)
                    negatives.append(n)
    array = np.stack(contents) if contents else np.empty((0,), dtype=np.float32)
    return array, np.asarray(anchors, np.int64), np.asarray(positives, np.int64), np.asarray(negatives, np.int64)


def _session_triplet_fit(
    model: Any,
    session_docs: Any,
    epochs: int,
    *,
    lr: float = 1e-3,
    batch_size: int = 256,
    margin: float = 0.3,
    positives_as_anchors: bool = False,
) -> dict:
    """Stand-in until ``finetuner.tuner`` lands: cosine triplet loss on the triplets of each session."""
    import torch

    contents, a, p, n = session_triplets(session_docs, positives_as_anchors)
    if not len(a):
        return {"loss": None, "triplets": 0}
    x = torch.from_numpy(contents)
    optimizer = torch.optim.Adam([w for w in model.parameters() if w.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(len(a))
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(a), generator=generator).numpy()
        for start in range(0, len(order), batch_size):
            sel = order[start : start + batch_size]
            used = np.unique(np.concatenate([a[sel], p[sel], n[sel]]))
            remap = {int(j): i for i, j in enumerate(used)}
            emb = torch.nn.functional.normalize(model(x[used]).reshape(len(used), -1), dim=1)
            ia, ip, in_ = (torch.tensor([remap[int(j)] for j in idx[sel]]) for idx in (a, p, n))
            d_pos = 1 - (emb[ia] * emb[ip]).sum(1)
            d_neg = 1 - (emb[ia] * emb[in_]).sum(1)
            loss = torch.relu(d_pos - d_neg + margin).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    model.eval()
    return {"loss": float(np.mean(losses[-max(1, len(losses) // max(epochs, 1)) :])), "triplets": int(len(a))}


def _project_tuner_fit(model: Any, session_docs: Any, epochs: int) -> dict | None:
    """Fit with ``finetuner.tuner``'s PyTorch backend; None while it (or ``finetuner.data``) is not there yet."""
    try:
        from finetuner.tuner.pytorch import PytorchTuner

        state = PytorchTuner(model, loss="TripletLoss").fit(
            session_docs, epochs=epochs, batch_size=min(64, max(2, len(session_docs)))
        )
    except ImportError as exc:  # a part of finetuner that the Tuner needs is not written yet
        if (exc.name or "").startswith("finetuner"):
            return None
        raise
    model.eval()
    losses = (getattr(state, "history", None) or {}).get("loss") or []
    return {"loss": float(losses[-1])} if losses else {}


def default_train_fn(model: Any, session_docs: Any, epochs: int) -> dict:
    """Fine-tune a torch ``model`` in place on ``session_docs`` for ``epochs``; returns metrics."""
    if framework_of(model) != "torch":
        raise NotImplementedError(
            "the Labeler's default train_fn covers PyTorch models; pass train_fn= for Keras or Paddle"
        )
    metrics = _project_tuner_fit(model, session_docs, epochs)
    if metrics is None:
        metrics = _session_triplet_fit(model, session_docs, epochs)
    return metrics


def default_embed_fn(model: Any, contents: np.ndarray) -> np.ndarray:
    """Embed with a torch model; other frameworks need ``embed_fn=``."""
    if framework_of(model) != "torch":
        raise NotImplementedError(
            "the Labeler's default embed_fn covers PyTorch models; pass embed_fn= for Keras or Paddle"
        )
    return torch_embed(model, contents)
