"""onnxruntime: the reference every rehydrated model is checked against."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from .errors import EquivalenceError, InvalidGraphError
from .graph import Graph


def available_providers(prefer_gpu: bool = True) -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    order = ["CUDAExecutionProvider", "CPUExecutionProvider"] if prefer_gpu else ["CPUExecutionProvider"]
    return [p for p in order if p in have] or ["CPUExecutionProvider"]


def session(
    model: Graph | onnx.ModelProto | str | bytes,
    providers: Sequence[str] | None = None,
    intra_op_threads: int = 0,
    optimization: str = "all",
):
    """An onnxruntime InferenceSession for a Graph, ModelProto, file path or serialized bytes."""
    import onnxruntime as ort

    if isinstance(model, Graph):
        model = model.model
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    try:
        return ort.InferenceSession(model, options, providers=list(providers or available_providers()))
    except Exception as exc:
        raise InvalidGraphError(f"onnxruntime cannot load the model: {exc}") from exc


def run(
    model: Graph | onnx.ModelProto,
    inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    outputs: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Run the model in onnxruntime (CPU) and return its outputs (or the named values) as numpy arrays.

    No graph optimisation: a reference run on a few rows, where session start-up dominates. The session gets a
    weight-free copy (:func:`~tailor_ir.graph.weight_free`) and the large initializers are fed at run time.
    ``outputs`` may name any value that a node computes, not only graph outputs.
    """
    from onnx import numpy_helper

    from .graph import weight_free

    proto = model.model if isinstance(model, Graph) else model
    light, _ = weight_free(proto)
    present = {o.name for o in light.graph.output}
    light.graph.output.extend(onnx.ValueInfoProto(name=o) for o in outputs or () if o not in present)
    sess = session(light, providers=["CPUExecutionProvider"], optimization="none")
    names = [i.name for i in sess.get_inputs()]
    feed = dict(inputs) if isinstance(inputs, Mapping) else dict(zip(names, inputs))
    feed = {k: np.asarray(v) for k, v in feed.items() if k in names}
    wanted = set(names) - set(feed)
    feed.update({init.name: numpy_helper.to_array(init) for init in proto.graph.initializer if init.name in wanted})
    return sess.run(list(outputs) if outputs else None, feed)


def assert_close(
    actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5, what: str = "output"
) -> None:
    """Raise EquivalenceError when ``actual`` differs from ``expected`` beyond ``rtol`` relative to its scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise EquivalenceError(f"{what}: shape {actual.shape} differs from the reference {expected.shape}.")
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    if err > atol + rtol * scale:
        raise EquivalenceError(
            f"{what}: max abs difference {err:.3g} exceeds {rtol:g} relative to the reference scale {scale:.3g}."
        )


def check_against_runtime(
    forward: Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]],
    graph: Graph,
    sample_inputs: object = None,
    rtol: float = 1e-4,
    framework: str = "rehydrated",
) -> None:
    """Run ``forward`` (a rehydrated model in inference mode, feed -> numpy outputs) against onnxruntime.

    The feed is ``sample_inputs`` mapped onto the graph's inputs, or random inputs from its types. Raises
    EquivalenceError naming the output and the framework beyond ``rtol`` relative to the reference scale.
    """
    from .samples import as_feed, random_inputs

    feed = random_inputs(graph) if sample_inputs is None else as_feed(sample_inputs, graph.input_names)
    expected = run(graph, feed)
    outputs = forward(feed)
    for name, got, ref in zip(graph.output_names, outputs, expected):
        try:
            assert_close(got, ref, rtol=rtol, what=f"output {name!r}")
        except EquivalenceError as exc:
            raise EquivalenceError(
                f"the rehydrated {framework} model differs from onnxruntime: {exc} Please report the model; "
                "rehydrate(..., check=False) skips this check."
            ) from exc
