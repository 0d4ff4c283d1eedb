"""The metadata contract of an exported embedding model (docs/architecture.md, 'Exported embedding model metadata').

An exported model is one ONNX file whose single output is ``embedding`` (B, output_dim) and whose
``metadata_props`` say what serving needs: input names/dtypes/shapes, the preprocessing contract, output_dim,
normalisation, the source framework and the finetuner version. A text model's tokenizer lives in a sidecar
folder ``<model stem>.tokenizer-<content hash>/`` beside the ``.onnx`` file (its metadata names it), the one
thing ONNX metadata cannot hold.

This module imports onnx and numpy only; tokenizers are loaded lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from tailor_ir.files import fsync_dir, write_model

PREFIX = "finetuner."
OUTPUT_NAME = "embedding"
PREPROCESS_KINDS = ("image", "vector", "text", "tokens", "sequence")
TOKENIZER_SUFFIX = ".tokenizer"
PENDING_TOKENIZER = "-"  # a text model's tokenizer folder before write_embedding_model names it


class ModelMetadataError(ValueError):
    """An ONNX file lacks, or carries malformed, finetuner embedding-model metadata."""


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, numpy dtype name and shape (ints for fixed dims, strings for symbolic ones)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> InputSpec:
        try:
            return cls(str(item["name"]), str(np.dtype(item["dtype"])), tuple(item["shape"]))
        except (KeyError, TypeError) as exc:
            raise ModelMetadataError(f"Malformed input entry {item!r}: needs 'name', 'dtype' and 'shape'.") from exc

    @classmethod
    def from_value_info(cls, info: onnx.ValueInfoProto) -> InputSpec:
        tensor = info.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim
        )
        return cls(info.name, dtype, shape)


def graph_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The real inputs of the graph (initializers that older exporters list as inputs are skipped)."""
    initializers = {init.name for init in model.graph.initializer}
    return [InputSpec.from_value_info(i) for i in model.graph.input if i.name not in initializers]


def graph_output_dim(model: onnx.ModelProto) -> int | None:
    """The static last dimension of the first graph output, or None when it is symbolic."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None


@dataclass(frozen=True)
class EmbeddingModelMeta:
    """What a server needs to know about an exported embedding model; stored as ONNX ``metadata_props``."""

    framework: str
    output_dim: int
    inputs: tuple[InputSpec, ...]
    preprocess: dict[str, Any] = field(default_factory=lambda: {"kind": "vector"})
    normalized: bool = False
    version: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            from finetuner import __version__

            object.__setattr__(self, "version", __version__)
        object.__setattr__(self, "inputs", tuple(self.inputs))
        kind = self.preprocess.get("kind")
        if kind not in PREPROCESS_KINDS:
            raise ModelMetadataError(
                f"Unknown preprocess kind {kind!r}; use one of {', '.join(PREPROCESS_KINDS)}."
            )
        if kind == "text" and not self.preprocess.get("tokenizer"):
            raise ModelMetadataError("A text model's preprocess needs 'tokenizer' (the sidecar folder name).")
        if int(self.output_dim) <= 0:
            raise ModelMetadataError(f"output_dim must be positive, got {self.output_dim}.")
        if kind == "image" and "image" in self.preprocess:
            self.image_preprocessing()  # a malformed recording fails here, when the model is read

    def image_preprocessing(self) -> Any:
        """The recorded ``ImagePreprocessing`` of an image model (finetuner's default loading if none)."""
        from finetuner.serving.images import ImageError, ImagePreprocessing

        if self.kind != "image":
            raise ModelMetadataError(f"a {self.kind} model has no image preprocessing.")
        layout = str(self.preprocess.get("layout", "NCHW"))
        try:
            if "image" in self.preprocess:
                return ImagePreprocessing.from_json(self.preprocess["image"], layout)
            shape = self.inputs[0].shape if self.inputs else ()
            channels = shape[1 if layout == "NCHW" else 3] if len(shape) == 4 else 3
            dtype = self.inputs[0].dtype if self.inputs else "float32"
            return ImagePreprocessing(layout=layout, mode="L" if channels == 1 else "RGB", dtype=dtype)
        except ImageError as exc:
            raise ModelMetadataError(f"the model's image preprocessing is malformed: {exc}") from exc

    @property
    def kind(self) -> str:
        return str(self.preprocess["kind"])

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def to_props(self) -> dict[str, str]:
        """The ``finetuner.*`` metadata_props: all strings, JSON where structured."""
        return {
            f"{PREFIX}version": self.version,
            f"{PREFIX}framework": self.framework,
            f"{PREFIX}output_dim": str(int(self.output_dim)),
            f"{PREFIX}normalized": "true" if self.normalized else "false",
            f"{PREFIX}inputs": json.dumps([spec.to_json() for spec in self.inputs]),
            f"{PREFIX}preprocess": json.dumps(self.preprocess, sort_keys=True),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "the model") -> EmbeddingModelMeta:
        """Parse the ``finetuner.*`` entries; raise ModelMetadataError naming what is missing or malformed."""
        needed = ("version", "framework", "output_dim", "normalized", "inputs", "preprocess")
        missing = [f"{PREFIX}{key}" for key in needed if f"{PREFIX}{key}" not in props]
        if missing:
            raise ModelMetadataError(
                f"{source} lacks finetuner metadata {', '.join(missing)}: it was not written by "
                "finetuner.export. Export the model with finetuner.export(model, path)."
            )
        try:
            inputs = tuple(InputSpec.from_json(item) for item in json.loads(props[f"{PREFIX}inputs"]))
            preprocess = json.loads(props[f"{PREFIX}preprocess"])
            output_dim = int(props[f"{PREFIX}output_dim"])
        except (ValueError, TypeError) as exc:
            raise ModelMetadataError(f"{source} carries malformed finetuner metadata: {exc}") from exc
        normalized = props[f"{PREFIX}normalized"].strip().lower()
        if normalized not in ("true", "false"):
            raise ModelMetadataError(f"{source}: finetuner.normalized must be 'true' or 'false', got {normalized!r}.")
        return cls(
            framework=props[f"{PREFIX}framework"],
            output_dim=output_dim,
            inputs=inputs,
            preprocess=preprocess,
            normalized=normalized == "true",
            version=props[f"{PREFIX}version"],
        )

    @classmethod
    def from_model(cls, model: onnx.ModelProto, source: str = "the model") -> EmbeddingModelMeta:
        return cls.from_props({p.key: p.value for p in model.metadata_props}, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> EmbeddingModelMeta:
        """Read the metadata of an ONNX file without loading its external weights."""
        model = onnx.load(os.fspath(path), load_external_data=False)
        return cls.from_model(model, source=str(path))

    @classmethod
    def for_model(
        cls, model: onnx.ModelProto, framework: str, preprocess: Mapping[str, Any] | None = None,
        normalized: bool = False, output_dim: int | None = None,
    ) -> EmbeddingModelMeta:
        """Metadata whose inputs and output_dim are read from the graph itself.

        A text model's ``tokenizer`` folder name may be left out: :func:`write_embedding_model` sets it to the
        sidecar folder it writes (``<stem>.tokenizer``); ``max_length`` defaults to 128.
        """
        dim = output_dim or graph_output_dim(model)
        if not dim:
            raise ModelMetadataError("The output's last dimension is symbolic: pass output_dim explicitly.")
        preprocess = dict(preprocess or {"kind": "vector"})
        if preprocess.get("kind") == "text":
            preprocess.setdefault("max_length", 128)
            preprocess["tokenizer"] = preprocess.get("tokenizer") or PENDING_TOKENIZER
        return cls(framework, dim, tuple(graph_inputs(model)), preprocess, normalized)

    def apply(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Write the metadata into ``model.metadata_props`` (in place, replacing older finetuner entries)."""
        props = self.to_props()
        keep = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
        del model.metadata_props[:]
        for key, value in [*keep, *props.items()]:
            model.metadata_props.add(key=key, value=value)
        return model


def tokenizer_dir(model_path: str | os.PathLike) -> Path:
    """The sidecar folder of a model's tokenizer beside the ``.onnx`` file: the one the model's metadata names
    (``<stem>.tokenizer-<hash>/``), else ``<model stem>.tokenizer/``."""
    path = Path(model_path)
    if path.is_file():
        try:
            name = EmbeddingModelMeta.from_file(path).preprocess.get("tokenizer")
        except (ModelMetadataError, DecodeError, OSError, ValueError):
            name = None
        if name:
            return path.with_name(name)
    return path.with_name(path.stem + TOKENIZER_SUFFIX)


def rename_output(model: onnx.ModelProto, name: str = OUTPUT_NAME) -> onnx.ModelProto:
    """Give the single graph output the contract's name, renaming any inner value already called ``name``.

    The torch dynamo exporter names inner values after modules (a BERT's ``embeddings`` gives ``embedding``),
    so asking it for an output named ``embedding`` yields a duplicate definition; renaming afterwards is safe.
    """
    if len(model.graph.output) != 1:
        names = [o.name for o in model.graph.output]
        raise ModelMetadataError(f"An embedding model must have exactly one output, this one has {names}.")
    old = model.graph.output[0].name
    if old == name:
        return model
    taken = {v for n in model.graph.node for v in [*n.input, *n.output]} | {i.name for i in model.graph.initializer}
    taken |= {i.name for i in model.graph.input}
    mapping = {old: name}
    if name in taken:
        spare = f"{name}__inner"
        while spare in taken:
            spare += "_"
        mapping[name] = spare
    _rename_values(model.graph, mapping)
    return model


def _rename_values(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [mapping.get(v, v) for v in node.input]
        node.output[:] = [mapping.get(v, v) for v in node.output]
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs]:
                _rename_values(sub, mapping)
    for seq in (graph.input, graph.output, graph.value_info):
        for info in seq:
            info.name = mapping.get(info.name, info.name)
    for init in graph.initializer:
        init.name = mapping.get(init.name, init.name)


def write_embedding_model(
    model: onnx.ModelProto, meta: EmbeddingModelMeta, path: str | os.PathLike, tokenizer: Any = None,
) -> Path:
    """Write an embedding model with its metadata (and tokenizer sidecar) atomically; return the path.

    The model's single output is renamed ``embedding``; the result must pass the ONNX checker. Files are
    written beside their destination under temporary names, fsynced and moved into place with ``os.replace``,
    so a crash never leaves a half-written model. A text model's tokenizer goes to a new folder named after its
    content (``<stem>.tokenizer-<hash>/``, never over the folder the current model uses), and the model's own
    rename is the one step that switches model and tokenizer together; older tokenizer folders go afterwards.
    Models over 2 GB keep their weights in a content-named data file beside it (:func:`tailor_ir.files.write_model`:
    written before the model that names it, covered by its checksum).
    """
    path = Path(path)
    if meta.kind == "text" and tokenizer is None:
        if not tokenizer_dir(path).is_dir():
            raise ModelMetadataError(f"{path}: a text model needs its tokenizer; pass tokenizer=...")
        tokenizer = tokenizer_dir(path)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # not a serialised round trip: that fails over 2 GB
    model = rename_output(copy)
    path.parent.mkdir(parents=True, exist_ok=True)
    if meta.kind == "text":
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            folder = _place_tokenizer(tokenizer, path, Path(tmp) / "tokenizer")
        meta = EmbeddingModelMeta(
            meta.framework, meta.output_dim, meta.inputs, {**meta.preprocess, "tokenizer": folder.name},
            meta.normalized, meta.version,
        )
    meta.apply(model)
    write_model(model, path, check=lambda staged: onnx.checker.check_model(str(staged)))
    if meta.kind == "text":
        _remove_other_tokenizers(path, keep=meta.preprocess["tokenizer"])
    return path


def _place_tokenizer(tokenizer: Any, path: Path, staging: Path) -> Path:
    """Save ``tokenizer`` under ``staging``, then move it to ``<stem>.tokenizer-<content hash>/`` (kept as is
    when that folder already holds the same content); returns the folder."""
    save_tokenizer(tokenizer, staging)
    digest = hashlib.sha256()
    for file in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(staging)).encode() + b"\0" + file.read_bytes())
    folder = path.with_name(f"{path.stem}{TOKENIZER_SUFFIX}-{digest.hexdigest()[:12]}")
    if not folder.is_dir():
        _fsync_tree(staging)
        os.replace(staging, folder)
        fsync_dir(path.parent)
    return folder


def _remove_other_tokenizers(path: Path, keep: str) -> None:
    """Tokenizer folders of earlier versions of this model (and the unversioned ``<stem>.tokenizer``)."""
    pattern = re.compile(re.escape(path.stem + TOKENIZER_SUFFIX) + r"(-[0-9a-f]{12})?")
    for folder in path.parent.iterdir():
        if folder.is_dir() and folder.name != keep and pattern.fullmatch(folder.name):
            shutil.rmtree(folder, ignore_errors=True)


def _fsync_tree(target: Path) -> None:
    """fsync a file, or every file in a folder, before it is renamed into place."""
    for file in [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]:
        with open(file, "rb+") as handle:
            os.fsync(handle.fileno())


def save_tokenizer(tokenizer: Any, folder: str | os.PathLike) -> Path:
    """Save a tokenizer into ``folder``: a transformers tokenizer, a ``tokenizers.Tokenizer`` or a folder path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(tokenizer, str | os.PathLike):
        src = Path(tokenizer)
        names = [n for n in _TOKENIZER_FILES if (src / n).is_file()]
        if not names:
            raise ModelMetadataError(f"No tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {src}.")
        for name in names:
            shutil.copy2(src / name, folder / name)
    elif hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(folder))
    elif hasattr(tokenizer, "to_str"):  # tokenizers.Tokenizer
        (folder / "tokenizer.json").write_text(tokenizer.to_str())
    else:
        raise ModelMetadataError(
            f"Cannot save a tokenizer of type {type(tokenizer).__name__}: pass a transformers tokenizer, a "
            "tokenizers.Tokenizer or the folder that holds tokenizer.json."
        )
    return folder


def write_tokenizer_beside(model_path: str | os.PathLike, tokenizer: Any) -> Path:
    """Save ``tokenizer`` to ``<stem>.tokenizer/`` beside a ``finetuner.save`` file (replacing an older one), where
    :func:`tokenizer_dir` finds it: a saved text model then needs nothing else to be labelled or tuned again.

    The folder is written under a temporary name and moved into place, so a crash leaves the old one or the new.
    """
    path = Path(model_path)
    target = path.with_name(path.stem + TOKENIZER_SUFFIX)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{target.name}.") as tmp:
        staging = save_tokenizer(tokenizer, Path(tmp) / "new")
        _fsync_tree(staging)
        if target.is_dir():
            os.replace(target, Path(tmp) / "old")
        os.replace(staging, target)
        fsync_dir(path.parent)
    return target


_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "merges.txt",
    "vocab.json", "sentencepiece.bpe.model", "spiece.model",
)


class TextEncoder:
    """Turns strings into the model's token inputs: truncated to ``max_length``, padded per batch.

    :meth:`tokenize` gives each text's tokens unpadded, so that a server can batch texts of similar length and
    :meth:`pad` each batch only to its own longest text. Uses the fast ``tokenizers`` library on
    ``tokenizer.json`` so that serving needs neither transformers nor torch; falls back to
    ``transformers.AutoTokenizer`` for folders without one.
    """

    def __init__(self, folder: str | os.PathLike, max_length: int = 128) -> None:
        self.folder = Path(folder)
        self.max_length = int(max_length)
        if not self.folder.is_dir():
            raise ModelMetadataError(
                f"The tokenizer folder {self.folder} is missing: export the text model again with its "
                "tokenizer, or copy the folder beside the .onnx file."
            )
        self._fast = None
        self._hf = None
        if (self.folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            fast = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            fast.no_padding()
            fast.enable_truncation(self.max_length)
            self.pad_id = self._pad_id(fast)
            self._fast = fast
        else:
            from transformers import AutoTokenizer

            self._hf = AutoTokenizer.from_pretrained(str(self.folder))
            self.pad_id = int(self._hf.pad_token_id or 0)

    def _pad_id(self, fast: Any) -> int:
        config = self.folder / "tokenizer_config.json"
        token = "[PAD]"
        if config.is_file():
            token = json.loads(config.read_text()).get("pad_token") or token
            if isinstance(token, dict):
                token = token.get("content", "[PAD]")
        pad_id = fast.token_to_id(token)
        return 0 if pad_id is None else int(pad_id)

    def tokenize(self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Each text's token ids and token type ids, truncated to ``max_length``, not padded."""
        if self._fast is not None:
            return [(e.ids, e.type_ids) for e in self._fast.encode_batch(list(texts))]
        encoded = self._hf(list(texts), truncation=True, max_length=self.max_length)
        types = encoded.get("token_type_ids") or [[0] * len(ids) for ids in encoded["input_ids"]]
        return list(zip(encoded["input_ids"], types))

    def pad(self, tokens: Sequence[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, B x the longest of ``tokens``)."""
        length = max((len(ids) for ids, _ in tokens), default=0)
        ids = np.full((len(tokens), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(tokens), length), dtype=np.int64)
        types = np.zeros((len(tokens), length), dtype=np.int64)
        for row, (token_ids, type_ids) in enumerate(tokens):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1
            types[row, : len(type_ids)] = type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """One padded batch of ``texts`` (padded to their longest)."""
        return self.pad(self.tokenize(texts))


def load_tokenizer(model_path: str | os.PathLike, meta: EmbeddingModelMeta) -> TextEncoder:
    """The TextEncoder of a text model, from the sidecar folder its metadata names."""
    folder = Path(model_path).with_name(meta.preprocess["tokenizer"])
    return TextEncoder(folder, int(meta.preprocess.get("max_length", 128)))
