"""How the Labeler turns pool Documents into model input: the data options of ``finetuner.fit``.

``preprocess_fn(doc) -> content`` (default :func:`finetuner.data.load_content`: the tensor, an image loaded from
``.uri``/``.blob``, or the text) runs per Document and ``collate_fn(contents) -> model input`` per batch (default
:func:`finetuner.data.default_collate`; text models tokenise here, e.g. with
:func:`finetuner.data.tokenizer_collate`). The same two functions drive the pool's embedding in the index and the
training batches of the tuner, so a text or image pool is labelled with exactly the inputs ``fit`` would train on.
Batches are built chunk by chunk, never for the whole pool at once: a folder of images is read from disk as it
is embedded, and texts are padded only to the longest text of their chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ModelInputs"]


@dataclass(frozen=True)
class ModelInputs:
    """``preprocess_fn`` and ``collate_fn`` as ``finetuner.fit`` takes them, plus the model's input names.

    ``input_names``: when given (the names of a tailored model's graph inputs), keys of a collated dict that the
    model does not take are dropped, e.g. the ``token_type_ids`` a BERT tokenizer adds for a model exported
    with ``input_ids`` and ``attention_mask`` only.
    """

    preprocess_fn: Callable[[Any], Any] | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    input_names: tuple[str, ...] | None = None

    def contents(self, docs: Sequence[Any]) -> list[Any]:
        """Each Document's content (``preprocess_fn``, or ``load_content``); errors name the Document."""
        from finetuner.data.content import load_content

        preprocess = self.preprocess_fn or load_content
        out = []
        for doc in docs:
            try:
                out.append(preprocess(doc))
            except (ValueError, OSError) as exc:
                raise ValueError(f"document {doc.id}: {exc}") from None
        return out

    def collate(self, contents: list[Any]) -> Any:
        """One batch of model input from contents: an array or a dict of arrays (raises for anything else)."""
        from finetuner.data.content import default_collate

        batch = (self.collate_fn or default_collate)(contents)
        if isinstance(batch, Mapping):
            if self.input_names is not None:
                batch = {k: v for k, v in batch.items() if k in self.input_names}
            return batch
        if isinstance(batch, np.ndarray) or hasattr(batch, "shape"):
            return batch
        kind = type(contents[0]).__name__ if contents else "nothing"
        raise ValueError(
            f"the pool's content is {kind}, not arrays: for text pass collate_fn= that tokenises it (e.g. "
            "finetuner.data.tokenizer_collate(tokenizer)), for other content a preprocess_fn= or collate_fn= that "
            "gives the model's input"
        )

    def batch(self, docs: Sequence[Any]) -> Any:
        """The model input for ``docs`` (what :meth:`contents` then :meth:`collate` give)."""
        if not len(docs):
            raise ValueError("no documents to make a batch of")
        return self.collate(self.contents(docs))

    @property
    def tokenizer(self) -> Any:
        """The tokenizer inside ``collate_fn`` (one made by ``finetuner.data.tokenizer_collate``), or None."""
        return getattr(self.collate_fn, "tokenizer", None)

    def loader_options(self) -> dict[str, Any]:
        """The options for ``Tuner.fit``'s loader, so that training sees the same inputs as the index."""
        options: dict[str, Any] = {"collate_fn": self.collate}
        if self.preprocess_fn is not None:
            options["preprocess_fn"] = self.preprocess_fn
        return options

    @classmethod
    def for_model(
        cls, model: Any, preprocess_fn: Callable | None = None, collate_fn: Callable | None = None,
        tokenizer: Any = None,
    ) -> ModelInputs:
        """The inputs of ``model``: its graph's input names when it came from ``to_embedding``/``load``.

        ``tokenizer`` (``fit``'s option; not with ``collate_fn``) makes the ``collate_fn``:
        ``finetuner.data.tokenizer_collate(tokenizer)`` keeping the model's inputs.
        """
        from finetuner.tailor import graph_of

        graph = graph_of(model)
        names = tuple(graph.input_names) if graph is not None else None
        if tokenizer is not None:
            if collate_fn is not None:
                raise TypeError("pass either tokenizer or collate_fn, not both (tokenizer makes the collate_fn)")
            from finetuner.data import tokenizer_collate

            collate_fn = tokenizer_collate(tokenizer, input_names=names)
        return cls(preprocess_fn=preprocess_fn, collate_fn=collate_fn, input_names=names)
