"""Regression tests of the paddle backend's op semantics: each bug ONNX's conformance cases found, and the ops
real models need, checked against ONNX's reference evaluator on single-node graphs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tailor_ir import conformance
from tailor_ir.backends import paddle as paddle_backend
from tailor_ir.errors import UnsupportedDtypeError
from tailor_ir.graph import Graph

NP_TO_ONNX = {np.dtype(k): v for k, v in [
    (np.float32, TensorProto.FLOAT), (np.int8, TensorProto.INT8), (np.int16, TensorProto.INT16),
    (np.int32, TensorProto.INT32), (np.int64, TensorProto.INT64), (np.uint8, TensorProto.UINT8),
    (np.uint16, TensorProto.UINT16), (np.uint32, TensorProto.UINT32),
]}


def single_node(op: str, inputs: dict[str, np.ndarray], attrs: dict | None = None, outputs: int = 1,
                opset: int = 21, initializers: dict[str, np.ndarray] | None = None,
                out_type: int = TensorProto.UNDEFINED) -> onnx.ModelProto:
    node = helper.make_node(op, list(inputs) + list(initializers or {}), [f"y{i}" for i in range(outputs)],
                            name="the_node", **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, NP_TO_ONNX[v.dtype], list(v.shape)) for n, v in inputs.items()],
        [helper.make_tensor_value_info(f"y{i}", out_type, None) for i in range(outputs)],
        [numpy_helper.from_array(v, n) for n, v in (initializers or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_paddle(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    graph = Graph(model=model)
    layer = paddle_backend.rehydrate(graph, check=False)
    return paddle_backend.numpy_forward(layer, graph)(inputs)


def assert_matches_reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray], rtol: float = 1e-5) -> None:
    expected = ReferenceEvaluator(model).run(None, inputs)
    got = run_paddle(model, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, g.shape, e.dtype, e.shape)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
def test_integer_div_truncates_toward_zero_and_keeps_the_dtype(dtype: type) -> None:
    signed = np.dtype(dtype).kind == "i"
    a = np.array([-7, 7, -7, 7, 9, 0] if signed else [7, 9, 200, 1, 0, 255], dtype)
    b = np.array([2, 2, -2, -2, 3, 5] if signed else [2, 3, 7, 1, 5, 16], dtype)
    got = run_paddle(single_node("Div", {"a": a, "b": b}), {"a": a, "b": b})[0]
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, (np.trunc(a.astype(np.float64) / b)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16])
def test_narrow_integer_arithmetic_wraps_like_onnx(dtype: type) -> None:
    a = np.array([100, 120, 3], dtype)
    b = np.array([100, 7, 2], dtype)
    for op in ("Mul", "Add", "Sub", "Max"):
        assert_matches_reference(single_node(op, {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize(
    ("fmod", "dtype"), [(0, np.int32), (0, np.int64), (1, np.int32), (1, np.int64), (1, np.float32)]
)  # (ONNX requires fmod=1 for floats)
def test_mod_follows_fmod_and_the_sign_rules(fmod: int, dtype: type) -> None:
    a = np.array([-5, 5, -5, 5, -4.5 if np.dtype(dtype).kind == "f" else -4, 0], dtype)
    b = np.array([3, -3, -3, 3, 2, 3], dtype)
    model = single_node("Mod", {"a": a, "b": b}, {"fmod": fmod})
    got = run_paddle(model, {"a": a, "b": b})[0]
    expected = np.fmod(a, b) if fmod else np.mod(a, b)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.dtype(dtype)
    if fmod:
        assert got[0] == -2  # -5 fmod 3


@pytest.mark.parametrize(
    "case", ["test_maxpool_2d_ceil_output_size_reduce_by_one", "test_averagepool_2d_ceil_last_window_starts_on_pad"]
)
def test_ceil_mode_drops_a_last_window_that_starts_in_the_padding(case: str) -> None:
    outcome = conformance.run_case(conformance.case_named(case), conformance.backend_runner("paddle"))
    assert outcome.status == "pass", outcome.detail


def test_uint16_inputs_are_refused_not_taken_as_bfloat16() -> None:
    x = np.array([1, 2, 300], np.uint16)
    with pytest.raises(UnsupportedDtypeError, match="uint16"):
        run_paddle(single_node("Add", {"a": x, "b": x}), {"a": x, "b": x})
    as_float = np.array([1, 2, 3], np.float32)  # and a uint16 array fed to a float graph is refused as well
    graph = Graph(model=single_node("Relu", {"x": as_float}))
    layer = paddle_backend.rehydrate(graph, check=False)
    with pytest.raises(UnsupportedDtypeError, match="uint16"):
        layer(x)


def test_dtypes_paddle_lacks_are_refused_at_rehydrate_time() -> None:
    x = np.array([1, 2], np.float32)
    cast = single_node("Cast", {"x": x}, {"to": TensorProto.FLOAT8E4M3FN})
    with pytest.raises(UnsupportedDtypeError, match="float8e4m3fn"):
        paddle_backend.rehydrate(Graph(model=cast), check=False)
    u32 = np.array([1, 2], np.uint32)
    with pytest.raises(UnsupportedDtypeError, match="uint32"):
        paddle_backend.rehydrate(Graph(model=single_node("Add", {"a": u32, "b": u32})), check=False)


def test_a_foreign_batch_norm_file_loads_with_its_running_statistics_as_state() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    inits = {"scale": rng.random(3).astype(np.float32) + 0.5, "bias": rng.random(3).astype(np.float32),
             "mean": rng.random(3).astype(np.float32), "var": rng.random(3).astype(np.float32) + 0.5}
    model = single_node("BatchNormalization", {"x": x}, initializers=inits, out_type=TensorProto.FLOAT)
    graph = Graph(model=model)  # a bare ONNX file: every float initializer looks like a weight
    assert {"mean", "var"} <= set(graph.weights)
    layer = paddle_backend.rehydrate(graph)  # checked against onnxruntime
    trainable = {n for n, p in layer.weight_names.items() if not p.stop_gradient}
    assert trainable == {"scale", "bias"}
    assert set(paddle_backend.current_initializers(layer)) == {"scale", "bias", "mean", "var"}


def test_scalar_inputs_keep_their_shape() -> None:
    x = np.array(3.0, np.float32)
    got = run_paddle(single_node("Relu", {"x": x}), {"x": x})[0]
    assert got.shape == ()


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_recurrent_layers_on_onnx_layout_weights_with_sequence_lens(op: str, direction: str) -> None:
    rng = np.random.default_rng(1)
    dirs, hidden, gates = (2 if direction == "bidirectional" else 1), 5, (4 if op == "LSTM" else 3)
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    lens = np.array([6, 2, 4], np.int32)
    inits = {
        "W": rng.standard_normal((dirs, gates * hidden, 4)).astype(np.float32) * 0.5,
        "R": rng.standard_normal((dirs, gates * hidden, hidden)).astype(np.float32) * 0.5,
        "B": rng.standard_normal((dirs, 2 * gates * hidden)).astype(np.float32) * 0.5,
    }
    node = helper.make_node(op, ["x", "W", "R", "B", "lens"], ["y", "y_h"], hidden_size=hidden,
                            direction=direction)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 3, 4]),
         helper.make_tensor_value_info("lens", TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, n) for n, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    graph = Graph(model=model)
    # checked against onnxruntime (ONNX's reference evaluator ignores sequence_lens)
    layer = paddle_backend.rehydrate(graph, sample_inputs=[x, lens])
    assert {n for n, p in layer.weight_names.items() if not p.stop_gradient} == {"W", "R", "B"}
    y, y_h = paddle_backend.numpy_forward(layer, graph)({"x": x, "lens": lens})
    assert y.shape == (6, dirs, 3, hidden) and y_h.shape == (dirs, 3, hidden)
    assert not y[2:, :, 1].any() and not y[4:, :, 2].any()  # zeros past each sequence's end
    assert y[3:, :, 0].any()


@pytest.mark.parametrize(
    ("op", "inputs", "attrs"),
    [
        ("Resize", {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4),
                    "roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 1.5], np.float32)},
         {"mode": "linear"}),
        ("Resize", {"x": np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4),
                    "roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 0.6, 2], np.float32)},
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
        ("ConvTranspose", {"x": np.ones((1, 2, 3, 3), np.float32),
                           "w": np.arange(2 * 3 * 3 * 2, dtype=np.float32).reshape(2, 3, 3, 2)},
         {"strides": [2, 1], "pads": [1, 0, 0, 1], "output_padding": [1, 0]}),
        ("TopK", {"x": np.array([[3, 1, 3, 2], [0, 5, 5, 5]], np.float32), "k": np.array([2], np.int64)}, {}),
        ("Einsum", {"a": np.ones((2, 3), np.float32), "b": np.arange(12, dtype=np.float32).reshape(3, 4)},
         {"equation": "ij,jk->ik"}),
        ("CumSum", {"x": np.arange(6, dtype=np.int32).reshape(2, 3), "axis": np.array(1, np.int32)},
         {"exclusive": 1, "reverse": 1}),
        ("ArgMax", {"x": np.array([[1, 5, 5], [7, 0, 7]], np.float32)}, {"axis": 1, "select_last_index": 1}),
        ("GatherND", {"x": np.arange(8, dtype=np.float32).reshape(2, 2, 2),
                      "i": np.array([[1, -1], [0, 0]], np.int64)}, {}),
        ("GatherElements", {"x": np.arange(6, dtype=np.float32).reshape(2, 3),
                            "i": np.array([[2, -1], [0, 0]], np.int64)}, {"axis": 1}),
        ("ScatterElements", {"x": np.zeros((3, 3), np.float32), "i": np.array([[1, -1]], np.int64),
                             "u": np.array([[5, 6]], np.float32)}, {"axis": 0, "reduction": "add"}),
        ("ScatterND", {"x": np.zeros((3, 2), np.float32), "i": np.array([[2], [0]], np.int64),
                       "u": np.ones((2, 2), np.float32)}, {}),
        ("PRelu", {"x": np.array([[-2, 3]], np.float32), "s": np.array([0.5, 2], np.float32)}, {}),
        ("Pad", {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "p": np.array([1, 2, 0, 1], np.int64)},
         {"mode": "reflect"}),
        ("Pad", {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "p": np.array([1, 0, 0, 2], np.int64),
                 "v": np.array(7, np.float32)}, {"mode": "constant"}),
        ("Trilu", {"x": np.arange(12, dtype=np.int64).reshape(3, 4), "k": np.array(-1, np.int64)}, {"upper": 0}),
        ("OneHot", {"i": np.array([0, -1, 2], np.int64), "d": np.array(3, np.int64),
                    "v": np.array([0, 5], np.float32)}, {"axis": 0}),
    ],
)
def test_ops_real_models_use_match_the_onnx_reference(op: str, inputs: dict, attrs: dict) -> None:
    outputs = 2 if op == "TopK" else 1
    assert_matches_reference(single_node(op, inputs, attrs, outputs=outputs), inputs)
