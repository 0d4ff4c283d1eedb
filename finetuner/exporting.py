"""``finetuner.export``: an embedding model of any framework -> one ONNX file that serving can run.

The model's current weights (and BatchNorm statistics) are written back into the Graph it was rehydrated
from; a model that did not come from ``to_embedding`` is exported as it is by its framework's frontend. The
graph is optimised for serving (transformer fusion), the metadata of ``finetuner.onnx_meta`` is attached, the
result is checked against the model itself with onnxruntime, and only then written, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tailor_ir import compiler
from tailor_ir.errors import EquivalenceError
from tailor_ir.graph import Graph
from tailor_ir.passes import HEAD, set_initializers

__all__ = ["current_graph", "export", "model_outputs"]

IMAGE_LAYOUT = {"torch": "NCHW", "paddle": "NCHW", "keras": "NHWC"}


def current_graph(
    model: Any, input_shape: Sequence[int] | None = None, input_dtype: str = "float32", sample_input: Any = None
) -> Graph:
    """The Graph that computes what ``model`` computes now (in eval mode), with the model's framework set."""
    from finetuner import tailor

    framework = compiler.require_framework(model)
    graph = tailor.graph_of(model)
    if graph is None:
        return tailor.export_graph(model, input_shape, input_dtype, sample_input)
    values = compiler.backend(framework).current_initializers(model)
    return set_initializers(graph, values)


def model_outputs(model: Any, feed: Mapping[str, np.ndarray]) -> np.ndarray:
    """The model's (B, D) output on a feed of named numpy inputs, in eval mode, through its tuner backend."""
    from finetuner.tuner import tuner_class

    framework = compiler.require_framework(model)
    contents: Any = dict(feed) if len(feed) > 1 else next(iter(feed.values()))
    return tuner_class(framework)(model).embed(contents)


def export(
    model: Any,
    path: str | os.PathLike,
    *,
    tokenizer: Any = None,
    preprocess: Mapping[str, Any] | None = None,
    image_preprocessing: Any = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    sample_input: Any = None,
    optimize: bool = True,
    quantize: bool | str = False,
    calibration_data: Any = None,
    check: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Write ``model`` as an ONNX embedding model to ``path`` and return the path.

    Args:
        model: an embedding model (from ``to_embedding``/``fit``, or any model with one (B, D) output).
        path: the ``.onnx`` file; a text model's tokenizer goes to ``<stem>.tokenizer-<hash>/`` beside it.
        tokenizer: a Hugging Face tokenizer (or its folder) for text models; served Documents' ``.text`` go
            through it. Default: the ``tokenizer`` given to the ``fit`` that returned ``model``.
        preprocess: the preprocessing contract for serving (default: inferred: ``text`` with a tokenizer,
            truncated at the tokenizer's ``model_max_length``; ``image`` with the framework's layout for 4-d
            float inputs; ``tokens`` for integer inputs; else ``vector``).
        image_preprocessing: how served images (``doc.blob``/``doc.uri``) become this image model's input:
            the ``preprocess_fn`` transform you trained with (a torchvision ``Compose`` of Resize, CenterCrop,
            ToTensor, Normalize; paddle.vision.transforms; Keras Rescaling/Normalization layers), or a dict of
            ``finetuner.serving.images.ImagePreprocessing`` fields (``resize``, ``crop``, ``mean``, ``std``,
            ...). Default: finetuner's own image loading (scaled to [0, 1], no resize).
        input_shape / input_dtype / sample_input: only for models that did not come from ``to_embedding``.
        optimize: fuse transformer graphs into onnxruntime's fast kernels (checked within ``atol``).
        quantize: also quantize MatMul/Gemm weights to int8 (faster, ~1e-2 deviation; not checked at atol).
            ``'auto'``: build both and keep int8 only where, measured on this CPU, it is faster and loses at
            most one point of recall@10 on ``calibration_data`` (``finetuner.precision``); the choice, both
            measurements and the CPU are stored in the model's metadata and logged when it is served.
        calibration_data: for ``quantize='auto'``: ``(inputs, labels)`` as the model takes them, or, for a
            text model, a list of texts (default for text models: a held-out sample of English sentences).
        check: compare onnxruntime with the model on random inputs at two batch sizes; raise
            ``EquivalenceError`` (writing nothing) beyond ``atol``.
    """
    from finetuner.onnx_meta import EmbeddingModelMeta, write_embedding_model
    from finetuner.optimize import optimize_for_serving, sample_feed

    framework = compiler.require_framework(model)
    if not isinstance(quantize, bool) and quantize != "auto":
        raise ValueError(f"quantize must be True, False or 'auto', got {quantize!r}.")
    if calibration_data is not None and quantize != "auto":
        raise ValueError("calibration_data is used only with quantize='auto'; pass both, or neither.")
    if tokenizer is None:
        from finetuner.api import tokenizer_of

        tokenizer = tokenizer_of(model)  # the one fit(..., tokenizer=...) trained the model with
    graph = current_graph(model, input_shape, input_dtype, sample_input)
    if len(graph.output_names) != 1:
        raise ValueError(
            f"an embedding model has one output, this one has {len(graph.output_names)} "
            f"({', '.join(graph.output_names)}): make it with finetuner.tailor.to_embedding first."
        )
    plain = _without_tailor_metadata(graph)
    optimized = optimize_for_serving(plain, fuse=None if optimize else False, atol=atol)
    if check:
        feeds = [sample_feed(plain, batch=2, seq_len=16), sample_feed(plain, batch=3, seq_len=9, seed=1)]
        _check_against_model(model, optimized, feeds, atol)
    if quantize == "auto":
        optimized = _choose_precision(optimized, calibration_data, tokenizer)
    elif quantize:
        optimized = optimize_for_serving(optimized, fuse=False, quantize=True)
    normalized = f"{HEAD}.normalize" in set(graph.layer_map.values())
    meta = EmbeddingModelMeta.for_model(
        optimized, framework,
        preprocess=_with_image_preprocessing(
            dict(preprocess or _default_preprocess(plain, framework, tokenizer)), plain, image_preprocessing
        ),
        normalized=normalized,
    )
    return write_embedding_model(optimized, meta, path, tokenizer=tokenizer)


def _choose_precision(
    optimized: onnx.ModelProto, calibration_data: Any, tokenizer: Any
) -> onnx.ModelProto:
    """fp32 or int8 by measurement on this CPU (``finetuner.precision``), the choice recorded in the graph."""
    from finetuner.optimize import optimize_for_serving
    from finetuner.precision import choose_precision

    int8 = optimize_for_serving(optimized, fuse=False, quantize=True)
    tokenize = _hf_tokenize(tokenizer, _model_max_length(tokenizer)) if tokenizer is not None else None
    choice = choose_precision(optimized, int8, calibration_data, tokenize)
    return choice.record(int8 if choice.precision == "int8" else optimized)


def _hf_tokenize(tokenizer: Any, max_length: int) -> Any:
    """texts -> numpy token inputs, padded to the longest and truncated at ``max_length``, as serving does."""
    if isinstance(tokenizer, str | os.PathLike):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))

    def tokenize(texts: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np")
        return {key: np.asarray(value) for key, value in encoded.items()}

    return tokenize


def _without_tailor_metadata(graph: Graph) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    return model


def _default_preprocess(model: onnx.ModelProto, framework: str, tokenizer: Any) -> dict[str, Any]:
    from finetuner.onnx_meta import graph_inputs

    if tokenizer is not None:
        return {"kind": "text", "max_length": _model_max_length(tokenizer)}
    inputs = graph_inputs(model)
    if any(np.dtype(spec.dtype).kind in "iu" for spec in inputs):
        return {"kind": "tokens"}
    if len(inputs) == 1 and len(inputs[0].shape) == 4:
        return {"kind": "image", "layout": IMAGE_LAYOUT[framework]}
    return {"kind": "vector"}


def _with_image_preprocessing(
    preprocess: dict[str, Any], model: onnx.ModelProto, given: Any
) -> dict[str, Any]:
    """An image model's contract gains ``image``: the recorded preprocessing of served images."""
    from finetuner.onnx_meta import graph_inputs
    from finetuner.serving.pipelines import image_preprocessing

    if preprocess.get("kind") != "image":
        if given is not None:
            raise ValueError(
                f"image_preprocessing was given, but this model's input is {preprocess.get('kind')!r}, not an "
                "image (a single 4-d float input)."
            )
        return preprocess
    recorded = given if given is not None else preprocess.get("image")
    if recorded is None:  # serving applies finetuner's own image loading (EmbeddingModelMeta.image_preprocessing)
        return preprocess
    spec = graph_inputs(model)[0]
    layout = str(preprocess.setdefault("layout", "NCHW"))
    preprocess["image"] = image_preprocessing(recorded, layout, spec.shape, spec.dtype).to_json()
    return preprocess


def _model_max_length(tokenizer: Any, default: int = 512) -> int:
    """Where served texts are truncated: the model's own maximum.

    A sentence-transformers folder's ``max_seq_length`` (what ``encode`` truncates at) first, then the
    tokenizer's ``model_max_length``; transformers' huge "not declared" sentinel and tokenizers that declare
    nothing fall back to ``default`` (BERT-family models embed 512 positions).
    """
    import json

    folder = Path(tokenizer) if isinstance(tokenizer, str | os.PathLike) else None
    if folder is None and isinstance(getattr(tokenizer, "name_or_path", None), str):
        folder = Path(tokenizer.name_or_path)

    def declared(name: str, key: str) -> Any:
        path = folder / name if folder is not None else None
        return json.loads(path.read_text()).get(key) if path is not None and path.is_file() else None

    candidates = (
        declared("sentence_bert_config.json", "max_seq_length"),
        getattr(tokenizer, "model_max_length", None),
        declared("tokenizer_config.json", "model_max_length"),
    )
    for value in candidates:
        if isinstance(value, int) and 0 < value <= 100_000:
            return value
    return default


def _check_against_model(
    model: Any, onnx_model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], atol: float
) -> None:
    from finetuner.optimize import cpu_session

    session = cpu_session(onnx_model)
    for feed in feeds:
        expected = np.asarray(model_outputs(model, feed), dtype=np.float64)
        got = np.asarray(session.run(None, feed)[0], dtype=np.float64)
        if got.shape != expected.shape:
            raise EquivalenceError(
                f"the exported model gives shape {got.shape}, the model {expected.shape}: nothing was written."
            )
        worst = float(np.abs(got - expected).max())
        scale = max(1.0, float(np.abs(expected).max()))
        if worst > atol * scale:
            raise EquivalenceError(
                f"the exported model differs from the model by {worst:.3g} (> {atol:g}); nothing was written. "
                "Export with optimize=False, or report the model so the failing op can be fixed."
            )
