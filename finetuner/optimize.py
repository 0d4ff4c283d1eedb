"""Export-time graph optimisation of an embedding model for serving in onnxruntime.

- :func:`fuse_transformer` fuses a BERT-like fp32 graph (attention, skip-LayerNorm, bias-GELU) into
  onnxruntime's contrib ops, then checks numerically that the fused graph computes the same embeddings.
  onnxruntime's own ``onnxruntime.transformers.optimizer`` matches TorchScript-export patterns and finds no
  attention in graphs from torch's dynamo exporter, so the fusion rules of ``onnxscript.rewriter.ort_fusions``
  (written for dynamo graphs) are used; onnxruntime's optimizer then runs over the result for anything left.
- :func:`simplify` folds constants and BatchNormalization into Conv, and removes dead code
  (``onnxscript.optimizer``): the frontends export unoptimised graphs whose Conv biases, shapes and casts are
  computed at run time, which keeps onnxruntime from fusing Conv+BN and from its NCHWc conv kernels.
- :func:`quantize_int8` applies onnxruntime dynamic int8 quantization to the MatMul/Gemm/Attention weights.
- :func:`optimize_for_serving` is what ``finetuner.export`` calls: simplify, fuse when the graph is a
  transformer (keeping the previous graph if a numerical check fails), then optionally quantize.
- :func:`session_options` are the onnxruntime settings serving uses (and the serving benchmark measures).

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


def simplify(
    model: onnx.ModelProto, check: bool = True, atol: float = 1e-4,
    feeds: list[Mapping[str, np.ndarray]] | None = None,
) -> onnx.ModelProto:
    """Constant folding, BatchNormalization folded into Conv/Gemm, dead code removed; same inputs and output.

    Raises OptimizationError if the result differs from ``model`` by more than ``atol`` (or cannot be built).
    """
    import onnx_ir as ir
    from onnxscript import optimizer

    try:
        optimized = ir.to_proto(optimizer.optimize(ir.from_proto(_copy(model))))
    except Exception as exc:
        raise OptimizationError(f"Graph simplification failed: {exc}") from exc
    _with_metadata(optimized, model)
    if [i.name for i in optimized.graph.input] != [i.name for i in model.graph.input]:
        raise OptimizationError("Graph simplification changed the model's inputs.")
    if check:
        diff = max_difference(model, optimized, feeds)
        if not diff <= atol:
            raise OptimizationError(f"The simplified graph differs from the original by {diff:.3g} (> {atol:g}).")
    return optimized


def physical_cores() -> int:
    """Physical CPU cores available to this process (logical CPUs when that cannot be told)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
    except ImportError:
        physical = logical
    return max(1, min(logical, physical))


def session_options(threads: int = 0, spinning: bool = False):  # noqa: ANN201 - onnxruntime.SessionOptions
    """The onnxruntime settings for serving an exported model on CPU.

    All graph optimisations (including the NCHWc layout for convolutions), memory-pattern planning, sequential
    execution, ``threads`` intra-op threads (0: one per physical core). ``spinning=False`` turns off the
    busy-waiting of idle pool threads: with replicas sharing cores (or any other load on the machine), spinning
    threads burn the cycles the working ones need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = True
    options.enable_cpu_mem_arena = True
    options.intra_op_num_threads = int(threads) if threads and threads > 0 else physical_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return options


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
    simplify_graph: bool | None = None,
) -> onnx.ModelProto:
    """Simplify, fuse transformer graphs, then optionally quantize to int8.

    ``simplify_graph``: :func:`simplify` first (``None``: unless ``fuse is False``, which is what
    ``export(optimize=False)`` passes). ``fuse=None``: fuse when :func:`is_transformer`. Each step is checked
    numerically within ``atol`` against its input; with ``None`` a step that fails keeps the graph it was given
    and warns, with ``fuse=True`` a failed fusion raises OptimizationError.
    """
    out = model
    if simplify_graph or (simplify_graph is None and fuse is not False):
        try:
            out = simplify(model, check=True, atol=atol)
        except OptimizationError as exc:
            if simplify_graph:
                raise
            warnings.warn(f"Keeping the unsimplified graph: {exc}", stacklevel=2)
    if fuse or (fuse is None and is_transformer(out)):
        try:
            out = fuse_transformer(out, check=True, atol=atol)
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
