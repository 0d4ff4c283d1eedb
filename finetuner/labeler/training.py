"""How the Labeler embeds the pool and trains the model: two small callables built on the project's Tuner.

- ``embed_fn(model, contents) -> np.ndarray`` turns a batch of document contents into (B, D) embeddings;
- ``train_fn(model, session_docs, epochs) -> dict`` fine-tunes ``model`` in place on session-shaped data (query
  Documents whose ``.matches`` carry ``tags['finetuner_label']`` = +1/-1) and returns metrics (e.g. ``loss``).

Both defaults go through ``finetuner.tuner.tuner_class(framework)``: :meth:`BaseTuner.fit` on the session
DocumentArray (``finetuner.data`` turns it into session batches) and :meth:`BaseTuner.embed`. Users can pass
their own callables to :func:`finetuner.labeler.run`.

The rest of the Labeler touches a model only through the framework-neutral helpers here: :func:`get_weights` /
:func:`set_weights` (numpy arrays by name, what checkpoints hold), :func:`clone_model` and :func:`save_model`
(``finetuner.save``: one ONNX Graph file that ``finetuner.load`` reads back into its framework).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetuner.data.content import LABEL_TAG
from finetuner.labeler.remote import RemoteModel
from finetuner.tuner.defaults import PRETRAINED

PRETRAINED_OPTIONS = {"optimizer": PRETRAINED.optimizer, "learning_rate": PRETRAINED.learning_rate}
"""The Tuner options for pretrained encoders (``fit``'s pretrained recipe, :mod:`finetuner.tuner.defaults`): at the
Tuner's default (Adam at 1e-3) a few rounds of labels wreck the pretrained all-MiniLM-L6-v2 (WordNet mAP@R 0.29
zero-shot, 0.02 after 200 labels: benchmarks/labeler.py)."""

EmbedFn = Callable[[Any, np.ndarray], np.ndarray]
TrainFn = Callable[[Any, Any, int], dict]
CONTENT_FIELDS = ("tensor", "blob", "uri", "text", "mime_type")

__all__ = [
    "LABEL_TAG",
    "EmbedFn",
    "TrainFn",
    "default_embed_fn",
    "clone_model",
    "default_train_fn",
    "export_model",
    "get_weights",
    "is_pretrained",
    "make_train_fn",
    "refits_from_start",
    "save_model",
    "set_weights",
    "stack_contents",
    "symmetric_sessions",
]


def _tuner(model: Any, **options: Any) -> Any:
    """A Tuner of the model's own framework around ``model`` (raises ModelTypeError for other objects)."""
    from finetuner.tuner import tuner_class
    from tailor_ir.compiler import require_framework

    return tuner_class(require_framework(model))(model, **options)


def get_weights(model: Any) -> dict[str, np.ndarray]:
    """A copy of ``model``'s weights (parameters and buffers) as numpy arrays, by name (its Tuner's get_weights)."""
    if _is_remote(model):
        return model.call("get_weights")
    return _tuner(model).get_weights()


def set_weights(model: Any, weights: dict[str, np.ndarray]) -> None:
    """Load what :func:`get_weights` returned (for this model or one of the same architecture) into ``model``."""
    if _is_remote(model):
        model.call("set_weights", weights)
        return
    _tuner(model).set_weights(weights)


def clone_model(model: Any) -> Any:
    """A new model of the same architecture and framework (weights not guaranteed: set them).

    A model that came from ``to_embedding``/``fit``/``load`` is rehydrated from its remembered Graph, which
    leaves the original untouched (it may be training in another thread) and keeps the clone saveable with the
    same layer map; other Keras models go through ``keras.models.clone_model``, torch and paddle ones are
    deep-copied.
    """
    import copy

    from finetuner.tailor import graph_of, remember_graph
    from tailor_ir import compiler

    if _is_remote(model):
        return model.clone()
    framework = compiler.require_framework(model)
    graph = graph_of(model)
    if graph is not None:
        clone = compiler.backend(framework).rehydrate(graph, check=False)
        remember_graph(clone, graph)
        return clone
    if framework == "keras":
        from tailor_ir.imports import import_keras

        return import_keras().models.clone_model(model)
    return copy.deepcopy(model)


def save_model(model: Any, path: Any, sample_input: Any = None, tokenizer: Any = None) -> Any:
    """``finetuner.save(model, path)``: the model's Graph with its current weights, framework-neutral.

    ``sample_input`` (e.g. two pool items) is used only for models that did not come from ``to_embedding``.
    ``tokenizer`` (a text model's): written to ``<stem>.tokenizer/`` beside the file, where ``finetuner label
    --model`` and :func:`finetuner.onnx_meta.tokenizer_dir` find it.
    """
    if _is_remote(model):
        saved = Path(model.call("save", str(path), sample_input))
    else:
        from finetuner.persistence import save

        saved = save(model, path, sample_input=sample_input)
    if tokenizer is not None:
        from finetuner.onnx_meta import write_tokenizer_beside

        write_tokenizer_beside(saved, tokenizer)
    return saved


def export_model(model: Any, path: Any, sample_input: Any = None, tokenizer: Any = None) -> Any:
    """``finetuner.export(model, path)``: a serving-ready ONNX embedding model (checked against ``model``), with a
    text model's ``tokenizer`` in its sidecar folder."""
    if _is_remote(model):
        return Path(model.call("export", str(path), sample_input, tokenizer))
    from finetuner.exporting import export

    return export(model, path, sample_input=sample_input, tokenizer=tokenizer)


def _is_remote(model: Any) -> bool:
    """A handle on a model kept in the Labeler's process (see :mod:`finetuner.labeler.host`)."""
    return isinstance(model, RemoteModel)


def stack_contents(docs: Sequence[Any], inputs: Any = None) -> Any:
    """The model input for ``docs``: their contents collated by ``inputs`` (a
    :class:`~finetuner.labeler.inputs.ModelInputs`; default: ``load_content`` stacked into one array)."""
    from finetuner.labeler.inputs import ModelInputs

    if not len(docs):
        return np.empty((0,), dtype=np.float32)
    return (inputs or ModelInputs()).batch(docs)


def symmetric_sessions(session_docs: Any) -> Any:
    """The sessions plus one per relevant match, with that match as the query.

    A Labeler session says "these matches are (not) relevant to this query"; taking relevance as symmetric and
    transitive within a session (as class labels are), each relevant match is also a query whose relevant
    matches are the original query and the other relevant matches, and whose irrelevant ones are the same.
    More anchors from the same labels: the Tuner sees each positive pair from both ends.
    """
    from docarray import Document, DocumentArray

    def shell(doc: Any, label: int | None = None) -> Any:
        """A light new Document with ``doc``'s id and content (a deep copy of each match is slow). Empty fields
        stay out: docarray keeps one content, so an empty ``blob`` would clear the ``text``."""
        values = {name: getattr(doc, name) for name in CONTENT_FIELDS}
        fields = {k: v for k, v in values.items() if v is not None and not (isinstance(v, (str, bytes)) and not v)}
        return Document(id=doc.id, tags={} if label is None else {LABEL_TAG: label}, **fields)

    out = DocumentArray()
    for query in session_docs:
        out.append(query)
        positives = [m for m in query.matches if m.tags.get(LABEL_TAG) == 1]
        negatives = [m for m in query.matches if m.tags.get(LABEL_TAG) == -1]
        if not negatives:
            continue
        for anchor in positives:
            new_query = shell(anchor)
            others = [shell(query, 1)] + [shell(p, 1) for p in positives if p is not anchor]
            new_query.matches.extend(others + [shell(n, -1) for n in negatives])
            out.append(new_query)
    return out


def make_train_fn(
    loss: str | Any = "TripletLoss",
    batch_size: int = 64,
    symmetric: bool = True,
    inputs: Any = None,
    **tuner_options: Any,
) -> TrainFn:
    """A ``train_fn`` that fits with the model's framework's Tuner on the session data.

    ``loss`` and ``tuner_options`` (``learning_rate``, ``optimizer``, ``device``, ``seed`` ...) go to the Tuner
    (when neither ``learning_rate`` nor ``optimizer`` is given, a pretrained encoder gets :data:`PRETRAINED_OPTIONS`,
    and a small network the Tuner's Adam at 1e-3, constant, not ``fit``'s from-scratch Adam 3e-3 with cosine
    decay: on digits, fitted after every 50 labels on top of the previous fit, that recipe leaves all three
    strategies lower at most rounds (uncertainty 0.565 at 500 labels against 0.572; random higher only from 450
    labels) and about twice as spread across seeds: benchmarks/results/labeler_recipe_fit.md against labeler.md);
    ``batch_size`` is rows per batch (whole sessions); ``symmetric`` adds :func:`symmetric_sessions`;
    ``inputs`` (a :class:`~finetuner.labeler.inputs.ModelInputs`) gives the loader its ``preprocess_fn`` and
    ``collate_fn``, the same the index embeds the pool with.
    """
    loader_options = inputs.loader_options() if inputs is not None else {}

    def train_fn(model: Any, session_docs: Any, epochs: int) -> dict:
        data = symmetric_sessions(session_docs) if symmetric else session_docs
        options = dict(tuner_options)
        if not {"learning_rate", "optimizer"} & set(options) and is_pretrained(model):
            options = {**PRETRAINED_OPTIONS, **options}
        state = _tuner(model, loss=loss, **options).fit(data, epochs=epochs, batch_size=batch_size, **loader_options)
        losses = state.history.get("loss") or []
        return {"loss": float(losses[-1])} if losses else {}

    return train_fn


def is_pretrained(model: Any) -> bool:
    """Whether ``model`` (or the model a :class:`RemoteModel` handle points at) is a pretrained encoder by
    ``fit``'s rule, :func:`finetuner.tuner.defaults.is_pretrained`: at least ``PRETRAINED_MIN_PARAMETERS``
    trainable parameters."""
    if _is_remote(model):
        return bool(model.call("is_pretrained"))
    from finetuner.tuner.defaults import is_pretrained as counts_as_pretrained

    return counts_as_pretrained(model)


def refits_from_start(model: Any) -> bool:
    """Whether the Labeler fits ``model`` afresh from its starting weights on all the labels at every fit, rather
    than on top of its previous fit: a pretrained encoder (:func:`is_pretrained`, the rule that gives it ``fit``'s
    pretrained recipe) does, a small network trained from scratch (or a small head on a frozen backbone) does not.

    A pretrained encoder fitted on top of its previous fits sees its first labels again at every round and drifts:
    on WordNet with the pretrained MiniLM (benchmarks/results/labeler_text.md) its held-out mAP@R peaks after 250 of
    600 labels and falls back, while refitted from the pretrained weights it keeps its gain. A small network from
    random weights needs the passes to add up (digits, benchmarks/results/labeler.md)."""
    return is_pretrained(model)


default_train_fn: TrainFn = make_train_fn()
default_train_fn.__doc__ = "Fine-tune ``model`` in place on ``session_docs`` for ``epochs`` with its Tuner."


def default_embed_fn(model: Any, contents: Any) -> np.ndarray:
    """(B, D) float32 embeddings of ``contents`` with the model's framework's Tuner (eval mode, no gradients)."""
    return _tuner(model).embed(contents)
