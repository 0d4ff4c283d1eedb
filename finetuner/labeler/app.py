"""Start the Labeler: prepare the workdir, build the Flow (gateway + pool, index and tuner Executors), serve.

``run(...)`` blocks until the user presses "Finish" in the page, Ctrl-C or SIGTERM, then returns the model
with the newest fitted weights. :class:`Labeler` is the same thing as a context manager, for code that wants
to keep going while the Labeler serves (tests, notebooks). Any framework the Tuner knows works: a model that
does not survive Jina's fork (Keras, CUDA) stays in this process behind a :class:`~finetuner.labeler.host.ModelHost`.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
import uuid
import webbrowser
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from finetuner.labeler.inputs import ModelInputs
from finetuner.labeler.pool import Workdir
from finetuner.labeler.training import EmbedFn, TrainFn, default_embed_fn, make_train_fn

DEFAULT_WORKDIR = "finetuner-labeler"


def _as_document_array(docs: Any) -> Any:
    from docarray import Document, DocumentArray

    if isinstance(docs, DocumentArray):
        return docs
    if isinstance(docs, Iterable) and not isinstance(docs, (str, bytes)):
        items = list(docs)
        if all(isinstance(d, Document) for d in items):
            return DocumentArray(items)
    raise TypeError(
        f"unlabeled_docs must be a DocumentArray (or a list of Documents), got {type(docs).__name__}; "
        "wrap arrays with DocumentArray(Document(tensor=x) for x in X)"
    )


def _check_pool(docs: Any) -> None:
    if len(docs) < 2:
        raise ValueError(f"the Labeler needs at least 2 unlabelled documents, got {len(docs)}")
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise ValueError(f"document id {doc.id!r} appears twice in unlabeled_docs; ids must be unique")
        seen.add(doc.id)


class Labeler:
    """The Labeler's Flow on ``host:port`` over ``workdir``; use as a context manager or start()/close().

    Every request must carry ``token`` (random per run unless given): :attr:`url` holds it, and scripts send it
    as the ``X-Finetuner-Token`` header (see :mod:`finetuner.labeler.guard`).
    """

    def __init__(
        self,
        model: Any,
        unlabeled_docs: Any = None,
        workdir: str | Path = DEFAULT_WORKDIR,
        port: int | None = None,
        host: str = "127.0.0.1",
        embed_fn: EmbedFn | None = None,
        train_fn: TrainFn | None = None,
        max_candidates: int = 2048,
        token: str | None = None,
        preprocess_fn: Any = None,
        collate_fn: Any = None,
        tokenizer: Any = None,
        **settings: Any,
    ) -> None:
        from finetuner.labeler.executors import check_settings

        self.model = model
        self.workdir = Workdir(workdir).create()
        self.host = host
        self.port = port
        self.inputs = ModelInputs.for_model(
            model, preprocess_fn=preprocess_fn, collate_fn=collate_fn, tokenizer=tokenizer
        )
        self.embed_fn = embed_fn or default_embed_fn
        self.train_fn = train_fn or make_train_fn(inputs=self.inputs)
        self.max_candidates = max_candidates
        self.settings = check_settings({k: v for k, v in settings.items() if v is not None})
        self._prepare_pool(unlabeled_docs)
        self._flow: Any = None
        self._host: Any = None
        self._session = uuid.uuid4().hex
        self.token = token or secrets.token_urlsafe(24)

    def _prepare_pool(self, unlabeled_docs: Any) -> None:
        if unlabeled_docs is None:
            if not self.workdir.pool.exists():
                raise ValueError(f"no unlabeled_docs given and {self.workdir.pool} does not exist")
            return
        docs = _as_document_array(unlabeled_docs)
        _check_pool(docs)
        if self.workdir.pool.exists():
            existing = self.workdir.load_pool()
            if [d.id for d in existing] == [d.id for d in docs]:
                return
            if self.workdir.labels.exists() and self.workdir.labels.stat().st_size:
                from finetuner.labeler.store import LabelStore

                store = LabelStore(self.workdir.labels)
                labelled = store.counts()["labelled"]
                store.close()
                if labelled:
                    raise ValueError(
                        f"{self.workdir.root} holds {labelled} labels for a different pool; pass the same "
                        "documents (same ids) to resume, or choose a new workdir"
                    )
        self.workdir.save_pool(docs)

    @property
    def url(self) -> str:
        """The page's address with this run's token (opening it sets the cookie the page then uses)."""
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self) -> Labeler:
        """Build and start the Flow; returns once every Executor answers."""
        from jina import Flow
        from jina.helper import random_port

        from finetuner.labeler.executors import (
            SESSIONS,
            IndexExecutor,
            JoinerExecutor,
            LabelerObjects,
            PoolExecutor,
            TunerExecutor,
        )
        from finetuner.labeler.gateway import LabelerGateway
        from finetuner.labeler.host import ModelHost, needs_host, remote_embed_fn, remote_train_fn
        from finetuner.labeler.store import LabelStore
        from finetuner.ports import check_port_free
        from finetuner.serving.jina_env import prepare_jina

        prepare_jina()
        if self.settings:
            store = LabelStore(self.workdir.labels)
            store.save_settings(self.settings)
            store.close()
        self.workdir.stop_request.unlink(missing_ok=True)
        self.port = int(self.port or random_port())
        check_port_free(self.host, self.port)
        if needs_host(self.model):  # Keras / CUDA: the model stays here, the Executors call over a socket
            self._host = ModelHost(self.model, self.embed_fn, self.train_fn)
            SESSIONS[self._session] = LabelerObjects(
                self._host.handle("tuner"), remote_embed_fn, remote_train_fn, index_model=self._host.handle("index"),
                inputs=self.inputs,
            )
        else:
            SESSIONS[self._session] = LabelerObjects(self.model, self.embed_fn, self.train_fn, inputs=self.inputs)
        root = str(self.workdir.root)
        pid = os.getpid()  # every process of the Flow ends when this one dies (finetuner.labeler.lifetime)
        shared = {"workdir": root, "session": self._session, "labeler_pid": pid}
        self._flow = (
            Flow(host=self.host)
            .config_gateway(
                uses=LabelerGateway, protocol="http", port=self.port,
                uses_with={"workdir": root, "token": self.token, "bind_host": self.host, "public_port": self.port,
                           "labeler_pid": pid},
            )
            .add(name="pool", uses=PoolExecutor, uses_with={"workdir": root, "labeler_pid": pid})
            .add(name="index", uses=IndexExecutor, uses_with={**shared, "max_candidates": self.max_candidates},
                 needs="gateway")
            .add(name="tuner", uses=TunerExecutor, uses_with=shared, needs="gateway")
            .needs_all(uses=JoinerExecutor, uses_with={"labeler_pid": pid})
        )
        self._flow.start()
        return self

    def wait(self, poll_s: float = 0.3) -> None:
        """Block until the page asks to finish (or Ctrl-C / SIGTERM, raised as KeyboardInterrupt)."""
        while not self.workdir.stop_request.exists():
            time.sleep(poll_s)

    def tuned_model(self) -> Any:
        """The model with the newest fitted weights of this workdir loaded (the same object as passed in); a text
        model's tokenizer is remembered for it, so ``finetuner.export(model, path)`` writes it beside the file."""
        if self.workdir.latest_checkpoint() is not None:
            self.workdir.load_checkpoint_into(self.model)
        if self.inputs.tokenizer is not None:
            from finetuner.api import remember_tokenizer

            remember_tokenizer(self.model, self.inputs.tokenizer)
        return self.model

    def close(self) -> None:
        """Stop the Flow and its processes."""
        from finetuner.labeler.executors import SESSIONS

        if self._flow is not None:
            self._flow.close()
            self._flow = None
        if self._host is not None:
            self._host.close()
            self._host = None
        SESSIONS.pop(self._session, None)

    def __enter__(self) -> Labeler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(
    model: Any,
    unlabeled_docs: Any = None,
    workdir: str | Path = DEFAULT_WORKDIR,
    port: int | None = None,
    open_browser: bool = False,
    host: str = "127.0.0.1",
    embed_fn: EmbedFn | None = None,
    train_fn: TrainFn | None = None,
    top_k: int | None = None,
    questions: int | None = None,
    epochs: int | None = None,
    strategy: str | None = None,
    max_candidates: int = 2048,
    token: str | None = None,
    preprocess_fn: Any = None,
    collate_fn: Any = None,
    tokenizer: Any = None,
) -> Any:
    """Label ``unlabeled_docs`` interactively in the browser while ``model`` learns from the labels.

    Serves the Labeler on ``http://host:port/ui/`` (loopback by default; a free port when ``port`` is None)
    and blocks until "Finish" in the page, Ctrl-C or SIGTERM. Labels live in ``workdir`` and survive restarts:
    running again on the same workdir resumes with every label and the newest model. ``top_k``,
    ``questions``, ``epochs`` and ``strategy`` (``uncertainty`` | ``diversity`` | ``random``) set the initial
    settings. ``token``: the secret every request must carry (default: random per run, printed in the URL).
    ``preprocess_fn`` and ``collate_fn`` are ``finetuner.fit``'s data options: they make the model's input from
    the pool's Documents, both for embedding the pool and for training (text models: a ``collate_fn`` that
    tokenises, e.g. ``finetuner.data.tokenizer_collate(tokenizer)``, or ``tokenizer=`` that makes it). A text
    model's tokenizer is saved beside the models the page saves and exported with the returned one. Returns
    ``model`` with the newest fitted weights.
    """
    labeler = Labeler(
        model, unlabeled_docs, workdir=workdir, port=port, host=host, embed_fn=embed_fn, train_fn=train_fn,
        max_candidates=max_candidates, preprocess_fn=preprocess_fn, collate_fn=collate_fn, tokenizer=tokenizer,
        top_k=top_k, questions=questions, epochs=epochs, strategy=strategy, token=token,
    )

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        with labeler:
            print(f"Finetuner Labeler: {labeler.url}  (workdir {labeler.workdir.root})", flush=True)
            if open_browser:
                webbrowser.open(labeler.url)
            try:
                labeler.wait()
            except KeyboardInterrupt:
                pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return labeler.tuned_model()
