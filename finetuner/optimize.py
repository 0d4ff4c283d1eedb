"""Export-time graph optimisation of an embedding model for serving in onnxruntime.

- :func:`fuse_transformer` fuses a BERT-like fp32 graph (attention, skip-LayerNorm, bias-GELU) into
  onnxruntime's contrib ops, then checks numerically that the fused graph computes the same embeddings.
  onnxruntime's own ``onnxruntime.transformers.optimizer`` matches TorchScript-export patterns and finds no
  attention in graphs from torch's dynamo exporter, so the fusion rules of ``onnxscript.rewriter.ort_fusions``
  (written for dynamo graphs) are used; onnxruntime's optimizer then runs over the result for anything left.
- :func:`quantize_int8` applies onnxruntime dynamic int8 quantization to the MatMul/Gemm/Attention weights.
- :func:`optimize_for_serving` is what ``finetuner.export`` calls: fuse when the graph is a transformer
  (keeping the original if the check fails), then optionally quantize.

Functions take and return ``onnx.ModelProto``; metadata_props are carried over.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from finetuner.onnx_meta import graph_inputs

FUSED_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu", "FastGelu")
QUANTIZED_OP_TYPES = ("MatMul", "Gemm", "Attention")


class OptimizationError(RuntimeError):
    """An optimised graph does not compute what the original computes, or could not be built."""


def is_transformer(model: onnx.ModelProto) -> bool:
    """True when the graph looks like a self-attention encoder (Softmax, MatMul and LayerNormalization)."""
    ops = {node.op_type for node in model.graph.node}
    return {"Softmax", "MatMul"} <= ops and bool(ops & {"LayerNormalization", "SkipLayerNormalization"})


def sample_feed(model: onnx.ModelProto, batch: int = 2, seq_len: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """A random input for every graph input: symbolic dims become ``batch`` (first) or ``seq_len``.

    Integer inputs named like masks are ones with padding in the later rows; other integer inputs (token
    ids, type ids) are small non-negative ids, so that any embedding table accepts them.
    """
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for spec in graph_inputs(model):
        shape = tuple(
            d if isinstance(d, int) and d > 0 else (batch if axis == 0 else seq_len)
            for axis, d in enumerate(spec.shape)
        )
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feed[spec.name] = np.ones(shape, dtype)
        elif "mask" in spec.name:
            mask = np.ones(shape, dtype)
            if len(shape) == 2:
                for row in range(1, shape[0]):
                    mask[row, max(1, shape[1] - 3 * row):] = 0
            feed[spec.name] = mask
        elif "type" in spec.name:
            feed[spec.name] = np.zeros(shape, dtype)
        else:
            feed[spec.name] = rng.integers(1, 100, shape).astype(dtype)
    return feed


def cpu_session(model: onnx.ModelProto):  # noqa: ANN201 - an onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def max_difference(
    a: onnx.ModelProto, b: onnx.ModelProto, feeds: list[Mapping[str, np.ndarray]] | None = None
) -> float:
    """The largest absolute difference between the first outputs of two models over the given feeds."""
    feeds = feeds or [sample_feed(a, batch=2, seq_len=16), sample_feed(a, batch=3, seq_len=9, seed=1)]
    sa, sb = cpu_session(a), cpu_session(b)
    worst = 0.0
    for feed in feeds:
        ra = sa.run(None, dict(feed))[0]
        rb = sb.run(None, dict(feed))[0]
        if ra.shape != rb.shape:
            return float("inf")
        worst = max(worst, float(np.abs(ra.astype(np.float64) - rb.astype(np.float64)).max()))
    return worst


def _with_metadata(model: onnx.ModelProto, like: onnx.ModelProto) -> onnx.ModelProto:
    have = {p.key for p in model.metadata_props}
    for prop in like.metadata_props:
        if prop.key not in have:
            model.metadata_props.add(key=prop.key, value=prop.value)
    return model


def fuse_transformer(
    model: onnx.ModelProto, check: bool = True, atol: float = 1e-4,
    feeds: list[Mapping[str, np.ndarray]] | None = None,
) -> onnx.ModelProto:
    """Fuse a BERT-like fp32 graph into onnxruntime contrib ops; raise OptimizationError if outputs change.

    The graph gains ``com.microsoft`` ops, so it runs in onnxruntime only (which is what serves it).
    """
    fused = _onnxscript_fusion(model)
    if "Attention" not in fused_op_counts(fused):
        fused = _ort_transformer_fusion(model) or fused
    if not fused_op_counts(fused):
        raise OptimizationError("No transformer pattern (attention, skip-LayerNorm, GELU) was found to fuse.")
    _with_metadata(fused, model)
    if check:
        diff = max_difference(model, fused, feeds)
        if not diff <= atol:
            raise OptimizationError(
                f"The fused graph differs from the original by {diff:.3g} (> {atol:g}); export without fusion."
            )
    return fused


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())


def _onnxscript_fusion(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxscript's onnxruntime fusions (the patterns of torch dynamo exports)."""
    import onnx_ir as ir
    from onnxscript.rewriter import ort_fusions

    try:
        fused, _ = ort_fusions.optimize_for_ort(ir.from_proto(_copy(model)))
        return ir.to_proto(fused)
    except Exception as exc:
        raise OptimizationError(f"Transformer fusion failed: {exc}") from exc


def _ort_transformer_fusion(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """onnxruntime's transformer optimizer (TorchScript and tf2onnx patterns); None when it fails or finds nothing."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_by_fusion

    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fused = optimize_by_fusion(_copy(model), model_type="bert", num_heads=0, hidden_size=0).model
    except Exception:  # its patterns are best effort: another exporter's graph may not match at all
        return None
    finally:
        quiet.setLevel(level)
    return fused if "Attention" in fused_op_counts(fused) else None


def fused_op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """How many of each onnxruntime fused op the graph holds."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in FUSED_OPS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def quantize_int8(model: onnx.ModelProto, op_types: tuple[str, ...] = QUANTIZED_OP_TYPES) -> onnx.ModelProto:
    """Dynamic int8 quantization of the weights of ``op_types`` (activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="finetuner-quant-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model.SerializeToString())
        try:
            quantize_dynamic(src, dst, op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8)
        except Exception as exc:
            raise OptimizationError(f"int8 quantization failed: {exc}") from exc
        quantized = onnx.load(str(dst))
    return _with_metadata(quantized, model)


def optimize_for_serving(
    model: onnx.ModelProto, fuse: bool | None = None, quantize: bool = False, atol: float = 1e-4,
) -> onnx.ModelProto:
    """Fuse transformer graphs (``fuse=None``: when :func:`is_transformer`), then optionally quantize to int8.

    With ``fuse=None`` a fusion that fails its numerical check keeps the unfused graph and warns; with
    ``fuse=True`` it raises OptimizationError.
    """
    out = model
    if fuse or (fuse is None and is_transformer(model)):
        try:
            out = fuse_transformer(model, check=True, atol=atol)
        except OptimizationError as exc:
            if fuse:
                raise
            warnings.warn(f"Keeping the unfused graph: {exc}", stacklevel=2)
    if quantize:
        out = quantize_int8(out)
    return out


def optimize_file(src: str | os.PathLike, dst: str | os.PathLike, **kwargs: object) -> Path:
    """:func:`optimize_for_serving` from one ONNX file to another (written atomically, tokenizer kept)."""
    from finetuner.onnx_meta import EmbeddingModelMeta, tokenizer_dir, write_embedding_model

    model = onnx.load(os.fspath(src))
    meta = EmbeddingModelMeta.from_model(model, source=str(src))
    optimized = optimize_for_serving(model, **kwargs)  # type: ignore[arg-type]
    tokenizer = tokenizer_dir(src) if meta.kind == "text" else None
    return write_embedding_model(optimized, meta, dst, tokenizer=tokenizer)
