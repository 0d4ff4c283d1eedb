"""An exported embedding model loaded into onnxruntime, and the checks that turn Documents into its inputs.

No Jina here: :class:`EmbeddingRuntime` is what :class:`~finetuner.serving.executor.OnnxEmbedder` wraps, and
what a benchmark or a test can use directly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from finetuner.onnx_meta import (
    EmbeddingModelMeta,
    InputSpec,
    ModelMetadataError,
    TextEncoder,
    graph_inputs,
    graph_output_dim,
    load_tokenizer,
)
from finetuner.serving.images import ImageError, ImagePreprocessing, ImageSource
from tailor_ir.files import ChecksumError, verify


class ModelFileError(RuntimeError):
    """The model file is missing, unreadable, or not a valid ONNX embedding model."""


class DocumentError(ValueError):
    """One or more Documents of a request cannot be embedded; the message names each of them."""


def available_providers(prefer_gpu: bool = True) -> list[str]:
    """CUDA when onnxruntime offers it (and ``prefer_gpu``), else CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    order = ["CUDAExecutionProvider", "CPUExecutionProvider"] if prefer_gpu else ["CPUExecutionProvider"]
    return [p for p in order if p in have] or ["CPUExecutionProvider"]


def check_model_file(path: str | os.PathLike) -> tuple[onnx.ModelProto, EmbeddingModelMeta]:
    """Load the model's graph and metadata, or raise ModelFileError saying what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"Model file {path} does not exist. Pass the path of an .onnx file written by finetuner.export."
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFileError(
            f"Model file {path} is not a readable ONNX model ({type(exc).__name__}: {exc}). "
            "It may be truncated or corrupt: export it again with finetuner.export."
        ) from exc
    if not model.graph.node or not model.graph.output:
        raise ModelFileError(f"Model file {path} holds no graph: export it again with finetuner.export.")
    try:
        verify(model, str(path))
    except ChecksumError as exc:
        raise ModelFileError(f"{exc}. Export it again with finetuner.export.") from exc
    try:
        meta = EmbeddingModelMeta.from_model(model, source=str(path))
    except ModelMetadataError as exc:
        meta = _meta_from_graph(model, path, exc)
    if meta.kind == "text":
        folder = path.with_name(meta.preprocess["tokenizer"])
        if not folder.is_dir():
            raise ModelFileError(
                f"The text model {path} needs its tokenizer folder {folder}: copy it beside the model file."
            )
    return model, meta


def _meta_from_graph(model: onnx.ModelProto, path: Path, why: Exception) -> EmbeddingModelMeta:
    """Serve a plain ONNX model (no finetuner metadata) when its single output has a static width."""
    dim = graph_output_dim(model)
    if len(model.graph.output) != 1 or not dim:
        raise ModelFileError(f"{why} Without it, the model must have one output with a fixed last dimension.")
    inputs = graph_inputs(model)
    kind = "image" if len(inputs) == 1 and len(inputs[0].shape) == 4 else "vector"
    preprocess: dict[str, Any] = {"kind": kind, "layout": "NCHW"} if kind == "image" else {"kind": kind}
    return EmbeddingModelMeta("unknown", dim, tuple(inputs), preprocess, False, "unknown")


def _kind_matches(given: np.dtype, wanted: np.dtype) -> bool:
    """Floats feed float inputs, integers integer inputs (widths are cast); nothing crosses kinds."""
    if wanted.kind == "f":
        return given.kind == "f"
    if wanted.kind in "iu":
        return given.kind in "iu"
    return given.kind == wanted.kind


class EmbeddingRuntime:
    """An onnxruntime session over an exported embedding model: validates inputs, embeds batches."""

    def __init__(
        self, model_path: str | os.PathLike, threads: int = 0, providers: Sequence[str] | None = None,
        batch_size: int = 64, session_choice: str = "quiet", image_source: ImageSource | None = None,
    ) -> None:
        """``threads``: intra-op threads (0: one per physical core); ``session_choice``: the onnxruntime options
        (``finetuner.serving.calibrate.SESSION_CHOICES``: ``quiet`` (idle threads sleep), ``spinning``,
        ``extended``), or ``auto`` to time each on a sample batch now and keep the fastest (see
        ``self.calibration``); ``image_source``: where an image model may read ``doc.uri`` from (default:
        ``data:`` URIs only)."""
        import onnxruntime as ort

        from finetuner.optimize import sample_feed
        from finetuner.serving.calibrate import AUTO, calibrate, check_choice, options_for

        self.path = Path(model_path)
        model, self.meta = check_model_file(self.path)
        self.batch_size = int(batch_size)
        providers = list(providers or available_providers())
        self.calibration: dict[str, Any] = {"choice": check_choice(session_choice), "seconds": {}}
        try:
            if session_choice == AUTO:
                feed = sample_feed(model, batch=min(self.batch_size, 8), seq_len=64)
                self.session, choice, seconds = calibrate(self.path, feed, threads, providers)
                self.calibration = {"choice": choice, "seconds": seconds}
            else:
                self.session = ort.InferenceSession(str(self.path), options_for(session_choice, threads), providers=providers)
        except Exception as exc:
            raise ModelFileError(
                f"onnxruntime cannot load {self.path} ({exc}). Export the model again with finetuner.export."
            ) from exc
        from finetuner.precision import PrecisionChoice

        self.precision = PrecisionChoice.from_model(model)  # what export(quantize='auto') chose, if it did
        del model
        self.inputs = [
            InputSpec(i.name, _ort_dtype(i.type), tuple(d if isinstance(d, int) else str(d) for d in i.shape))
            for i in self.session.get_inputs()
        ]
        if self.meta.input_names != [spec.name for spec in self.inputs]:
            raise ModelFileError(
                f"{self.path}: its metadata lists inputs {self.meta.input_names} but the graph takes "
                f"{[spec.name for spec in self.inputs]}. Export the model again with finetuner.export."
            )
        self.output_name = self.session.get_outputs()[0].name
        self.tokenizer: TextEncoder | None = (
            load_tokenizer(self.path, self.meta) if self.meta.kind == "text" else None
        )
        self.image_source = image_source or ImageSource()
        self.image_preprocessing: ImagePreprocessing | None = (
            self.meta.image_preprocessing() if self.meta.kind == "image" else None
        )

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Embed one already validated feed, in chunks of ``batch_size``."""
        n = len(next(iter(feed.values())))
        parts = [
            self.session.run([self.output_name], {k: v[i : i + self.batch_size] for k, v in feed.items()})[0]
            for i in range(0, n, self.batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def feed_from_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """One feed of ``texts``, padded to the longest of them."""
        assert self.tokenizer is not None
        return self._text_feed(self.tokenizer(texts))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts in batches of similar token length, each padded only to its own longest text.

        The texts are tokenized once, ordered by length and cut where :func:`length_batches` says (at most
        ``batch_size`` each); the embeddings are put back in the request's order. A request mixing short and long
        texts no longer pads every short text to the longest one.
        """
        assert self.tokenizer is not None
        tokens = self.tokenizer.tokenize(texts)
        order = np.argsort([len(ids) for ids, _ in tokens], kind="stable")
        out = np.empty((0, self.meta.output_dim), dtype=np.float32)
        for start, stop in length_batches([len(tokens[i][0]) for i in order], self.batch_size):
            rows = order[start:stop]
            feed = self._text_feed(self.tokenizer.pad([tokens[i] for i in rows]))
            part = self.session.run([self.output_name], feed)[0]
            if start == 0:
                out = np.empty((len(tokens), *part.shape[1:]), dtype=part.dtype)
            out[rows] = part
        return out

    def _text_feed(self, encoded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [spec.name for spec in self.inputs if spec.name not in encoded]
        if missing:
            raise ModelFileError(f"The tokenizer gives no input named {', '.join(missing)} for {self.path}.")
        return {spec.name: encoded[spec.name].astype(spec.dtype, copy=False) for spec in self.inputs}

    def feed_from_tensors(self, ids: Sequence[str], tensors: Sequence[Any]) -> dict[str, np.ndarray]:
        """Validate each Document's tensor against the first input and stack them; name every bad Document."""
        spec = self.inputs[0]
        wanted = np.dtype(spec.dtype)
        errors: list[str] = []
        arrays: list[np.ndarray] = []
        ref_shape: tuple[int, ...] | None = None
        for doc_id, tensor in zip(ids, tensors):
            if tensor is None:
                errors.append(f"Document {doc_id!r} has no tensor{' and no text' if self.tokenizer else ''}")
                continue
            array = np.asarray(tensor)
            if not _kind_matches(array.dtype, wanted):
                errors.append(f"Document {doc_id!r} has a {array.dtype} tensor; input {spec.name!r} takes {wanted}")
                continue
            expected = spec.shape[1:]
            fixed_ok = len(array.shape) == len(expected) and all(
                not isinstance(e, int) or e == a for e, a in zip(expected, array.shape)
            )
            if not fixed_ok:
                shown = str(tuple(expected))
                errors.append(
                    f"Document {doc_id!r} has a tensor of shape {tuple(array.shape)}; input {spec.name!r} "
                    f"takes {shown} per Document"
                )
                continue
            if ref_shape is None:
                ref_shape = array.shape
            elif array.shape != ref_shape:
                errors.append(
                    f"Document {doc_id!r} has shape {tuple(array.shape)} but earlier Documents of the request "
                    f"have {tuple(ref_shape)}: send tensors of one shape per request"
                )
                continue
            cast = array.astype(wanted, copy=False)
            if wanted.kind == "f" and not np.isfinite(cast).all():
                errors.append(_non_finite_message(doc_id, array, wanted))
                continue
            arrays.append(cast)
        if errors:
            raise DocumentError("; ".join(errors) + ".")
        feed = {spec.name: np.stack(arrays)}
        for other in self.inputs[1:]:
            feed[other.name] = self._derived_input(other, feed[spec.name])
        return feed

    def _derived_input(self, spec: InputSpec, first: np.ndarray) -> np.ndarray:
        """Secondary inputs of a token model fed with ids only: a mask of ones, token types of zeros."""
        if "mask" in spec.name:
            return np.ones(first.shape, dtype=spec.dtype)
        if "type" in spec.name:
            return np.zeros(first.shape, dtype=spec.dtype)
        raise DocumentError(
            f"The model takes inputs {[s.name for s in self.inputs]}; a Document's tensor feeds only "
            f"{self.inputs[0].name!r}, and {spec.name!r} cannot be derived from it."
        )

    def embed_documents(self, docs: Any) -> np.ndarray:
        """Embed a docarray DocumentArray: text through the tokenizer (text models); an image model's
        ``doc.blob``/``doc.uri`` decoded and preprocessed as its metadata records; else ``doc.tensor``."""
        ids = [doc.id for doc in docs]
        if self.tokenizer is not None and all(doc.text for doc in docs):
            return self.embed_texts([doc.text for doc in docs])
        if self.tokenizer is not None and any(doc.text for doc in docs):
            bad = [doc.id for doc in docs if not doc.text]
            raise DocumentError(
                f"Documents {', '.join(repr(b) for b in bad)} have no text; this text model embeds .text, "
                "so send text in every Document of a request."
            )
        tensors = self._image_tensors(docs) if self.image_preprocessing else [doc.tensor for doc in docs]
        feed = self.feed_from_tensors(ids, tensors)
        return self.check_outputs(ids, feed, self.run(feed))

    def _image_tensors(self, docs: Any) -> list[Any]:
        """Each Document's ``tensor`` as sent, else its ``blob`` or ``uri`` decoded and preprocessed."""
        assert self.image_preprocessing is not None
        tensors: list[Any] = []
        errors: list[str] = []
        for doc in docs:
            if doc.tensor is not None or not (doc.blob or doc.uri):
                tensors.append(doc.tensor)
                continue
            try:
                image = self.image_source.image(doc.blob or None, doc.uri or None)
                tensors.append(self.image_preprocessing.apply(image))
            except ImageError as exc:
                errors.append(f"Document {doc.id!r}: {exc}")
        if errors:
            raise DocumentError("; ".join(errors) + ".")
        return tensors


    def check_outputs(self, ids: Sequence[str], feed: dict[str, np.ndarray], embeddings: np.ndarray) -> np.ndarray:
        """Refuse, by Document, embeddings that are not finite or, for a normalising model, not unit vectors:
        finite inputs can still overflow float32 arithmetic inside the model (``[1e20] * 64`` gives a zero
        vector after an infinite norm), and a silently wrong embedding is worse than an error."""
        norms = np.linalg.norm(embeddings.astype(np.float64), axis=1)
        bad = ~np.isfinite(embeddings).all(axis=1)
        if self.meta.normalized:
            bad |= np.abs(norms - 1.0) > 1e-3
        if not bad.any():
            return embeddings
        first = next(iter(feed.values()))
        problems = []
        for i in np.flatnonzero(bad):
            largest = float(np.max(np.abs(first[i]))) if first[i].size and first.dtype.kind == "f" else 0.0
            what = "not finite" if not np.isfinite(norms[i]) else f"not a unit vector (norm {norms[i]:.3g})"
            problems.append(
                f"Document {ids[i]!r}: the model's embedding is {what}; its input (largest |value| {largest:.3g}) "
                "overflows the model's float32 arithmetic or maps to zero: scale the input as in training"
            )
        raise DocumentError("; ".join(problems) + ".")


def _non_finite_message(doc_id: str, array: np.ndarray, wanted: np.dtype) -> str:
    """Why a float tensor cannot be fed: NaN/inf values, or values too large for the model's dtype."""
    if not np.isfinite(array).all():
        count = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        return f"Document {doc_id!r} has {count} NaN or infinite value(s) in its tensor"
    largest = float(np.max(np.abs(array)))
    return f"Document {doc_id!r} has values up to {largest:.3g}, beyond what input dtype {wanted} can hold"


def length_batches(lengths: Sequence[int], max_batch: int, call_cost: int = 64) -> list[tuple[int, int]]:
    """Where to cut ascending ``lengths`` into batches: ``(start, stop)`` pairs of at most ``max_batch``.

    Minimises the padded tokens (each batch costs its longest length times its size) plus ``call_cost``
    tokens per batch, which stands for the per-call overhead and the lower efficiency of small products: one
    pass of dynamic programming over the split points.
    """
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for stop in range(1, n + 1):
        for start in range(max(0, stop - max_batch), stop):
            cost = best[start] + call_cost + lengths[stop - 1] * (stop - start)
            if cost < best[stop]:
                best[stop], cut[stop] = cost, start
    batches = []
    stop = n
    while stop > 0:
        batches.append((cut[stop], stop))
        stop = cut[stop]
    return batches[::-1]


def _ort_dtype(type_name: str) -> str:
    """onnxruntime's ``tensor(float)`` -> numpy dtype name."""
    table = {
        "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
        "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
        "tensor(bool)": "bool",
    }
    if type_name not in table:
        raise ModelFileError(f"Unsupported model input type {type_name}.")
    return table[type_name]
