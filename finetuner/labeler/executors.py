"""The Labeler's three Executors: the pool (documents + labels), the index (embeddings + questions), the tuner.

All three read the same workdir. Python objects that cannot travel as YAML (the model, ``embed_fn``,
``train_fn``) are registered in :data:`SESSIONS` under a key before the Flow starts; Jina forks its Executor
processes, so they inherit the registry. A model that does not survive a fork (Keras, CUDA) is registered as
:class:`~finetuner.labeler.host.RemoteModel` handles instead, and all model work happens in the Labeler's process.
The Executors touch models only through the framework-neutral helpers of :mod:`finetuner.labeler.training`. Each endpoint returns a dict (the gateway reads it from the
response's ``__results__``) and raises on bad input, which fails the request and changes nothing.
"""

import asyncio
import copy
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jina import DocumentArray, Executor, requests

from finetuner.labeler.inputs import ModelInputs
from finetuner.labeler.lifetime import die_with_parent
from finetuner.labeler.pool import Workdir, is_text_pool, render_card
from finetuner.labeler.store import LabelError, LabelStore, parse_labels
from finetuner.labeler.strategies import (
    STRATEGIES,
    knn,
    l2_normalize,
    labelled_map,
    pair_similarities,
    select_queries,
)
from finetuner.labeler.training import (
    LABEL_TAG,
    EmbedFn,
    TrainFn,
    clone_model,
    export_model,
    get_weights,
    refits_from_start,
    save_model,
    set_weights,
    stack_contents,
)

DEFAULT_SETTINGS = {"top_k": 8, "questions": 3, "epochs": 5, "strategy": "uncertainty"}
TEXT_POOL_SETTINGS = {"strategy": "diversity", "epochs": 2}
"""What a pool of texts starts with where the user chose nothing (benchmarks/results/labeler_text.md, WordNet with the
pretrained MiniLM). ``diversity``: above uncertainty on both measures, and over 600 labels the one that beats random
on the search over the pool itself; uncertainty stays the default for arrays and images, where it beats the others
(benchmarks/results/labeler.md). 2 epochs per fit: the default 5 (chosen on digits, a small model trained from
scratch), fitted after every 50 labels, overfits the pretrained encoder: over 600 labels diversity's pool mAP@R is
0.015 lower on average, held out 0.018 (seeds 0-1, against the 2-epoch curves the benchmark measures)."""


def pool_defaults(docs: Any) -> dict[str, Any]:
    """The settings a pool starts with: :data:`DEFAULT_SETTINGS`, with :data:`TEXT_POOL_SETTINGS` over them when
    every document is text."""
    return defaults_for(is_text_pool(docs))


def defaults_for(text: bool) -> dict[str, Any]:
    """:func:`pool_defaults` of a pool that is all text (``text``) or not."""
    return {**DEFAULT_SETTINGS, **TEXT_POOL_SETTINGS} if text else dict(DEFAULT_SETTINGS)


def settings_in_force(defaults: dict[str, Any], store: LabelStore) -> dict[str, Any]:
    """The settings every Executor uses where a caller leaves one out: the saved ones over the pool's
    :func:`pool_defaults` (what the page shows)."""
    return {**defaults, **store.settings()}


LIMITS = {"top_k": (1, 50), "questions": (1, 20), "epochs": (1, 100)}
RESERVATION_SECONDS = 300.0


@dataclass
class LabelerObjects:
    """What the index and the tuner need besides the workdir."""

    model: Any
    embed_fn: EmbedFn
    train_fn: TrainFn
    index_model: Any = None  # the index's own model, when it cannot simply be the forked copy of ``model``
    inputs: ModelInputs = field(default_factory=ModelInputs)  # how pool Documents become model input


SESSIONS: dict[str, LabelerObjects] = {}


def _objects(key: str) -> LabelerObjects:
    try:
        return SESSIONS[key]
    except KeyError:
        raise RuntimeError(
            f"Labeler session {key!r} is not registered in this process: the Labeler's Executors must be "
            "started by finetuner.labeler.run (which needs the 'fork' multiprocessing start method)"
        ) from None


def _one_thread_for_torch() -> None:
    """Two processes share the CPU with the UI: keep torch from grabbing every core in each of them."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def check_settings(values: dict) -> dict:
    """Validate settings; raise :class:`LabelError` naming the bad one. Returns them with ints as ints."""
    clean = {}
    for key, value in values.items():
        if key == "strategy":
            if value not in STRATEGIES:
                raise LabelError(f"strategy must be one of {', '.join(STRATEGIES)}, got {value!r}")
            clean[key] = value
        elif key in LIMITS:
            low, high = LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise LabelError(f"{key} must be a whole number, got {value!r}")
            if not low <= int(value) <= high:
                raise LabelError(f"{key} must be between {low} and {high}, got {int(value)}")
            clean[key] = int(value)
        else:
            raise LabelError(f"unknown setting {key!r}; known: {', '.join(DEFAULT_SETTINGS)}")
    return clean


class JoinerExecutor(Executor):
    """The Flow's join step (``needs_all``), which would otherwise be a bare Executor process that outlives a
    killed Labeler: it only ends with the Labeler's process."""

    def __init__(self, labeler_pid: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if labeler_pid:
            die_with_parent(labeler_pid)


class PoolExecutor(Executor):
    """The unlabelled pool and the label store: validates and persists labels, renders cards, exports sessions."""

    def __init__(self, workdir: str, labeler_pid: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if labeler_pid:
            die_with_parent(labeler_pid)
        self.workdir = Workdir(workdir)
        self.docs = self.workdir.load_pool()
        self.ids = {doc.id: i for i, doc in enumerate(self.docs)}
        self.store = LabelStore(self.workdir.labels)
        self.defaults = pool_defaults(self.docs)  # saved settings override
        self._cards: dict[str, dict] = {}

    @requests(on="/labels")
    def submit(self, parameters: dict, **kwargs: Any) -> dict:
        """Validate every label of the submit, then commit them all as one round (or nothing on error)."""
        labels = parse_labels(parameters.get("labels"), self.ids)
        round_id = self.store.submit(labels, client=parameters.get("client"))
        return {"round": round_id, "stored": len(labels), **self.store.counts()}

    @requests(on="/cards")
    def cards(self, parameters: dict, **kwargs: Any) -> dict:
        """Cards for the given document ids (unknown ids raise)."""
        out = {}
        for doc_id in parameters.get("ids") or []:
            if doc_id not in self.ids:
                raise LabelError(f"unknown document id {doc_id!r}")
            if doc_id not in self._cards:
                self._cards[doc_id] = render_card(self.docs[self.ids[doc_id]])
            out[doc_id] = self._cards[doc_id]
        return {"cards": out}

    @requests(on="/progress")
    def progress(self, **kwargs: Any) -> dict:
        """Label counts and the pool size."""
        return {**self.store.counts(), "pool": len(self.docs)}

    @requests(on="/settings")
    def settings(self, parameters: dict, **kwargs: Any) -> dict:
        """Return the settings; with ``parameters['update']``, validate and persist those first."""
        update = parameters.get("update")
        if update is not None:
            if not isinstance(update, dict):
                raise LabelError("settings must be an object")
            self.store.save_settings(check_settings(update))
        return {"settings": settings_in_force(self.defaults, self.store)}

    def session_docs(self) -> DocumentArray:
        """The labels as session data: one query Document per labelled query, its labelled matches in .matches."""
        sessions: dict[str, Any] = {}
        for label in self.store.labels():
            if label.query_id not in sessions:
                query = copy.deepcopy(self.docs[self.ids[label.query_id]])
                query.matches.clear()
                sessions[label.query_id] = query
            match = copy.deepcopy(self.docs[self.ids[label.match_id]])
            match.matches.clear()
            match.tags[LABEL_TAG] = label.label
            sessions[label.query_id].matches.append(match)
        return DocumentArray(list(sessions.values()))

    @requests(on="/sessions")
    def sessions(self, docs: DocumentArray, **kwargs: Any) -> DocumentArray:
        """The session DocumentArray in the response's docs (what the tuner trains on)."""
        return self.session_docs()

    @requests(on="/export")
    def export(self, **kwargs: Any) -> dict:
        """Write the session DocumentArray to ``exports/labels.bin``; return its path and size."""
        from tailor_ir.files import atomic_write_bytes

        sessions = self.session_docs()
        path = self.workdir.exports / "labels.bin"
        atomic_write_bytes(path, sessions.to_bytes(protocol="protobuf", compress="zlib"))
        return {"path": str(path), "queries": len(sessions), "labels": sum(len(d.matches) for d in sessions)}


class IndexExecutor(Executor):
    """Embeddings of the pool under the current model, nearest neighbours, and the active-learning choice.

    After each fit (a new checkpoint in the workdir) the pool is re-embedded in a background thread, chunk by
    chunk; questions keep coming from the previous embeddings until the new ones are complete, then swap.
    """

    def __init__(
        self, workdir: str, session: str, max_candidates: int = 2048, chunk: int = 512, labeler_pid: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if labeler_pid:
            die_with_parent(labeler_pid)
        _one_thread_for_torch()
        objects = _objects(session)
        self.workdir = Workdir(workdir)
        self.embed_fn = objects.embed_fn
        self.inputs = objects.inputs
        self.model = objects.model if objects.index_model is None else objects.index_model
        self.max_candidates = int(max_candidates)
        self.chunk = int(chunk)
        docs = self.workdir.load_pool()
        self.ids = [doc.id for doc in docs]
        self.index_of = {doc_id: i for i, doc_id in enumerate(self.ids)}
        self.docs = docs  # made into model input chunk by chunk (images are read, texts tokenised, as needed)
        self.store = LabelStore(self.workdir.labels)
        self.defaults = pool_defaults(docs)
        record = self.workdir.load_checkpoint_into(self.model)
        self.version = record["version"] if record else 0
        self.embeddings = l2_normalize(self._embed_all(self.model))
        self._reembed = {"target": self.version, "done": len(self.ids), "total": len(self.ids)}
        self._guard = threading.Lock()
        self._reserved: dict[int, tuple[str, float]] = {}
        self._rng = np.random.default_rng(0)
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._candidates: dict = {}

    def _candidate_sims(self, embeddings: np.ndarray, version: int, k: int, exclude: np.ndarray, n: int):
        """Candidates and their top-k similarities, cached per (model version, k) until few remain unasked."""
        cached = self._candidates
        if cached.get("key") == (version, k):
            remaining = int((~exclude[cached["idx"]]).sum())
            if remaining >= max(8 * n, min(256, int((~exclude).sum()))):
                return cached["idx"], cached["sims"]
        available = np.flatnonzero(~exclude)
        if len(available) > self.max_candidates:
            available = self._rng.choice(available, size=self.max_candidates, replace=False)
        _, sims = knn(embeddings, available, k)
        self._candidates = {"key": (version, k), "idx": available, "sims": sims}
        return available, sims

    def _embed_all(self, model: Any, progress: dict | None = None) -> np.ndarray:
        parts = []
        for start in range(0, len(self.docs), self.chunk):
            batch = self.inputs.batch(self.docs[start : start + self.chunk])
            parts.append(np.asarray(self.embed_fn(model, batch), np.float32))
            if progress is not None:
                progress["done"] = min(start + self.chunk, len(self.docs))
                time.sleep(0)  # let request threads in between chunks
        return np.concatenate(parts)

    def _reembed_to(self, record: dict) -> None:
        # Only this thread (one at a time, see refresh) uses self.model after __init__: questions come from
        # self.embeddings, so the new weights can go straight into the model, whatever its framework.
        try:
            self.workdir.load_checkpoint_into(self.model, record)
            embeddings = l2_normalize(self._embed_all(self.model, self._reembed))
            with self._guard:
                self.embeddings, self.version = embeddings, record["version"]
        except Exception:  # noqa: BLE001 - reported through /status, the old embeddings stay in use
            self._error = traceback.format_exc(limit=3)

    def refresh(self) -> None:
        """Start re-embedding if a newer checkpoint exists and no re-embedding is running."""
        record = self.workdir.latest_checkpoint()
        if record is None or record["version"] <= self._reembed["target"]:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._reembed = {"target": record["version"], "done": 0, "total": len(self.ids)}
        self._thread = threading.Thread(target=self._reembed_to, args=(record,), daemon=True)
        self._thread.start()

    def _labelled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = self.store.labels()
        q = np.fromiter((self.index_of[lab.query_id] for lab in labels), np.int64, len(labels))
        m = np.fromiter((self.index_of[lab.match_id] for lab in labels), np.int64, len(labels))
        y = np.fromiter((lab.label for lab in labels), np.int64, len(labels))
        return q, m, y

    @requests(on="/questions")
    def questions(self, parameters: dict, **kwargs: Any) -> dict:
        """The next questions: ``[{"query_id", "matches": [{"id", "score"}]}]``, chosen by the current model.

        ``parameters``: ``n``, ``k``, ``strategy``, ``client``; ``pin`` (a query id) asks the same query again
        with its next unlabelled matches.
        """
        self.refresh()
        settings = settings_in_force(self.defaults, self.store)
        n = int(parameters.get("n", settings["questions"]))
        k = int(parameters.get("k", settings["top_k"]))
        strategy = parameters.get("strategy") or settings["strategy"]
        check_settings({"questions": n, "top_k": k, "strategy": strategy})
        client = str(parameters.get("client") or "")
        pin = parameters.get("pin")
        with self._guard:
            embeddings, version = self.embeddings, self.version
        q, m, y = self._labelled()
        if pin:
            if pin not in self.index_of:
                raise LabelError(f"unknown document id {pin!r} to pin")
            query = np.asarray([self.index_of[pin]])
            exclude = np.zeros(len(self.ids), dtype=bool)
            exclude[m[q == query[0]]] = True
        else:
            now = time.time()
            self._reserved = {
                i: (c, t) for i, (c, t) in self._reserved.items() if c != client and now - t < RESERVATION_SECONDS
            }
            asked = np.zeros(len(self.ids), dtype=bool)
            asked[q] = True
            asked[list(self._reserved)] = True
            pos, neg = pair_similarities(embeddings, q, m, y)
            cache = self._candidate_sims(embeddings, version, k, asked, n) if strategy == "uncertainty" else None
            query = select_queries(
                embeddings, n, strategy, k=k, exclude=asked, seeds=np.unique(q), pos_sims=pos, neg_sims=neg,
                max_candidates=self.max_candidates, rng=self._rng, candidate_sims=cache,
            )
            for i in query:
                self._reserved[int(i)] = (client, now)
            exclude = None
        if not len(query):
            return {"questions": [], "model_version": version, "strategy": strategy}
        neighbours, sims = knn(embeddings, query, k, exclude=exclude)
        questions = [
            {
                "query_id": self.ids[qi],
                "matches": [
                    {"id": self.ids[j], "score": round(float(s), 4)} for j, s in zip(row, srow) if np.isfinite(s)
                ],
            }
            for qi, row, srow in zip(query, neighbours, sims)
        ]
        return {"questions": questions, "model_version": version, "strategy": strategy}

    @requests(on="/status")
    def status(self, **kwargs: Any) -> dict:
        """Model version in use, re-embedding progress and the labelled-match mAP under the current model."""
        self.refresh()
        with self._guard:
            embeddings, version = self.embeddings, self.version
        q, m, y = self._labelled()
        score = labelled_map(embeddings, q, m, y)
        return {
            "model_version": version,
            "reembedding": {**self._reembed, "running": bool(self._thread and self._thread.is_alive())},
            "label_map": score,
            "error": self._error,
        }


class TunerExecutor(Executor):
    """Fine-tunes the model on the session data in a background thread; writes a checkpoint after each fit.

    Framework-neutral: checkpoints hold the model's weights as numpy arrays (its Tuner's ``get_weights``), and
    "save" writes ``finetuner.save``'s ONNX Graph file (``exports/model.onnx``, read back by ``finetuner.load``),
    plus on request ``finetuner.export``'s serving model (``exports/embedding.onnx``); a text model's tokenizer
    goes beside both, as ``finetuner.export`` writes it.

    Every fit trains on all the labels so far. A pretrained encoder starts each fit from the weights it was handed
    (not from its previous fit, where it would see its first labels again every round and drift); a small network
    trained from scratch keeps training on top of its previous fit (:func:`~finetuner.labeler.training.refits_from_start`).
    """

    def __init__(self, workdir: str, session: str, labeler_pid: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if labeler_pid:
            die_with_parent(labeler_pid)
        _one_thread_for_torch()
        objects = _objects(session)
        self.workdir = Workdir(workdir)
        self.model = objects.model
        self.train_fn = objects.train_fn
        self.inputs = objects.inputs
        # a pretrained encoder refits from the weights it was handed, read before any checkpoint of this workdir
        self._start = get_weights(self.model) if refits_from_start(self.model) else None
        record = self.workdir.load_checkpoint_into(self.model)
        self._state: dict[str, Any] = {
            "running": False,
            "fits": 0,
            "version": record["version"] if record else 0,
            "metrics": record["metrics"] if record else {},
            "error": None,
            "started": None,
            "finished": None,
        }
        self._guard = threading.Lock()
        # held by a fit from its start to its checkpoint, and by a save of self.model: a save never reads
        # half-trained weights, and a fit waits for a save in progress
        self._model_lock = threading.Lock()
        self._untrained: dict | None = None  # version 0's weights, kept while the first fit runs
        self._spare: Any = None  # a clone that a save during a fit loads the newest finished weights into
        self._sample: Any = None
        self.store = LabelStore(self.workdir.labels)
        self._defaults: dict[str, Any] | None = None  # the pool's, looked up when a caller first leaves one out

    def _pool_defaults(self) -> dict[str, Any]:
        if self._defaults is None:
            self._defaults = defaults_for(self.workdir.pool_is_text())  # pool.json: the pool itself stays unread
        return self._defaults

    def _fit(self, sessions: DocumentArray, epochs: int) -> None:
        with self._model_lock:
            try:
                if self._start is not None:
                    set_weights(self.model, self._start)
                metrics = dict(self.train_fn(self.model, sessions, epochs) or {})
                metrics.update(epochs=epochs, queries=len(sessions), labels=sum(len(d.matches) for d in sessions))
                record = self.workdir.write_checkpoint(get_weights(self.model), metrics)
                update = {"version": record["version"], "metrics": metrics, "error": None}
                self._untrained = None
            except Exception as exc:  # noqa: BLE001 - reported through /status
                update = {"error": f"{type(exc).__name__}: {exc}"}
            with self._guard:
                self._state.update(update, running=False, finished=time.time())
                self._state["fits"] += 1

    @requests(on="/fit")
    async def fit(self, docs: DocumentArray, parameters: dict, **kwargs: Any) -> dict:
        """Start a fit on ``docs`` (session data) in the background; refuses while one runs."""
        epochs = parameters.get("epochs")
        if epochs is None:
            epochs = settings_in_force(self._pool_defaults(), self.store)["epochs"]
        epochs = check_settings({"epochs": epochs})["epochs"]
        if not any(len(d.matches) for d in docs):
            raise LabelError("nothing to fit on yet: label some matches first")
        with self._guard:
            if self._state["running"]:
                return {"started": False, "reason": "a fit is already running", **self._state}
            if self._state["version"] == 0 and self._untrained is None and self._model_lock.acquire(blocking=False):
                try:  # no checkpoint to fall back on while the first fit runs: keep the untrained weights
                    self._untrained = self._start if self._start is not None else get_weights(self.model)
                finally:
                    self._model_lock.release()
            self._state.update(running=True, started=time.time(), error=None)
        threading.Thread(target=self._fit, args=(docs, epochs), daemon=True).start()
        return {"started": True, **self._state}

    @requests(on="/fit_status")
    async def fit_status(self, **kwargs: Any) -> dict:
        """Whether a fit runs, how many finished, the newest checkpoint's version and metrics."""
        with self._guard:
            return dict(self._state)

    def _sample_input(self) -> Any:
        """Two pool items as the model takes them: what finetuner.save traces a model without a Graph with."""
        if self._sample is None:
            self._sample = stack_contents(self.workdir.load_pool()[:2], self.inputs)
        return self._sample

    def _write(self, model: Any, export: bool) -> dict:
        tokenizer = self.inputs.tokenizer  # a text model's, written beside both files
        out = {"path": str(save_model(model, self.workdir.exports / "model.onnx", self._sample_input(), tokenizer))}
        if export:
            out["export_path"] = str(
                export_model(model, self.workdir.exports / "embedding.onnx", self._sample_input(), tokenizer)
            )
        return out

    def _save(self, export: bool) -> dict:
        if self._model_lock.acquire(blocking=False):  # no fit runs: self.model holds the newest fitted weights
            try:
                with self._guard:
                    version = self._state["version"]
                return {**self._write(self.model, export), "version": version}
            finally:
                self._model_lock.release()
        # a fit is running (its weights are half-trained): save the newest finished weights through a clone
        record = self.workdir.latest_checkpoint()
        weights = self.workdir.read_checkpoint(record) if record else self._untrained
        if weights is None:
            raise RuntimeError("a fit is running and no finished weights are at hand; save again when it is done")
        if self._spare is None:
            self._spare = clone_model(self.model)
        set_weights(self._spare, weights)
        return {**self._write(self._spare, export), "version": record["version"] if record else 0}

    @requests(on="/save")
    async def save(self, parameters: dict, **kwargs: Any) -> dict:
        """Save the newest fitted model with ``finetuner.save`` to ``exports/model.onnx`` (``finetuner.load``
        reads it back into its framework); with ``parameters['export']`` also ``finetuner.export`` it to
        ``exports/embedding.onnx`` for serving. Returns ``{"path", "version"[, "export_path"]}``."""
        return await asyncio.to_thread(self._save, bool(parameters.get("export")))
