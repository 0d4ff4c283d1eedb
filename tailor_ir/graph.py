"""The ``Graph`` value: an ONNX model plus the layer map and the source framework.

A Graph is immutable in spirit: every surgery pass returns a new one. Besides the ONNX model it records
- ``layer_map``: ONNX node name -> the user's own layer name (torch module path such as ``layer3.1.conv2``,
  Keras layer name, Paddle sublayer name); nodes the exporter made outside any layer are absent;
- ``framework``: where the model came from (``torch``, ``keras``, ``paddle`` or ``onnx`` for a bare file);
- ``weights``: initializer names that are trainable weights of the source model (not buffers such as
  BatchNorm statistics, not exporter constants); backends turn exactly these into trainable parameters;
- ``frozen``: the subset of ``weights`` to keep fixed during training;
- ``scratch`` (not saved): the model is a private working copy of a running pass pipeline
  (``passes.Sequential``), which later passes of that run may edit in place instead of copying it.
These travel inside the ONNX file as ``metadata_props`` so a saved Graph loads back whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import InvalidGraphError
from .files import verify, write_model
from .protos import model_shell

META_PREFIX = "tailor_ir."
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """An ONNX model with the layer map that ties its nodes to the user's layers."""

    model: onnx.ModelProto
    layer_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    framework: str = "onnx"
    weights: frozenset[str] | None = None
    frozen: frozenset[str] = frozenset()
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)
    scratch: bool = dataclasses.field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.weights is None:
            object.__setattr__(self, "weights", frozenset(self._default_weights()))

    # ----------------------------------------------------------------- construction
    def replace(self, **changes: object) -> Graph:
        """A new Graph with some fields changed (the model is not copied)."""
        return dataclasses.replace(self, **changes)

    def _default_weights(self) -> Iterable[str]:
        """For an ONNX file of unknown origin: every float initializer with more than one element."""
        for init in self.model.graph.initializer:
            if init.data_type in FLOAT_TYPES and int(np.prod(init.dims, dtype=np.int64)) > 1:
                yield init.name

    # ----------------------------------------------------------------- views
    @property
    def onnx_graph(self) -> onnx.GraphProto:
        return self.model.graph

    @property
    def opset(self) -> int:
        for imp in self.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                return int(imp.version)
        return 0

    @property
    def input_names(self) -> list[str]:
        inits = {i.name for i in self.model.graph.initializer}
        return [i.name for i in self.model.graph.input if i.name not in inits]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.model.graph.output]

    @cached_property
    def initializers(self) -> dict[str, onnx.TensorProto]:
        return {i.name: i for i in self.model.graph.initializer}

    def initializer_array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.initializers[name])

    @cached_property
    def producers(self) -> dict[str, onnx.NodeProto]:
        """Value name -> the node that produces it."""
        return {out: node for node in self.model.graph.node for out in node.output if out}

    @cached_property
    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        """Value name -> the nodes that read it (including from subgraphs' outer scope, by name)."""
        result: dict[str, list[onnx.NodeProto]] = {}
        for node in self.model.graph.node:
            for name in _node_reads(node):
                result.setdefault(name, []).append(node)
        return result

    @cached_property
    def dynamic_values(self) -> frozenset[str]:
        """Values that depend on a graph input (everything else is a constant the exporter computed)."""
        dynamic = set(self.input_names)
        for node in self.model.graph.node:
            if any(name in dynamic for name in _node_reads(node)):
                dynamic.update(o for o in node.output if o)
        return frozenset(dynamic)

    def layer_of(self, node: onnx.NodeProto) -> str | None:
        return self.layer_map.get(node.name)

    @cached_property
    def layer_names(self) -> list[str]:
        """Every layer (with its ancestors in dotted paths) in the order its first node appears."""
        seen: dict[str, None] = {}
        for node in self.model.graph.node:
            layer = self.layer_map.get(node.name)
            if not layer:
                continue
            for ancestor in ancestors(layer):
                seen.setdefault(ancestor, None)
            seen.setdefault(layer, None)
        return list(seen)

    @cached_property
    def layer_outputs(self) -> dict[str, list[str]]:
        """Layer -> its outputs: float values produced inside the layer (or its sublayers) and read outside it or
        returned by the graph, in the order they are produced (constants ignored). Every layer is a key."""
        result: dict[str, list[str]] = {layer: [] for layer in self.layer_names}
        graph_outputs = set(self.output_names)
        for node in self.model.graph.node:
            owner = self.layer_map.get(node.name)
            if not owner:
                continue
            chain = [*ancestors(owner), owner]
            for value in node.output:
                if not value or value not in self.dynamic_values:
                    continue
                elem = self.elem_type_of(value)
                if elem is not None and elem not in FLOAT_TYPES:
                    continue
                readers = [self.layer_map.get(c.name) or "" for c in self.consumers.get(value, [])]
                for layer in chain:
                    inside = layer + "."
                    if value in graph_outputs or any(r != layer and not r.startswith(inside) for r in readers):
                        result[layer].append(value)
        return result

    def nodes_of_layer(self, layer: str) -> list[onnx.NodeProto]:
        """The nodes inside ``layer`` (and inside its sublayers, for dotted paths)."""
        prefix = layer + "."
        return [
            n
            for n in self.model.graph.node
            if (owner := self.layer_map.get(n.name)) is not None and (owner == layer or owner.startswith(prefix))
        ]

    @cached_property
    def value_info(self) -> dict[str, onnx.ValueInfoProto]:
        """Value name -> type and shape, from ONNX shape inference (symbolic batch/sequence dims kept).

        Inference runs on a weight-free copy: initializers over ``SMALL_INITIALIZER`` elements only lend their
        type and shape (as graph inputs), so the weights are never serialised; small ones (shape constants that
        data propagation reads) stay. Initializers are not keys of the result (``shape_of`` reads their dims).
        """
        stand_ins: set[str] = set()
        try:
            light, stand_ins = weight_free(self.model)
            inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # shape inference is best effort; exporters already record most shapes
            inferred = self.model
        g = inferred.graph
        return {v.name: v for v in (*g.value_info, *g.input, *g.output) if v.name not in stand_ins}

    def shape_of(self, value: str) -> tuple[int | str | None, ...] | None:
        """Static/symbolic shape of a value: ints, dim names, or None for unknown dims; None if unknown rank."""
        info = self.value_info.get(value)
        if info is None and value in self.initializers:
            return tuple(self.initializers[value].dims)
        if info is None or not info.type.tensor_type.HasField("shape"):
            return None
        return tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in info.type.tensor_type.shape.dim
        )

    def elem_type_of(self, value: str) -> int | None:
        info = self.value_info.get(value)
        if info is not None:
            return info.type.tensor_type.elem_type
        if value in self.initializers:
            return self.initializers[value].data_type
        return None

    # ----------------------------------------------------------------- persistence
    def to_model_proto(self) -> onnx.ModelProto:
        """The ONNX model with the layer map, framework, weights and frozen marks stored as metadata."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        keep = [p for p in model.metadata_props if not p.key.startswith(META_PREFIX)]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        meta = {
            "layer_map": json.dumps(dict(self.layer_map), separators=(",", ":")),
            "framework": self.framework,
            "weights": json.dumps(sorted(self.weights or ())),
            "frozen": json.dumps(sorted(self.frozen)),
            "extra": json.dumps(dict(self.extra)),
        }
        for key, value in meta.items():
            model.metadata_props.add(key=META_PREFIX + key, value=value)
        return model

    @classmethod
    def from_model_proto(cls, model: onnx.ModelProto) -> Graph:
        meta = {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}
        if not meta:
            return cls(model=model)
        return cls(
            model=model,
            layer_map=json.loads(meta.get("layer_map", "{}")),
            framework=meta.get("framework", "onnx"),
            weights=frozenset(json.loads(meta["weights"])) if "weights" in meta else None,
            frozen=frozenset(json.loads(meta.get("frozen", "[]"))),
            extra=json.loads(meta.get("extra", "{}")),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Check the model and write it atomically (:func:`tailor_ir.files.write_model`: sealed with a checksum,
        weights in a content-named data file beside it when the model is over 2 GB)."""
        path = Path(path)
        model = self.to_model_proto()
        check_model(model, str(path))
        return write_model(model, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Graph:
        """Load an ONNX file (with its external data, only from inside the model's folder) and check it."""
        return cls.from_model_proto(load_model(path))

    def check(self) -> None:
        check_model(self.model, "graph")


SMALL_INITIALIZER = 4096  # elements; larger initializers stand in as typed graph inputs during shape inference


def weight_free(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """A copy of ``model`` whose large initializers are typed graph inputs (names of those returned).

    Shape inference and reference runs use it so that the weights are never serialised (on a BERT-base graph
    serialising takes seconds); a run feeds the stand-ins from the initializers.
    """
    light = model_shell(model, skip_graph=("initializer",))
    source, g = model.graph, light.graph
    inputs = {i.name for i in source.input}
    stand_ins: set[str] = set()
    for init in source.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) <= SMALL_INITIALIZER:
            g.initializer.append(init)
        elif init.name not in inputs:
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
            stand_ins.add(init.name)
    return light, stand_ins


def ancestors(layer: str) -> list[str]:
    """Dotted-path ancestors of a layer name: ``'a.b.c'`` -> ``['a', 'a.b']``."""
    parts = layer.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _node_reads(node: onnx.NodeProto) -> Iterable[str]:
    yield from (i for i in node.input if i)
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in subgraphs:
            local = {o for n in sub.node for o in n.output} | {i.name for i in sub.input}
            local |= {i.name for i in sub.initializer}
            for inner in sub.node:
                yield from (name for name in _node_reads(inner) if name not in local)


def check_model(model: onnx.ModelProto, culprit: str) -> None:
    """Run the ONNX checker; raise InvalidGraphError naming the culprit on failure."""
    try:
        if model.ByteSize() < 2_000_000_000:
            onnx.checker.check_model(model)
        else:  # the checker needs a path for models over 2 GB
            with tempfile.TemporaryDirectory() as tmp:
                p = Path(tmp) / "model.onnx"
                onnx.save_model(model, p, save_as_external_data=True)
                onnx.checker.check_model(str(p))
    except onnx.checker.ValidationError as exc:
        raise InvalidGraphError(f"{culprit}: the ONNX checker rejected the model: {exc}") from exc


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and check an ONNX file; external data may only come from the model's own folder."""
    path = Path(path)
    if not path.is_file():
        raise InvalidGraphError(f"{path}: no such ONNX file.")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise InvalidGraphError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}). "
            "The file may be truncated or not ONNX; export it again."
        ) from exc
    if not model.graph.node and not model.graph.output:
        raise InvalidGraphError(f"{path}: the file parsed but holds no graph; it is empty, truncated or not ONNX.")
    verify(model, str(path))
    _load_external_data_safely(model, path.parent.resolve())
    check_model(model, str(path))
    return model


def _load_external_data_safely(model: onnx.ModelProto, base: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    tensors = [t for t in model.graph.initializer if uses_external_data(t)]
    for tensor in tensors:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(base) or not target.is_file():
            raise InvalidGraphError(
                f"initializer {tensor.name!r} points at external data {location!r} outside the model's folder "
                f"{base} (or missing); refusing to load it."
            )
    if tensors:
        load_external_data_for_model(model, str(base))
